"""A labelled anomaly: what the scoring functions compare detections with.

Owned by the evaluation room (event-wise scoring counts one alarm per labelled event); the
synthetic household of the demo and the benchmark corpus label their series with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import InputError

__all__ = ["AnomalyEvent"]


@dataclass(frozen=True)
class AnomalyEvent:
    """One labelled anomaly: the inclusive index range ``[start, end]`` and its kind."""

    start: int
    end: int
    kind: str

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise InputError(
                f"AnomalyEvent needs 0 <= start <= end, got {self.start}..{self.end}",
                "InvalidHouseholdParameters",
            )
