"""Detection quality metrics: event-wise and point-wise precision, recall and F1.

Event-wise scoring (:func:`event_scores`) is what the benchmarks report, because it matches
how people use an anomaly detector: one alarm per incident is what matters, and a burst of
flags on one incident is still one alarm. The definition:

* Each labelled event ``[start, end]`` is widened by ``tolerance`` points on both sides (clipped
  to the series) to form its *window*.
* An event is a **true positive** when at least one flagged point lies in its window, otherwise a
  **false negative**.
* Flagged points that lie in no window are **false positives**, counted per *run*: consecutive
  flagged points outside every window form one false alarm. Flagged points inside a window never
  count against precision.
* ``precision = TP / (TP + FP)``, ``recall = TP / (TP + FN)``, ``F1`` their harmonic mean. With
  nothing flagged precision is 1.0; with no events recall is 1.0; F1 is 0.0 when both precision
  and recall are 0.

Point-wise scoring (:func:`point_scores`) is the plain per-point confusion count. Both return a
:class:`Scores`; :func:`combine` adds the counts of several series (micro-average), which is how
a corpus gets one figure.

Labelled benchmarks are scored with their published rules:

* :func:`nab_scores`: the Numenta Anomaly Benchmark v1.1 (profiles :data:`NAB_PROFILES`). Each
  labelled window ``[a, b]`` (inclusive rows, width ``w``) is worth ``A_tp`` to its earliest
  detection, scaled by the sigmoid ``f(x) = 2 / (1 + exp(5x)) - 1`` (= ``-tanh(2.5 x)``) of the
  detection's relative position ``x = -(b - i + 1) / w`` and divided by ``f(-1)``, so the
  window's first row earns exactly ``A_tp``; later detections in the same window add nothing;
  a window without detection costs ``A_fn``. A detection outside every window costs ``A_fp``
  before the first window, and ``-A_fp f((i - b) / (w - 1))`` after window ``[a, b]`` (little
  right after it, the full ``A_fp`` from three widths on; a one-row window gives the full cost).
  The first ``min(floor(0.15 n), 750)`` rows of a file are a probationary period and are not
  scored. A row is a detection when its score is ``>= threshold``; the threshold is optimised
  per profile over all files together (every distinct score, and "no detection"; ties go to
  the highest). Normalised score = ``100 (raw - null) / (perfect - null)``, with ``null`` = no
  detection at all (``-A_fn`` per scored window) and ``perfect`` = ``A_tp`` per window.
* :func:`alarm_rates`: SKAB's outlier metrics, point-wise with the counts summed over files:
  ``F1 = TP / (TP + (FP + FN) / 2)``, false-alarm rate ``FAR = FP / (FP + TN)`` and
  missed-alarm rate ``MAR = FN / (FN + TP)`` (as percentages; 0 when the denominator is).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from shared.errors import EvaluationError
from shared.evaluation.events import AnomalyEvent

__all__ = [
    "NAB_PROFILES",
    "AlarmRates",
    "AnomalyEvent",
    "NabCost",
    "NabFile",
    "NabProfileScore",
    "Scores",
    "alarm_rates",
    "combine",
    "event_scores",
    "nab_probation",
    "nab_row_weights",
    "nab_scores",
    "point_scores",
    "runs",
]


@dataclass(frozen=True)
class Scores:
    """Precision, recall and F1 with the counts they come from."""

    precision: float
    recall: float
    f1: float
    true_positives: int
    false_positives: int
    false_negatives: int

    @classmethod
    def from_counts(cls, tp: int, fp: int, fn: int) -> Scores:
        """Build scores from counts (the conventions are in the module docstring).

        Args:
            tp: True positives.
            fp: False positives.
            fn: False negatives.

        Returns:
            The scores.
        """
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return cls(precision, recall, f1, tp, fp, fn)


def _as_flags(flagged: np.ndarray, name: str) -> np.ndarray:
    flags = np.asarray(flagged)
    if flags.ndim != 1:
        raise EvaluationError(f"{name} must be one-dimensional, got shape {flags.shape}")
    return flags.astype(bool)


def _paired_flags(labels: np.ndarray, flagged: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and flags as 1-D booleans of one length (else :class:`EvaluationError`)."""
    truth = _as_flags(labels, "labels")
    flags = _as_flags(flagged, "flagged")
    if truth.size != flags.size:
        raise EvaluationError(f"labels has {truth.size} points but flagged has {flags.size}")
    return truth, flags


