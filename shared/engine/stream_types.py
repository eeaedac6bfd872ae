"""The streaming detector's configuration and judgements (see :mod:`shared.engine.streaming`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.errors import EngineError

__all__ = ["StreamBatch", "StreamConfig", "StreamPoint"]


@dataclass(frozen=True)
class StreamConfig:
    """Parameters of streaming detection.

    Attributes:
        sensitivity: 0-99; higher means narrower margins (v1.1 semantics).
        period: Points per cycle; ``None`` detects it from the history, ``0`` means none.
        warmup: Points collected before the first judgement (at least 12).
        history: Recent points kept for refits and period detection (at least 3 cycles of
            the given period are always kept).
        refit_every: Points between refits of the robust model (once a cycle at most, for
            seasonal series with shorter cycles, but never more often than every 64 points).
    """

    sensitivity: int = 95
    period: int | None = None
    warmup: int = 60
    history: int = 5760
    refit_every: int = 512

    def __post_init__(self) -> None:
        if not 0 <= self.sensitivity <= 99:
            raise EngineError(f"sensitivity must be between 0 and 99, got {self.sensitivity}")
        if self.period is not None and self.period < 0:
            raise EngineError(f"period must be >= 0 (0 = no seasonality), got {self.period}")
        if self.warmup < 12:
            raise EngineError(f"warmup must be at least 12 points, got {self.warmup}")
        if self.history < self.warmup:
            raise EngineError(f"history ({self.history}) must be at least warmup ({self.warmup})")
        if self.refit_every < 1:
            raise EngineError(f"refit_every must be >= 1, got {self.refit_every}")


@dataclass(frozen=True)
class StreamPoint:
    """The judgement of one point."""

    expected_value: float
    upper_margin: float
    lower_margin: float
    is_anomaly: bool
    is_positive_anomaly: bool
    is_negative_anomaly: bool
    severity: float


@dataclass(frozen=True)
class StreamBatch:
    """The judgements of consecutive points, as arrays."""

    expected_values: np.ndarray
    upper_margins: np.ndarray
    lower_margins: np.ndarray
    is_anomaly: np.ndarray
    is_positive_anomaly: np.ndarray
    is_negative_anomaly: np.ndarray
    severity: np.ndarray
