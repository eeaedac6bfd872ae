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
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from shared.demo.household import AnomalyEvent

__all__ = ["Scores", "combine", "event_scores", "point_scores"]


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
        raise ValueError(f"{name} must be one-dimensional, got shape {flags.shape}")
    return flags.astype(bool)


def event_scores(events: Sequence[AnomalyEvent], flagged: np.ndarray, tolerance: int = 3) -> Scores:
    """Score flags against labelled events, event by event.

    Args:
        events: Labelled anomaly events (inclusive index ranges).
        flagged: Boolean flag per point, as returned by a detector.
        tolerance: Points of slack on each side of an event.

    Returns:
        Event-wise scores (definition in the module docstring).

    Raises:
        ValueError: If ``flagged`` is not 1-D, ``tolerance`` is negative, or an event lies
            outside the series.
    """
    flags = _as_flags(flagged, "flagged")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    n = flags.size
    covered = np.zeros(n, dtype=bool)
    tp = fn = 0
    for event in events:
        if event.start >= n:
            raise ValueError(f"event {event.start}..{event.end} lies outside a series of {n}")
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
        ValueError: If the arrays are not 1-D or differ in length.
    """
    truth = _as_flags(labels, "labels")
    flags = _as_flags(flagged, "flagged")
    if truth.size != flags.size:
        raise ValueError(f"labels has {truth.size} points but flagged has {flags.size}")
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
