"""Training, pure (no storage): read an upload, align it per the spec, resolve the windows, fit.

Also the v1.1 ``modelInfo`` and ``diagnosticsInfo`` of a trained model. The activities
(:mod:`shared.multivariate.activities`) run it on blobs under a lease; the CLI on files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import pandas as pd

from shared.engine.multivariate import (
    MultivariateConfig,
    MultivariateModel,
)
from shared.errors import DatasetError
from shared.multivariate.datasets import MIB, Dataset, DatasetLimits, align
from shared.multivariate.documents import DiagnosticsInfo, ModelInfo
from shared.multivariate.spec import TrainingSpec, Windows, data_schema_of, resolve_windows
from shared.multivariate.uploads import load_dataset
from shared.settings import Settings
from shared.timefmt import as_datetime, iso

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainedModel:
    """A freshly trained model and what training saw.

    Attributes:
        model: The trained engine model.
        spec: The spec it was trained with.
        windows: The resolved windows.
        training: The aligned training window.
        seconds: Wall time of the fit.
    """

    model: MultivariateModel
    spec: TrainingSpec
    windows: Windows
    training: Dataset
    seconds: float


def dataset_limits(settings: Settings | None = None) -> DatasetLimits:
    """Upload limits: ``MV_MAX_UPLOAD_MB`` for the file, the engine's defaults otherwise."""
    defaults = DatasetLimits()
    if settings is None:
        return defaults
    upload = settings.mv_max_upload_mb * MIB
    return replace(
        defaults,
        max_zip_bytes=upload,
        max_uncompressed_bytes=max(defaults.max_uncompressed_bytes, upload),
    )


def read_dataset(
    data: bytes, name: str, limits: DatasetLimits | None = None, date_format: str = "auto"
) -> dict[str, pd.Series]:
    """Read an upload (``.zip`` MultiTable or ``.csv`` OneTable) into raw series per variable.

    ``date_format`` says how numeric dates read (the spec's ``dateFormat``).

    Raises:
        DatasetError: The upload cannot be used (coded; see :mod:`shared.multivariate.datasets`).
    """
    return load_dataset(data, name, limits or DatasetLimits(), date_format)


def plan_training(series: Mapping[str, pd.Series], spec: TrainingSpec) -> tuple[Dataset, Windows]:
    """Align the data per the spec, resolve the windows and check there is enough to train on.

    Returns:
        The aligned training window and the resolved windows.

    Raises:
        DatasetError: ``NotEnoughData`` (fewer training timestamps than ``slidingWindow``, or an
            empty window) or an alignment error.
    """
    everything = align(series, spec.align_policy)
    windows = resolve_windows(spec, everything.timestamps)
    training = align(
        series,
        spec.align_policy,
        as_datetime(windows.train_start),
        as_datetime(windows.train_end),
    )
    if len(training) < spec.sliding_window:
        raise DatasetError(
            f"The training window {iso(windows.train_start)} to {iso(windows.train_end)} holds "
            f"{len(training)} timestamps, fewer than slidingWindow {spec.sliding_window}; widen "
            "the window (startTime/endTime) or lower slidingWindow (28 at least).",
            "NotEnoughData",
        )
    in_detection = (everything.timestamps >= windows.detect_start) & (
        everything.timestamps <= windows.detect_end
    )
    if not in_detection.any():
        raise DatasetError(
            f"No data in the detection window {iso(windows.detect_start)} to "
            f"{iso(windows.detect_end)}; the data covers {iso(everything.timestamps[0])} to "
            f"{iso(everything.timestamps[-1])}.",
            "NotEnoughData",
        )
    return training, windows


def train_model(
    series: Mapping[str, pd.Series],
    spec: TrainingSpec,
    progress: Callable[[float], None] | None = None,
) -> TrainedModel:
    """Train a multivariate model on the spec's training window.

    Args:
        series: Raw series per variable (:func:`read_dataset`).
        spec: The training spec.
        progress: Called with the share of the fit done, 0 to 1.

    Returns:
        The trained model with its windows and timing.

    Raises:
        DatasetError: The data cannot be trained on (coded).
    """
    training, windows = plan_training(series, spec)
    config = MultivariateConfig(
        sliding_window=spec.sliding_window, top_contributor_count=spec.top_contributor_count
    )
    started = time.perf_counter()
    model = MultivariateModel(config).fit(training, progress=progress)
    seconds = time.perf_counter() - started
    logger.info(
        "Trained on %s timestamps x %s variables in %.2fs",
        len(training),
        len(model.variables),
        seconds,
    )
    return TrainedModel(model, spec, windows, training, seconds)


def diagnostics_info(model: MultivariateModel, seconds: float) -> DiagnosticsInfo:
    """The v1.1 ``diagnosticsInfo`` of a trained model.

    The engine fits in closed form, so its "epochs" are the cross-validation folds: per fold,
    ``trainLosses`` and ``validationLosses`` both give the out-of-sample loss (the engine
    reports no separate in-sample loss) and ``latenciesInSeconds`` the fit's wall time shared
    equally among the folds.
    """
    diagnostics = model.diagnostics
    losses = [float(loss) for loss in diagnostics.losses]
    folds = max(len(losses), 1)
    return {
        "modelState": {
            "epochIds": list(range(1, len(losses) + 1)),
            "trainLosses": losses,
            "validationLosses": list(losses),
            "latenciesInSeconds": [round(seconds / folds, 6)] * len(losses),
        },
        "variableStates": [
            {
                "variable": name,
                "filledNARatio": float(diagnostics.filled_na_ratio.get(name, 0.0)),
                "effectiveCount": int(diagnostics.effective_count),
                "firstTimestamp": diagnostics.first_timestamp,
                "lastTimestamp": diagnostics.last_timestamp,
            }
            for name in model.variables
        ],
    }


def model_info(
    data_source: str, name: str, spec: TrainingSpec, windows: Windows | None = None
) -> ModelInfo:
    """The v1.1 ``modelInfo`` request fields of a training (status and diagnostics excluded)."""
    info: ModelInfo = {
        "dataSource": data_source,
        "dataSchema": spec.data_schema or data_schema_of(name),
        "displayName": spec.display_name,
        "slidingWindow": spec.sliding_window,
        "alignPolicy": spec.align_policy.to_v11(),
    }
    if windows is not None:
        info["startTime"] = iso(windows.train_start)
        info["endTime"] = iso(windows.train_end)
    else:
        if spec.start_time is not None:
            info["startTime"] = iso(spec.start_time)
        if spec.end_time is not None:
            info["endTime"] = iso(spec.end_time)
    return info