def event_scores(events: Sequence[AnomalyEvent], flagged: np.ndarray, tolerance: int = 3) -> Scores:
    """Score flags against labelled events, event by event.

    Args:
        events: Labelled anomaly events (inclusive index ranges).
        flagged: Boolean flag per point, as returned by a detector.
        tolerance: Points of slack on each side of an event.

    Returns:
        Event-wise scores (definition in the module docstring).

    Raises:
        EvaluationError: If ``flagged`` is not 1-D, ``tolerance`` is negative, or an event lies
            outside the series.
    """
    flags = _as_flags(flagged, "flagged")
    if tolerance < 0:
        raise EvaluationError(f"tolerance must be >= 0, got {tolerance}")
    n = flags.size
    covered = np.zeros(n, dtype=bool)
    tp = fn = 0
    for event in events:
        if event.start >= n:
            raise EvaluationError(f"event {event.start}..{event.end} lies outside a series of {n}")
        lo, hi = max(0, event.start - tolerance), min(n - 1, event.end + tolerance)
        covered[lo : hi + 1] = True
        if flags[lo : hi + 1].any():
            tp += 1
        else:
            fn += 1
    stray = flags & ~covered
    # A run starts wherever a stray flag follows a non-stray point.
    fp = int(np.count_nonzero(stray[1:] & ~stray[:-1]) + (1 if n and stray[0] else 0))
    return Scores.from_counts(tp, fp, fn)


def point_scores(labels: np.ndarray, flagged: np.ndarray) -> Scores:
    """Score flags against per-point labels.

    Args:
        labels: Boolean label per point (true = anomalous).
        flagged: Boolean flag per point.

    Returns:
        Point-wise scores.

    Raises:
        EvaluationError: If the arrays are not 1-D or differ in length.
    """
    truth, flags = _paired_flags(labels, flagged)
    tp = int(np.count_nonzero(truth & flags))
    fp = int(np.count_nonzero(~truth & flags))
    fn = int(np.count_nonzero(truth & ~flags))
    return Scores.from_counts(tp, fp, fn)


def combine(scores: Iterable[Scores]) -> Scores:
    """Add the counts of several scores and recompute the ratios (micro-average).

    Args:
        scores: Scores of individual series.

    Returns:
        The corpus-level scores.
    """
    tp = fp = fn = 0
    for s in scores:
        tp += s.true_positives
        fp += s.false_positives
        fn += s.false_negatives
    return Scores.from_counts(tp, fp, fn)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive ``(start, end)`` index ranges of the consecutive true values of ``mask``."""
    edges = np.diff(np.concatenate(([0], np.asarray(mask, dtype=np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


# --------------------------------------------------------------------------- SKAB


@dataclass(frozen=True)
class AlarmRates:
    """Point-wise counts with SKAB's F1, false-alarm rate and missed-alarm rate (percent)."""

    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int

    @property
    def f1(self) -> float:
        """``TP / (TP + (FP + FN) / 2)`` (0 with no positive and no flag)."""
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        return tp / (tp + (fp + fn) / 2) if tp + fp + fn else 0.0

    @property
    def precision(self) -> float:
        """``TP / (TP + FP)`` (1.0 when nothing is flagged)."""
        flagged = self.true_positives + self.false_positives
        return self.true_positives / flagged if flagged else 1.0

    @property
    def recall(self) -> float:
        """``TP / (TP + FN)`` (1.0 when nothing is labelled)."""
        positives = self.true_positives + self.false_negatives
        return self.true_positives / positives if positives else 1.0

    @property
    def false_alarm_rate(self) -> float:
        """``100 FP / (FP + TN)``: the share of normal points flagged."""
        normal = self.false_positives + self.true_negatives
        return 100.0 * self.false_positives / normal if normal else 0.0

    @property
    def missed_alarm_rate(self) -> float:
        """``100 FN / (FN + TP)``: the share of anomalous points not flagged."""
        positives = self.false_negatives + self.true_positives
        return 100.0 * self.false_negatives / positives if positives else 0.0

    def __add__(self, other: AlarmRates) -> AlarmRates:
        return AlarmRates(
            self.true_positives + other.true_positives,
            self.false_positives + other.false_positives,
            self.false_negatives + other.false_negatives,
            self.true_negatives + other.true_negatives,
        )


