"""The benchmark harness's pure helpers: ratios, targets, the results file, event scoring.

None of these needs the reference venv or a detector: they check the arithmetic and the
bookkeeping that ``bench/run`` builds its table and ``bench/results.json`` from.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.bench_import import run_once
from bench.bench_ingest import paired_rates, simulate_events
from bench.bench_quality import period_of
from bench.harness import (
    NotAvailable,
    PartReport,
    Results,
    Target,
    derive,
    evaluate,
    format_table,
    format_value,
    load_results,
    merge_results,
    part_of,
    ratio,
    require,
    summarise,
    write_results,
)
from bench.reference_worker import granularity_of
from bench.scoring import (
    EventCounts,
    LabelledEvent,
    event_counts,
    events_from_dicts,
    flagged_segments,
    score_multivariate,
    top_contributor_accuracy,
    top_contributors,
)
from bench.suite import parse_parts

# --- ratios and targets ------------------------------------------------------------------------


def test_ratio_divides_and_refuses_what_is_undefined() -> None:
    assert ratio(7500.0, 2.5) == pytest.approx(3000.0)
    assert ratio(3, 4) == pytest.approx(0.75)
    assert ratio(None, 2.0) is None
    assert ratio(1.0, None) is None
    assert ratio(1.0, 0.0) is None
    assert ratio(1.0, -2.0) is None
    assert ratio(float("nan"), 1.0) is None
    assert ratio(True, 1.0) is None  # a flag is not a figure
    assert ratio("12", 1.0) is None


def test_derive_computes_each_ratio_from_the_same_run() -> None:
    derived = derive(
        {
            "entire_8640_ms": 4.0,
            "reference_entire_8640_ms": 7400.0,
            "ingest_events_per_s": 150_000.0,
            "json_parse_events_per_s": 450_000.0,
            "mv_train_10k_s": 2.0,
        }
    )
    assert derived["entire_speedup"] == pytest.approx(1850.0)
    assert derived["mv_train_speedup"] is None  # the reference side was not measured
    assert "ingest_vs_json_ratio" not in derived  # measured paired by the ingest part


def test_evaluate_checks_bounds_both_ways_and_against_other_metrics() -> None:
    targets = (
        Target("entire_8640_ms", "<=", 20.0),
        Target("ingest_events_per_s", ">=", 100_000.0),
        Target("f1_entire", ">=", "reference_f1_entire"),
        Target("import_s", "<=", 1.0),
        Target("mv_f1", ">=", "reference_mv_f1"),
    )
    results = {
        "entire_8640_ms": 20.0,  # equal to the bound passes
        "ingest_events_per_s": 99_999.0,
        "f1_entire": 0.61,
        "reference_f1_entire": 0.6,
        "mv_f1": 0.9,  # its bound was not measured
    }
    statuses = {o.target.metric: o.status for o in evaluate(results, targets)}
    assert statuses == {
        "entire_8640_ms": "PASS",
        "ingest_events_per_s": "MISS",
        "f1_entire": "PASS",
        "import_s": "n/a",
        "mv_f1": "n/a",
    }
    summary = summarise(evaluate(results, targets))
    assert summary["targets_passed"] == 2
    assert summary["targets_missed"] == 1
    assert summary["targets_not_measured"] == 2
    assert summary["targets_missed_list"] == "ingest_events_per_s"


def test_evaluate_refuses_an_unknown_operator() -> None:
    with pytest.raises(ValueError, match="op must be"):
        evaluate({"a": 1.0}, [Target("a", "<", 2.0)])


def test_table_prints_status_beside_each_targeted_figure() -> None:
    results = {"entire_8640_ms": 31.5, "import_s": None, "quality_series": 29}
    table = format_table(results, evaluate(results))
    lines = {line.split()[0]: line for line in table.splitlines()[2:]}
    assert lines["entire_8640_ms"].endswith("MISS")
    assert "31.50 ms" in lines["entire_8640_ms"]
    assert lines["import_s"].endswith("n/a")
    assert "29" in lines["quality_series"] and "PASS" not in lines["quality_series"]


def test_format_value_keeps_counts_whole_and_marks_missing() -> None:
    assert format_value(None) == "n/a"
    assert format_value(27) == "27"
    assert format_value(123456.7, "ev/s") == "123,457 ev/s"
    assert format_value(1850.0, "x") == "1,850x"
    assert format_value(0.0412, "") == "0.04120"


# --- the results file ---------------------------------------------------------------------------


def test_results_file_is_flat_json_with_null_for_non_finite(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    written = write_results(
        path, {"a_ms": np.float64(1.5), "n": np.int64(3), "bad": math.inf, "s": "ok", "b": True}
    )
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    assert on_disk == {"a_ms": 1.5, "n": 3, "bad": None, "s": "ok", "b": True}
    assert written == on_disk
    assert load_results(path) == on_disk


def test_results_file_refuses_nested_values(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="must be a number"):
        write_results(tmp_path / "r.json", {"machine": {"cores": 2}})


def test_load_results_of_a_missing_or_broken_file_is_empty(tmp_path: Path) -> None:
    assert load_results(tmp_path / "absent.json") == {}
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    assert load_results(broken) == {}


def test_merge_replaces_every_key_of_a_rerun_part_and_keeps_the_others() -> None:
    previous: Results = {
        "entire_8640_ms": 5.0,
        "entire_8640_flagged": 12,  # stale: not measured this time
        "univariate_status": "ok",
        "ingest_events_per_s": 120_000.0,
        "ingest_status": "ok",
        "entire_speedup": 1500.0,  # derived: recomputed after the merge
        "machine": "old machine",
    }
    current: Results = {"reference_entire_8640_ms": 7000.0, "univariate_status": "partial"}
    merged = merge_results(previous, current, ["univariate"])
    assert merged == {
        "ingest_events_per_s": 120_000.0,
        "ingest_status": "ok",
        "reference_entire_8640_ms": 7000.0,
        "univariate_status": "partial",
    }


def test_every_catalogued_metric_belongs_to_its_part() -> None:
    from bench.harness import METRICS, RATIOS

    for metric in METRICS:
        if metric.name in RATIOS:
            continue  # ratios are recomputed, never merged
        assert part_of(metric.name) == metric.part, metric.name


def test_parse_parts_keeps_suite_order_and_names_unknown_parts() -> None:
    assert parse_parts(None) == [
        "univariate",
        "ingest",
        "import",
        "quality",
        "mv",
        "api",
        "live",
        "tuning",
    ]
    assert parse_parts("mv, ingest") == ["ingest", "mv"]
    with pytest.raises(ValueError, match="unknown part"):
        parse_parts("ingest,speed")


# --- parts that are not there yet ---------------------------------------------------------------


def test_part_report_notes_missing_and_failing_pieces() -> None:
    report = PartReport("univariate")

    def missing() -> float:
        raise NotAvailable("shared.engine.streaming is not written yet")

    def broken() -> float:
        raise ZeroDivisionError("division by zero")

    assert report.attempt("ours stream", missing) is None
    assert report.attempt("ours entire", broken) is None
    assert report.attempt("reference", lambda: 7.0) == 7.0
    assert report.failed
    assert report.status() == (
        "ours stream: not available (shared.engine.streaming is not written yet); "
        "ours entire: failed (ZeroDivisionError: division by zero)"
    )


def test_require_turns_missing_meterwatch_code_into_not_available() -> None:
    with pytest.raises(NotAvailable, match="shared.no_such_module"):
        require("shared.no_such_module", "anything")
    with pytest.raises(NotAvailable, match="has no no_such_name"):
        require("bench.harness", "ratio", "no_such_name")
    with pytest.raises(ModuleNotFoundError):
        require("no_such_third_party_package")
    assert require("bench.harness", "ratio").ratio is ratio


# --- event scoring ------------------------------------------------------------------------------


def test_flagged_segments_are_inclusive_runs() -> None:
    flags = [False, True, True, False, False, True, False, True]
    assert flagged_segments(flags) == [(1, 2), (5, 5), (7, 7)]
    assert flagged_segments([]) == []
    assert flagged_segments([False, False]) == []


def test_event_counts_use_the_tolerance_on_both_sides() -> None:
    events = [LabelledEvent(10, 12), LabelledEvent(40, 40), LabelledEvent(70, 71)]
    flags = np.zeros(100, dtype=bool)
    flags[15] = True  # 3 after event 1's end: detected
    flags[[11, 12]] = True  # more flags on event 1: still one detection, no false alarm
    flags[[50, 51]] = True  # far from any event: one false alarm
    flags[36] = True  # 4 before event 2: too far, a second false alarm; event 2 missed
    counts = event_counts(events, flags, tolerance=3)
    assert counts == EventCounts(events=3, detected=1, false_alarms=2)
    assert counts.precision == pytest.approx(1 / 3)
    assert counts.recall == pytest.approx(1 / 3)
    assert counts.f1 == pytest.approx(1 / 3)
    assert event_counts(events, flags, tolerance=4).detected == 2


def test_event_counts_add_up_across_series_as_a_micro_average() -> None:
    total = EventCounts(2, 2, 0) + EventCounts(2, 0, 6)
    assert total == EventCounts(4, 2, 6)
    assert total.precision == pytest.approx(0.25)
    assert total.recall == pytest.approx(0.5)
    assert total.f1 == pytest.approx(2 * 0.25 * 0.5 / 0.75)


def test_empty_counts_have_no_false_alarm_and_nothing_missed() -> None:
    assert EventCounts().precision == 1.0
    assert EventCounts().recall == 1.0
    assert EventCounts(events=3).f1 == pytest.approx(0.0)


def test_top_contributor_sums_contributions_over_flagged_rows_of_the_event() -> None:
    events = [
        LabelledEvent(2, 3, "kitchen"),
        LabelledEvent(10, 10, "power"),
        LabelledEvent(20, 20, "power"),
    ]
    flags = np.zeros(25, dtype=bool)
    flags[[2, 3, 4]] = True
    flags[10] = True
    contributions = np.full((25, 2), 0.5)
    contributions[2] = [0.9, 0.1]  # kitchen, power
    contributions[3] = [0.2, 0.8]
    contributions[4] = [0.6, 0.4]  # within tolerance: counts for the first event
    contributions[10] = [0.7, 0.3]
    found = top_contributors(events, flags, contributions, ["kitchen", "power"], tolerance=1)
    assert found == ["kitchen", "kitchen", None]
    assert top_contributor_accuracy(events, found) == pytest.approx(1 / 3)
    assert top_contributor_accuracy([LabelledEvent(0, 1)], [None]) is None


def test_score_multivariate_checks_the_shape_of_contributions() -> None:
    with pytest.raises(ValueError, match="rows x 2 variables"):
        score_multivariate([LabelledEvent(0, 0, "a")], [True, False], np.ones((3, 2)), ["a", "b"])


def test_events_from_dicts_shifts_by_the_detection_offset() -> None:
    events = events_from_dicts([{"start": 120, "end": 125, "cause": "voltage"}], offset=100)
    assert events == [LabelledEvent(20, 25, "voltage")]
    with pytest.raises(ValueError, match="integer 'start' and 'end'"):
        events_from_dicts([{"start": "2024-01-01", "end": 3}])


# --- inputs of the parts ------------------------------------------------------------------------


def test_make_config_refuses_to_drop_a_setting_silently() -> None:
    from dataclasses import dataclass

    from bench.bench_univariate import make_config

    @dataclass(frozen=True)
    class Config:
        sensitivity: int = 99
        period: int | None = None

    assert make_config(Config, sensitivity=95, period=24) == Config(95, 24)
    with pytest.raises(NotAvailable, match="Config has no max_anomaly_ratio"):
        make_config(Config, sensitivity=95, max_anomaly_ratio=0.25)


def test_reference_granularity_follows_the_sampling_step() -> None:
    assert granularity_of(60) == ("minutely", None)
    assert granularity_of(300) == ("minutely", 5)
    assert granularity_of(3600) == ("hourly", None)
    assert granularity_of(900) == ("minutely", 15)
    assert granularity_of(86400) == ("daily", None)
    assert granularity_of(30) == ("secondly", 30)


def test_true_period_is_used_only_with_two_cycles_and_a_point() -> None:
    assert period_of("cpu_5min-3", 2016) == 288
    assert period_of("quantised_sensor-0", 2880) == 0  # 1,440 needs 2,881 points
    assert period_of("quantised_sensor-1", 2881) == 1440
    assert period_of("latency_1min-0", 4000) == 0
    assert period_of("clean-0", 1000) == 144
    assert period_of("household-power", 8640) == 1440
    assert period_of("unknown_family-0", 5000) is None


def test_paired_rates_time_both_sides_alternately(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    # A fake clock: the subject "takes" 4 ticks and the baseline 1, whatever the machine load.
    clock = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    calls: list[str] = []

    def subject() -> None:
        calls.append("s")
        clock[0] += 0.004

    def baseline() -> None:
        calls.append("b")
        clock[0] += 0.001

    subject_rate, baseline_rate, slower = paired_rates(subject, baseline, 100, repeats=3)
    assert calls == ["s", "b"] * 4  # one warm-up pair, then three timed pairs
    assert subject_rate == pytest.approx(100 / 0.004)
    assert baseline_rate == pytest.approx(100 / 0.001)
    assert slower == pytest.approx(4.0)


def test_simulated_ingest_events_mix_both_shapes_deterministically() -> None:
    events = simulate_events(3000, seed=3)
    assert len(events) == 3000
    assert [e.body for e in events] == [e.body for e in simulate_events(3000, seed=3)]
    decoded = []
    for event in events:
        try:
            decoded.append(json.loads(event.body))
        except ValueError:
            continue
    assert len(decoded) >= 2980  # a handful of malformed bodies, as on a real hub
    tutorial = [d for d in decoded if "value" in d and "deviceId" not in d]
    multi = [d for d in decoded if "deviceId" in d and "power" in d]
    assert len(tutorial) > 1000 and len(multi) > 1000
    assert all(isinstance(d["value"], str) for d in tutorial)
    assert all(e.system_properties["iothub-connection-device-id"] for e in events)
    assert len({e.sequence_number for e in events}) == len(events)


def test_run_once_measures_a_fresh_process_and_reports_failures(tmp_path: Path) -> None:
    import resource

    python = Path(sys.executable)
    ballast = bytearray(200 * 2**20)  # make this process far bigger than a bare interpreter
    ballast[::4096] = b"x" * len(ballast[::4096])
    parent_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    wall, peak_mb = run_once("pass", python, tmp_path, {})
    bigger_mb = run_once(
        "b = bytearray(80 * 2**20); b[::4096] = b'x' * len(b[::4096])", python, tmp_path, {}
    )[1]
    assert 0.0 < wall < 30.0
    assert 1.0 < peak_mb < 60.0 < parent_mb  # the child's own size, not its parent's
    assert bigger_mb > peak_mb + 70.0
    with pytest.raises(RuntimeError, match="exited 3"):
        run_once("import sys; sys.exit(3)", python, tmp_path, {})
