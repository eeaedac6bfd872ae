"""The embedded detection engine: pure NumPy/SciPy, arrays in, arrays out.

No storage, no settings, no Azure, no clock: the engine runs the same in a notebook, the CLI,
an activity, the REST API and the benchmarks. Univariate parts re-exported here:

* :mod:`shared.engine.univariate` - whole-series (*entire*) and last-point (*last*) detection.
* :mod:`shared.engine.changepoint` - level change points with confidence scores.
* :mod:`shared.engine.streaming` - causal detection with JSON-serialisable state.
* :mod:`shared.engine.periodicity` - period auto-detection.

The multivariate model lives in :mod:`shared.engine.multivariate` (imported on its own).
"""

from __future__ import annotations

from shared.engine.changepoint import ChangePointConfig, ChangePointResult, detect_change_points
from shared.engine.periodicity import detect_period
from shared.engine.streaming import StreamBatch, StreamConfig, StreamDetector, StreamPoint
from shared.engine.univariate import (
    EntireResult,
    LastResult,
    UnivariateConfig,
    detect_entire,
    detect_last,
)

__all__ = [
    "ChangePointConfig",
    "ChangePointResult",
    "EntireResult",
    "LastResult",
    "StreamBatch",
    "StreamConfig",
    "StreamDetector",
    "StreamPoint",
    "UnivariateConfig",
    "detect_change_points",
    "detect_entire",
    "detect_last",
    "detect_period",
]