def alarm_rates(labels: np.ndarray, flagged: np.ndarray) -> AlarmRates:
    """Count flags against per-point labels (SKAB's outlier metrics, see the module docstring).

    Args:
        labels: Boolean label per point (true = anomalous).
        flagged: Boolean flag per point.

    Returns:
        The counts, with F1, FAR and MAR as properties; add several with ``+``.

    Raises:
        EvaluationError: If the arrays are not 1-D or differ in length.
    """
    truth, flags = _paired_flags(labels, flagged)
    return AlarmRates(
        int(np.count_nonzero(truth & flags)),
        int(np.count_nonzero(~truth & flags)),
        int(np.count_nonzero(truth & ~flags)),
        int(np.count_nonzero(~truth & ~flags)),
    )


# --------------------------------------------------------------------------- NAB


@dataclass(frozen=True)
class NabCost:
    """The weights of one NAB profile: a window's first-row detection, a false alarm, a miss."""

    tp: float
    fp: float
    fn: float


#: NAB v1.1 profiles (its ``config/profiles.json``).
NAB_PROFILES: dict[str, NabCost] = {
    "standard": NabCost(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": NabCost(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": NabCost(tp=1.0, fp=0.11, fn=2.0),
}
#: NAB's probationary period: this share of a file, at most :data:`NAB_PROBATION_CAP` rows.
NAB_PROBATION_FRACTION = 0.15
NAB_PROBATION_CAP = 750


@dataclass(frozen=True)
class NabFile:
    """One scored file: a score per row (NaN: no score, never a detection) and its windows.

    Attributes:
        name: The file's name (for the per-file report).
        scores: Anomaly score per row; a row is a detection when its score is ``>=`` the
            threshold.
        windows: Labelled windows as inclusive row ranges, sorted, not overlapping.
    """

    name: str
    scores: np.ndarray
    windows: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class NabProfileScore:
    """One profile's result over a set of files, at its optimised threshold.

    Attributes:
        profile: The profile's name.
        score: The normalised score (null detector 0, perfect 100).
        raw: The raw score at the threshold.
        null: The raw score without any detection.
        perfect: The raw score of a detector that finds every window on its first row.
        threshold: The optimised threshold (``inf``: detecting nothing was best).
        windows: Windows scored (at least one row after the probationary period).
        detected_windows: Windows with a detection at the threshold.
        false_positives: Detections outside every window at the threshold.
    """

    profile: str
    score: float
    raw: float
    null: float
    perfect: float
    threshold: float
    windows: int
    detected_windows: int
    false_positives: int


def nab_probation(rows: int) -> int:
    """Rows at the start of a file that NAB does not score (its probationary period)."""
    return int(min(math.floor(NAB_PROBATION_FRACTION * rows), NAB_PROBATION_CAP))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """NAB's scaled sigmoid ``2 / (1 + exp(5x)) - 1``, taken as -1 beyond ``x = 3``."""
    with np.errstate(over="ignore"):
        scaled = 2.0 / (1.0 + np.exp(5.0 * x)) - 1.0
    return np.where(x > 3.0, -1.0, scaled)


_FIRST_ROW = float(_sigmoid(np.array([-1.0]))[0])


def nab_row_weights(
    rows: int, windows: Sequence[tuple[int, int]], cost: NabCost
) -> tuple[np.ndarray, np.ndarray]:
    """What a detection on each row of a file is worth under one profile.

    Args:
        rows: Rows in the file.
        windows: Labelled windows (inclusive row ranges, sorted, not overlapping).
        cost: The profile.

    Returns:
        ``(weight, window)``: per row, the value of a detection there (positive inside a
        window, negative outside), and the number of the window it lies in (-1 outside).

    Raises:
        EvaluationError: A window is empty, out of range, unsorted or overlaps the one before.
    """
    weight = np.full(rows, -cost.fp, dtype=np.float64)
    window = np.full(rows, -1, dtype=np.int64)
    position = np.arange(rows, dtype=np.float64)
    previous_end = -1
    for number, (start, end) in enumerate(windows):
        if not 0 <= start <= end < rows or start <= previous_end:
            raise EvaluationError(
                f"window {number} (rows {start}..{end}) is empty, outside the {rows} rows, or "
                "not after the window before it"
            )
        previous_end = end
        width = end - start + 1
        window[start : end + 1] = number
        inside = -(end - position[start : end + 1] + 1.0) / width
        weight[start : end + 1] = cost.tp * _sigmoid(inside) / _FIRST_ROW
        following = windows[number + 1][0] if number + 1 < len(windows) else rows
        if following > end + 1:
            after = position[end + 1 : following] - end
            distance = after / (width - 1.0) if width > 1 else np.full(after.size, np.inf)
            weight[end + 1 : following] = cost.fp * _sigmoid(distance)
    return weight, window


def nab_scores(
    files: Sequence[NabFile],
    profiles: Mapping[str, NabCost] = NAB_PROFILES,
    probation: bool = True,
) -> dict[str, NabProfileScore]:
    """Score files with NAB's rules (module docstring), one threshold per profile for all files.

    Args:
        files: The files, each with a score per row and its labelled windows.
        profiles: The profiles to score (default: NAB's three).
        probation: Leave NAB's probationary period out (its rules); ``False`` scores every row.

    Returns:
        Profile name -> its score at the optimised threshold.

    Raises:
        EvaluationError: A file's windows are not valid row ranges (see :func:`nab_row_weights`).
    """
    return {name: _nab_profile(name, files, cost, probation) for name, cost in profiles.items()}


def _nab_profile(
    name: str, files: Sequence[NabFile], cost: NabCost, probation: bool
) -> NabProfileScore:
    scores_parts: list[np.ndarray] = []
    weight_parts: list[np.ndarray] = []
    group_parts: list[np.ndarray] = []
    groups = 0
    perfect = 0.0
    for item in files:
        scores = np.asarray(item.scores, dtype=np.float64)
        # +inf would tie with the "no detection" threshold
        scores = np.where(np.isposinf(scores), np.finfo(np.float64).max, scores)
        weight, window = nab_row_weights(scores.size, item.windows, cost)
        first = nab_probation(scores.size) if probation else 0
        perfect += cost.tp * len(item.windows)
        kept_window = window[first:]
        scored = np.unique(kept_window[kept_window >= 0])
        # number the windows scored across all files: 0 .. groups-1
        renumber = np.full(len(item.windows) + 1, -1, dtype=np.int64)
        renumber[scored] = np.arange(groups, groups + scored.size)
        groups += scored.size
        usable = ~np.isnan(scores[first:])
        scores_parts.append(scores[first:][usable])
        weight_parts.append(weight[first:][usable])
        group_parts.append(renumber[kept_window][usable])
    null = -cost.fn * groups
    score = np.concatenate(scores_parts) if scores_parts else np.empty(0)
    weight = np.concatenate(weight_parts) if weight_parts else np.empty(0)
    group = np.concatenate(group_parts) if group_parts else np.empty(0, dtype=np.int64)
    threshold, raw = math.inf, null
    if score.size:
        threshold, raw = _best_threshold(score, weight, group, cost, null)
    detected = score >= threshold
    normalised = 100.0 * (raw - null) / (perfect - null) if perfect != null else math.nan
    return NabProfileScore(
        profile=name,
        score=normalised,
        raw=raw,
        null=null,
        perfect=perfect,
        threshold=threshold,
        windows=groups,
        detected_windows=int(np.unique(group[detected & (group >= 0)]).size),
        false_positives=int(np.count_nonzero(detected & (group < 0))),
    )


def _best_threshold(
    score: np.ndarray, weight: np.ndarray, group: np.ndarray, cost: NabCost, null: float
) -> tuple[float, float]:
    """The threshold with the best raw total, and that total (ties: the highest threshold).

    Rows are admitted from the highest score down. A row outside windows changes the total by
    its own weight; a row inside a window raises the window's value from the best detection
    admitted before it (``-A_fn`` while there is none) to the best including it.
    """
    order = np.argsort(-score, kind="stable")
    score, weight, group = score[order], weight[order], group[order]
    change = np.where(group < 0, weight, 0.0)
    for window in np.unique(group[group >= 0]):
        rows = np.flatnonzero(group == window)  # in score order
        best = np.maximum(np.maximum.accumulate(weight[rows]), -cost.fn)
        change[rows] = best - np.r_[-cost.fn, best[:-1]]
    totals = null + np.cumsum(change)
    # a threshold admits whole groups of tied scores: the total after the last of each group
    last = np.flatnonzero(np.r_[score[1:] != score[:-1], True])
    candidates = np.r_[null, totals[last]]
    pick = int(np.argmax(candidates))
    if pick == 0:
        return math.inf, null
    return float(score[last[pick - 1]]), float(candidates[pick])
