"""Event-wise scores computed the same way for meterwatch and for the reference.

Both detectors hand back raw per-row outputs (a flag per row and, for multivariate, a
contribution score per variable per row); these functions turn them into scores, so that the
definitions are identical on both sides of every comparison, univariate and multivariate.

Event-wise precision, recall and F1 are those of :func:`shared.evaluation.event_scores` (the
project's one definition, also used by the demo): each labelled event ``[start, end]`` is
widened by ``tolerance`` rows on both sides; an event with a flagged row in its window is
**detected** (a true positive), otherwise missed; consecutive flagged rows outside every window
form one **false alarm**. precision = detected / (detected + false alarms) (1.0 when nothing is
flagged), recall = detected / events (1.0 with no event), F1 their harmonic mean.
Micro-averaging over a corpus adds the counts first.

The **top contributor** of an event is the variable with the largest contribution summed over
the flagged rows of its window; top-contributor accuracy = events whose top contributor is the
labelled cause / all events with a cause (a missed event counts as wrong).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from shared.evaluation import AnomalyEvent, event_scores


@dataclass(frozen=True)
class LabelledEvent:
    """A labelled anomaly: rows ``start`` to ``end`` inclusive, and its cause when known."""

    start: int
    end: int
    cause: str | None = None


@dataclass(frozen=True)
class EventCounts:
    """The counts behind event-wise precision and recall (they add up across series)."""

    events: int = 0
    detected: int = 0
    false_alarms: int = 0

    def __add__(self, other: EventCounts) -> EventCounts:
        return EventCounts(
            self.events + other.events,
            self.detected + other.detected,
            self.false_alarms + other.false_alarms,
        )

    @property
    def precision(self) -> float:
        """Detected / (detected + false alarms); 1.0 when nothing was flagged."""
        alarms = self.detected + self.false_alarms
        return self.detected / alarms if alarms else 1.0

    @property
    def recall(self) -> float:
        """Detected events / events (1.0 with no event: nothing could be missed)."""
        return self.detected / self.events if self.events else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall (0.0 when both are 0)."""
        total = self.precision + self.recall
        return 2.0 * self.precision * self.recall / total if total else 0.0


def flagged_segments(flags: ArrayLike) -> list[tuple[int, int]]:
    """Return the maximal runs of flagged rows as ``(first, last)`` pairs, inclusive.

    Args:
        flags: One boolean per row.
    """
    mask = np.asarray(flags, dtype=bool).ravel()
    if mask.size == 0:
        return []
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def event_counts(
    events: Sequence[LabelledEvent | AnomalyEvent], flags: ArrayLike, tolerance: int = 3
) -> EventCounts:
    """Count detected events and false alarms of one series.

    Args:
        events: The labelled events (row positions, inside the series).
        flags: One boolean per row: the detector's verdict.
        tolerance: Rows of slack on each side of an event.

    Returns:
        The counts, from :func:`shared.evaluation.event_scores`.
    """
    mask = np.asarray(flags, dtype=bool).ravel()
    labelled = [
        e if isinstance(e, AnomalyEvent) else AnomalyEvent(e.start, e.end, e.cause or "")
        for e in events
    ]
    scores = event_scores(labelled, mask, tolerance)
    return EventCounts(
        scores.true_positives + scores.false_negatives,
        scores.true_positives,
        scores.false_positives,
    )


def top_contributors(
    events: Sequence[LabelledEvent],
    flags: ArrayLike,
    contributions: ArrayLike,
    variables: Sequence[str],
    tolerance: int = 3,
) -> list[str | None]:
    """Return each event's top contributor (``None`` when the event was not detected).

    Args:
        events: The labelled events (row positions).
        flags: One boolean per row.
        contributions: Rows x variables contribution scores (any scale; summed per variable).
        variables: Column names of ``contributions``.
        tolerance: Rows of slack on each side of an event.
    """
    mask = np.asarray(flags, dtype=bool).ravel()
    scores: NDArray[np.float64] = np.asarray(contributions, dtype=np.float64)
    if scores.shape != (mask.size, len(variables)):
        raise ValueError(
            f"contributions must be {mask.size} rows x {len(variables)} variables, "
            f"got shape {scores.shape}"
        )
    found: list[str | None] = []
    for event in events:
        low, high = max(event.start - tolerance, 0), max(event.end + tolerance + 1, 0)
        rows = np.flatnonzero(mask[low:high]) + low
        if rows.size == 0:
            found.append(None)
            continue
        found.append(str(variables[int(np.argmax(scores[rows].sum(axis=0)))]))
    return found


def top_contributor_accuracy(
    events: Sequence[LabelledEvent], found: Sequence[str | None]
) -> float | None:
    """Return the share of events with a cause whose top contributor is that cause.

    ``None`` when no event has a labelled cause.
    """
    judged = [(e.cause, f) for e, f in zip(events, found, strict=True) if e.cause is not None]
    if not judged:
        return None
    return sum(cause == top for cause, top in judged) / len(judged)


def score_multivariate(
    events: Sequence[LabelledEvent],
    flags: ArrayLike,
    contributions: ArrayLike,
    variables: Sequence[str],
    tolerance: int = 3,
) -> dict[str, float | int | None]:
    """Score one multivariate detection run against its labelled events.

    Returns:
        ``precision``, ``recall``, ``f1``, ``top_contributor_acc``, ``events``, ``detected``,
        ``false_alarms``, ``segments`` (all flagged runs) and ``flagged_rows``.
    """
    counts = event_counts(events, flags, tolerance)
    found = top_contributors(events, flags, contributions, variables, tolerance)
    return {
        "precision": counts.precision,
        "recall": counts.recall,
        "f1": counts.f1,
        "top_contributor_acc": top_contributor_accuracy(events, found),
        "events": counts.events,
        "detected": counts.detected,
        "false_alarms": counts.false_alarms,
        "segments": len(flagged_segments(flags)),
        "flagged_rows": int(np.asarray(flags, dtype=bool).sum()),
    }


def events_from_dicts(
    items: Iterable[Mapping[str, object]], offset: int = 0
) -> list[LabelledEvent]:
    """Read labelled events from dicts with ``start``/``end`` row indices and a cause.

    The cause is read from ``cause`` (or ``variable``); ``end`` is inclusive. ``offset`` is
    subtracted from the indices (to score a detection window that starts at row ``offset``).

    Raises:
        ValueError: An event lacks integer ``start``/``end``.
    """
    events: list[LabelledEvent] = []
    for item in items:
        start, end = item.get("start"), item.get("end")
        if not isinstance(start, int | np.integer) or not isinstance(end, int | np.integer):
            raise ValueError(f"event {dict(item)!r} needs integer 'start' and 'end' row indices")
        cause = item.get("cause", item.get("variable"))
        events.append(
            LabelledEvent(
                int(start) - offset, int(end) - offset, None if cause is None else str(cause)
            )
        )
    return events
