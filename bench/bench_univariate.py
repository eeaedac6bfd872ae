"""Univariate speed: ``detect_entire`` on 8,640 points against the reference, and streaming.

The series is the first 8,640 rows (six days, one-minute steps) of the tutorial's own
``../shared/data/power.csv``, with its true daily period (1,440) given to both detectors and the
service's default settings (sensitivity 99, maxAnomalyRatio 0.25). Ours is timed in-process
(median of many calls after a warm-up); the reference in its own venv, detection call only
(import excluded and reported as ``reference_import_s``).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.harness import NotAvailable, PartReport, Results, median, require, time_calls
from bench.reference import run_reference

POWER_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "power.csv"
POINTS = 8_640
PERIOD = 1_440
#: One documented setting for both detectors: the v1.1 service defaults.
SENSITIVITY = 99
MAX_ANOMALY_RATIO = 0.25


def power_series(points: int = POINTS, path: Path = POWER_CSV) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(timestamps datetime64[s], values)`` of the first ``points`` rows of power.csv.

    Raises:
        NotAvailable: The team's data folder is missing.
    """
    if not path.exists():
        raise NotAvailable(f"{path} missing (the team's shared data folder)")
    frame = pd.read_csv(path, encoding="utf-8-sig", nrows=points)
    stamps = pd.to_datetime(frame["timestamp"], format="%m/%d/%Y %H:%M").to_numpy("datetime64[s]")
    return stamps, frame["value"].to_numpy(dtype=np.float64)


def iso_stamps(stamps: np.ndarray) -> list[str]:
    """Return ``datetime64`` timestamps as ISO 8601 UTC text (``...Z``) for the reference."""
    return [f"{text}Z" for text in np.datetime_as_string(stamps.astype("datetime64[s]"), unit="s")]


def make_config(config_class: Callable[..., Any], **wanted: Any) -> Any:
    """Build an engine config from keyword arguments, checking that the class takes them all.

    Raises:
        NotAvailable: The class lacks one of the fields (it is still being written): running
            with a field silently left out would benchmark another setting than the one
            reported.
    """
    if dataclasses.is_dataclass(config_class):
        accepted = {field.name for field in dataclasses.fields(config_class)}
    else:
        accepted = set(inspect.signature(config_class).parameters)
    missing = sorted(set(wanted) - accepted)
    if missing:
        name = getattr(config_class, "__name__", str(config_class))
        raise NotAvailable(f"{name} has no {', '.join(missing)} yet")
    return config_class(**wanted)


def reference_entire(
    stamps: np.ndarray, values: np.ndarray, period: int | None, repeats: int
) -> dict[str, Any]:
    """Time the reference's entire detection on one series (``repeats`` calls)."""
    step_s = float((stamps[1] - stamps[0]) / np.timedelta64(1, "s"))
    job = {
        "task": "entire",
        "entire": {
            "series": [
                {
                    "name": "power",
                    "timestamps": iso_stamps(stamps),
                    "values": values.tolist(),
                    "period": period,
                    "step_s": step_s,
                }
            ],
            "params": {"sensitivity": SENSITIVITY, "maxAnomalyRatio": MAX_ANOMALY_RATIO},
            "repeats": repeats,
        },
    }
    return run_reference(job)


def ours_entire(values: np.ndarray, period: int, repeats: int) -> Results:
    """Time our ``detect_entire`` on ``values`` (median of ``repeats`` after a warm-up)."""
    engine = require("shared.engine.univariate", "UnivariateConfig", "detect_entire")
    config = make_config(
        engine.UnivariateConfig,
        sensitivity=SENSITIVITY,
        max_anomaly_ratio=MAX_ANOMALY_RATIO,
        period=period,
    )
    result = engine.detect_entire(values, config)
    seconds = time_calls(lambda: engine.detect_entire(values, config), repeats, warmup=2)
    return {
        "entire_8640_ms": median(seconds) * 1000.0,
        "entire_8640_flagged": int(np.asarray(result.is_anomaly, dtype=bool).sum()),
    }


def ours_stream(values: np.ndarray, period: int, repeats: int) -> Results:
    """Time ``StreamDetector.update`` per point, and ``update_many``, on ``values``.

    Each repeat starts from a fresh detector and feeds the whole series, warm-up included, as
    live telemetry arrives.
    """
    streaming = require("shared.engine.streaming", "StreamConfig", "StreamDetector")

    def fresh() -> Any:
        config = make_config(streaming.StreamConfig, sensitivity=SENSITIVITY, period=period)
        return streaming.StreamDetector(config)

    points = [float(v) for v in values]

    def per_point() -> None:
        update = fresh().update
        for value in points:
            update(value)

    figures: Results = {
        "stream_us_per_point": median(time_calls(per_point, repeats, warmup=1)) * 1e6 / len(points)
    }
    detector = fresh()
    if hasattr(detector, "update_many"):
        batch = median(time_calls(lambda: fresh().update_many(values), repeats, warmup=1))
        figures["stream_batch_us_per_point"] = batch * 1e6 / len(points)
    return figures


def run(report: PartReport, quick: bool = False) -> None:
    """The ``univariate`` part: our entire and stream timings and the reference's, on power.csv."""
    stamps, values = power_series()
    ref = report.attempt(
        "reference entire", lambda: reference_entire(stamps, values, PERIOD, 1 if quick else 3)
    )
    if ref is not None:
        series = ref["entire"][0]
        if series["error"]:
            raise RuntimeError(f"reference entire failed on power.csv: {series['error']}")
        report.results.update(
            {
                "reference_entire_8640_ms": median(series["seconds"]) * 1000.0,
                "reference_entire_8640_flagged": int(sum(series["is_anomaly"])),
                "reference_import_s": ref["import_s"],
                "reference_import_mb": ref["import_peak_mb"],
                "reference_version": ref["reference_version"],
                "reference_torch_version": ref["torch_version"],
            }
        )
    figures = report.attempt("ours entire", lambda: ours_entire(values, PERIOD, 7 if quick else 31))
    if figures is not None:
        report.results.update(figures)
    figures = report.attempt("ours stream", lambda: ours_stream(values, PERIOD, 2 if quick else 5))
    if figures is not None:
        report.results.update(figures)
