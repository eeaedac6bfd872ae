"""Event-wise and point-wise scores on hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shared.errors import EvaluationError
from shared.evaluation import (
    NAB_PROFILES,
    AnomalyEvent,
    NabFile,
    Scores,
    alarm_rates,
    combine,
    event_scores,
    nab_probation,
    nab_row_weights,
    nab_scores,
    point_scores,
)


def _flags(n: int, *indices: int) -> np.ndarray:
    flags = np.zeros(n, dtype=bool)
    flags[list(indices)] = True
    return flags


def test_event_scores_count_detected_missed_and_stray_runs() -> None:
    events = [AnomalyEvent(10, 12, "spike"), AnomalyEvent(50, 50, "dip")]
    # 11 detects the first event; 30-31 is one stray run, 70 another; the second event is missed.
    scores = event_scores(events, _flags(100, 11, 30, 31, 70), tolerance=3)
    assert (scores.true_positives, scores.false_positives, scores.false_negatives) == (1, 2, 1)
    assert scores.precision == pytest.approx(1 / 3)
    assert scores.recall == pytest.approx(1 / 2)
    assert scores.f1 == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))


def test_tolerance_widens_the_event_window() -> None:
    events = [AnomalyEvent(50, 50, "dip")]
    near = _flags(100, 53)
    assert event_scores(events, near, tolerance=3).true_positives == 1
    within_two = event_scores(events, near, tolerance=2)
    assert (within_two.true_positives, within_two.false_positives) == (0, 1)


def test_many_flags_inside_one_event_are_one_detection_and_no_false_alarm() -> None:
    events = [AnomalyEvent(20, 40, "level_shift")]
    scores = event_scores(events, _flags(100, 20, 22, 25, 30, 41, 43))
    assert (scores.true_positives, scores.false_positives, scores.false_negatives) == (1, 0, 0)


def test_a_run_crossing_the_window_edge_counts_its_outside_part_once() -> None:
    events = [AnomalyEvent(20, 20, "spike")]
    flags = np.zeros(60, dtype=bool)
    flags[21:30] = True  # 21-23 inside the tolerated window, 24-29 one stray run
    scores = event_scores(events, flags, tolerance=3)
    assert (scores.true_positives, scores.false_positives) == (1, 1)


def test_stray_flags_at_the_first_point_count() -> None:
    scores = event_scores([AnomalyEvent(50, 51, "spike")], _flags(100, 0, 1, 99))
    assert scores.false_positives == 2


def test_conventions_when_nothing_is_flagged_or_nothing_is_labelled() -> None:
    nothing = event_scores([], np.zeros(10, dtype=bool))
    assert (nothing.precision, nothing.recall, nothing.f1) == (1.0, 1.0, 1.0)
    missed = event_scores([AnomalyEvent(2, 3, "dip")], np.zeros(10, dtype=bool))
    assert (missed.precision, missed.recall, missed.f1) == (1.0, 0.0, 0.0)
    only_false = event_scores([], _flags(10, 4))
    assert (only_false.precision, only_false.recall, only_false.f1) == (0.0, 1.0, 0.0)


def test_event_scores_reject_bad_input() -> None:
    with pytest.raises(EvaluationError, match="tolerance"):
        event_scores([], np.zeros(5, dtype=bool), tolerance=-1)
    with pytest.raises(EvaluationError, match="outside"):
        event_scores([AnomalyEvent(7, 8, "spike")], np.zeros(5, dtype=bool))
    with pytest.raises(EvaluationError, match="one-dimensional"):
        event_scores([], np.zeros((2, 2), dtype=bool))


def test_point_scores_count_points() -> None:
    labels = _flags(10, 2, 3, 4)
    scores = point_scores(labels, _flags(10, 3, 4, 8))
    assert (scores.true_positives, scores.false_positives, scores.false_negatives) == (2, 1, 1)
    assert scores.precision == pytest.approx(2 / 3)
    assert scores.recall == pytest.approx(2 / 3)
    with pytest.raises(EvaluationError, match="points"):
        point_scores(labels, np.zeros(9, dtype=bool))


def test_combine_adds_counts_before_the_ratios() -> None:
    total = combine([Scores.from_counts(1, 0, 1), Scores.from_counts(3, 2, 0)])
    assert (total.true_positives, total.false_positives, total.false_negatives) == (4, 2, 1)
    assert total.precision == pytest.approx(4 / 6)
    assert total.recall == pytest.approx(4 / 5)


def test_nab_row_weights_follow_the_scaled_sigmoid() -> None:
    # one window on rows 10..13 (width 4) in 20 rows, standard profile
    weight, window = nab_row_weights(20, [(10, 13)], NAB_PROFILES["standard"])
    assert window.tolist() == [-1] * 10 + [0] * 4 + [-1] * 6
    assert weight[:10] == pytest.approx([-0.11] * 10)  # before the first window: full A_fp
    inside = [math.tanh(2.5 * k / 4) / math.tanh(2.5) for k in (4, 3, 2, 1)]
    assert weight[10:14] == pytest.approx(inside)  # the first row earns exactly A_tp
    after = [-0.11 * math.tanh(2.5 * k / 3) for k in range(1, 7)]
    assert weight[14:] == pytest.approx(after)  # small right after the window, then A_fp


def test_nab_probation_is_fifteen_percent_capped_at_750() -> None:
    assert (nab_probation(20), nab_probation(1000), nab_probation(10_000)) == (3, 150, 750)


def test_nab_scores_optimise_one_threshold_over_all_files() -> None:
    # file a: its window (rows 50..59) found on row 50 at 0.9; file b: a false alarm at 0.95
    # (before its window, rows 80..89, which is missed). Probation: 15 rows of each.
    scores_a = np.zeros(100)
    scores_a[50] = 0.9
    scores_b = np.zeros(100)
    scores_b[20] = 0.95
    files = [NabFile("a", scores_a, ((50, 59),)), NabFile("b", scores_b, ((80, 89),))]
    result = nab_scores(files)["standard"]
    # thresholds: 0.95 (the false alarm only: -2.11), 0.9 (both: 1 - 1 - 0.11 = -0.11),
    # 0 (every row: worse), none (-2). Best: 0.9.
    assert result.threshold == 0.9
    assert result.raw == pytest.approx(-0.11)
    assert (result.null, result.perfect) == (-2.0, 2.0)
    assert result.score == pytest.approx(100 * (-0.11 + 2) / 4)
    assert (result.windows, result.detected_windows, result.false_positives) == (2, 1, 1)
    # a row in the probationary period is never scored
    early = np.zeros(100)
    early[5] = 1.0
    assert nab_scores([NabFile("c", early, ((50, 59),))])["standard"].threshold == math.inf


def test_nab_scores_nothing_detected_is_zero_and_perfect_is_100() -> None:
    windows = ((30, 39), (60, 69))
    none = nab_scores([NabFile("x", np.full(100, np.nan), windows)])
    assert {p: s.score for p, s in none.items()} == dict.fromkeys(NAB_PROFILES, 0.0)
    perfect = np.zeros(100)
    perfect[[30, 60]] = 1.0
    best = nab_scores([NabFile("x", perfect, windows)])
    assert {p: s.score for p, s in best.items()} == pytest.approx(dict.fromkeys(NAB_PROFILES, 100))


def test_alarm_rates_are_skabs_definitions() -> None:
    labels = _flags(10, 2, 3, 4, 5)
    rates = alarm_rates(labels, _flags(10, 3, 4, 8))
    assert (rates.true_positives, rates.false_positives) == (2, 1)
    assert (rates.false_negatives, rates.true_negatives) == (2, 5)
    assert rates.f1 == pytest.approx(2 / (2 + 3 / 2))
    assert rates.false_alarm_rate == pytest.approx(100 / 6)
    assert rates.missed_alarm_rate == pytest.approx(50.0)
    total = rates + alarm_rates(labels, labels)
    assert (total.true_positives, total.true_negatives) == (6, 11)
