"""Multivariate engine benchmarks: speed, memory and quality on injected events of known cause.

``run_mv_benchmarks()`` returns the ``mv_*`` figures of ``bench/results.json``.
``synthetic_mv_dataset()`` builds the shared 10,000 x 4 dataset and :func:`score_mv` scores any
detector's per-row output on it, so the reference runs on the same rows and is scored by the
same code.

Protocol (the same for both detectors): train on all 10,000 rows (``TRAIN_ROWS``; the
injected events are in there, 1.4 % of the rows, as anomalies are in real training windows)
and detect on all of them (``DETECT_ROWS``). Every event lies after row 1,000, beyond the
reference's 400-row warm-up.

Quality (``mv_f1``, ``mv_precision``, ``mv_recall``) is event-wise, with the definitions of
:mod:`bench.scoring` that the reference's side uses too: runs of consecutive flagged rows are
predicted events; one is a true positive when it overlaps a labelled event widened by
``TOLERANCE`` rows on each side; recall is the share of labelled events with a flagged row in
that span. ``mv_top_contributor_acc`` is the share of labelled events whose contributions,
summed over the flagged rows in that span, rank the cause first (a missed event counts as
wrong).

Run ``python -m bench.bench_mv`` to print the figures as JSON.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.scoring import events_from_dicts, score_multivariate
from shared.engine.multivariate import MultivariateConfig, MultivariateModel
from shared.multivariate.datasets import dataset_from_frame

ROWS = 10_000
TRAIN_ROWS = (0, ROWS)
DETECT_ROWS = (0, ROWS)
VARIABLES = ("power", "heater", "voltage", "temperature")
#: Rows of slack on each side of an event (the value ``bench.bench_mv_reference`` uses).
TOLERANCE = 3
REPO = Path(__file__).resolve().parents[1]


def synthetic_mv_dataset(seed: int = 0) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """A household at 1-minute resolution with eight injected anomalies of known cause.

    Variables: ``power`` (kW, the whole house: a daily base load plus the heater), ``heater``
    (kW, its sub-meter: on/off cycles), ``voltage`` (V, drops as the load rises) and
    ``temperature`` (°C, daily cycle warmed by the heater with a lag). Readings are quantised
    as meters report them. Normal behaviour includes the heater's frequent bursts, which move
    power, voltage and temperature together.

    Events (cause, kind): a heater sensor glitch (a spike the total does not show), a voltage
    sag without load, a power meter offset (neither voltage nor heater agree), a temperature
    sensor offset, a heater calibration drift during an on cycle, a voltage spike, a short
    power spike (voltage follows, as physics wants), and a temperature ramp. Each cause is the
    odd one out: the other sensors agree with each other and not with it.

    Args:
        seed: Random seed; the same seed gives the same data.

    Returns:
        The frame (``DatetimeIndex`` named ``timestamp``, one column per variable, the
        reference's input shape) and the events: ``{"start", "end", "cause", "kind"}`` with
        rows ``start <= row <= end`` (``end`` inclusive, as :mod:`bench.scoring` reads it).
    """
    rng = np.random.default_rng(seed)
    minutes = np.arange(ROWS, dtype=np.float64)
    day = 1440.0
    heater = np.zeros(ROWS)
    row = int(rng.integers(0, 60))
    while row < ROWS:
        length = int(rng.integers(15, 31))
        heater[row : row + length] = 1.5 + rng.normal(0.0, 0.02, size=min(length, ROWS - row))
        row += length + int(rng.exponential(90.0)) + 10
    base = 0.55 + 0.35 * (1.0 + np.sin(2.0 * np.pi * (minutes - 420.0) / day)) / 2.0
    base += 0.25 * np.exp(-(((minutes % day) - 1140.0) ** 2) / (2 * 60.0**2))  # evening peak
    power = base + heater + _ar1(rng, ROWS, 0.9, 0.04)
    voltage = 241.0 - 1.8 * power + 0.8 * np.sin(2 * np.pi * minutes / (3 * day))
    voltage += _ar1(rng, ROWS, 0.7, 0.25)
    warmth = _low_pass(heater, 30.0)
    temperature = 19.5 + 1.2 * np.sin(2.0 * np.pi * (minutes - 600.0) / day) + 1.6 * warmth
    temperature += _ar1(rng, ROWS, 0.95, 0.02)

    events: list[dict[str, Any]] = []

    def inject(start: int, length: int, cause: str, kind: str) -> slice:
        events.append({"start": start, "end": start + length - 1, "cause": cause, "kind": kind})
        return slice(start, start + length)

    heater[inject(1500, 3, "heater", "sensor spike")] += 2.0
    voltage[inject(2600, 30, "voltage", "sag without load")] -= 5.0
    power[inject(3700, 20, "power", "meter offset")] += 1.2
    temperature[inject(4800, 40, "temperature", "sensor offset")] += 2.5
    on_start = 5900 + int(np.flatnonzero(np.diff((heater[5900:] > 0.5).astype(int)) == 1)[0]) + 3
    heater[inject(on_start, 12, "heater", "calibration drift")] *= 1.5
    voltage[inject(7000, 2, "voltage", "spike")] += 8.0
    spike = inject(8100, 3, "power", "spike")
    power[spike] += 2.5
    voltage[spike] -= 1.8 * 2.5
    ramp = inject(9200, 30, "temperature", "ramp")
    temperature[ramp] += np.linspace(0.1, 3.0, 30)

    index = pd.date_range("2024-01-01", periods=ROWS, freq="min", name="timestamp")
    frame = pd.DataFrame(
        {
            "power": np.round(power, 3),
            "heater": np.round(heater, 3),
            "voltage": np.round(voltage, 2),
            "temperature": np.round(temperature, 1),
        },
        index=index,
    )
    return frame, events


def score_mv(
    is_anomaly: Sequence[bool] | np.ndarray,
    contributions: Sequence[Sequence[float]] | np.ndarray,
    variables: Sequence[str],
    events: Sequence[dict[str, Any]],
    offset: int = 0,
) -> dict[str, float | int | None]:
    """Score one detector's per-row output with :mod:`bench.scoring` (the reference's too).

    Args:
        is_anomaly: Flag per detected row.
        contributions: Per detected row, one contribution per variable (any scale).
        variables: Column order of ``contributions``.
        events: As :func:`synthetic_mv_dataset` returns them (rows of the whole frame).
        offset: Frame row of the first detected row.

    Returns:
        ``f1``, ``precision``, ``recall``, ``top_contributor_acc``, ``segments``, ...
    """
    flags = np.asarray(is_anomaly, dtype=bool)
    labelled = [e for e in events_from_dicts(events, offset=offset) if 0 <= e.start < flags.size]
    return score_multivariate(labelled, flags, contributions, list(variables), TOLERANCE)


def run_mv_benchmarks(repeats: int = 5) -> dict[str, float]:
    """Measure the engine on the synthetic dataset and the 100,000 x 50 memory case.

    Args:
        repeats: Timed repetitions (the median is reported), after one untimed warm-up.

    Returns:
        ``mv_train_10k_s``, ``mv_infer_rows_per_s``, ``mv_top_contributor_acc``, ``mv_f1``,
        ``mv_precision``, ``mv_recall``, ``mv_train_100k_50_mb`` and
        ``mv_train_100k_50_s``.
    """
    frame, events = synthetic_mv_dataset(0)
    train = dataset_from_frame(frame.iloc[TRAIN_ROWS[0] : TRAIN_ROWS[1]])
    detect = dataset_from_frame(frame.iloc[DETECT_ROWS[0] : DETECT_ROWS[1]])
    config = MultivariateConfig()
    model = MultivariateModel(config).fit(train)
    train_s = _median_seconds(lambda: MultivariateModel(config).fit(train), repeats)
    infer_s = _median_seconds(lambda: model.detect(detect), repeats)
    scores = model.score(detect)
    quality = score_mv(
        scores.is_anomaly, scores.contributions, model.variables, events, DETECT_ROWS[0]
    )
    accuracy = quality["top_contributor_acc"]
    memory = measure_train_memory()
    return {
        "mv_train_10k_s": train_s,
        "mv_infer_rows_per_s": len(detect) / infer_s,
        "mv_top_contributor_acc": float(accuracy) if accuracy is not None else 0.0,
        "mv_f1": float(quality["f1"] or 0.0),
        "mv_precision": float(quality["precision"] or 0.0),
        "mv_recall": float(quality["recall"] or 0.0),
        "mv_train_100k_50_mb": memory["peak_mb"],
        "mv_train_100k_50_s": memory["train_s"],
    }


_MEMORY_PROBE = """
import json, resource, sys, time
import numpy as np, pandas as pd
sys.path.insert(0, sys.argv[1])
from shared.multivariate.datasets import Dataset
from shared.engine.multivariate import MultivariateModel
rows, width = 100_000, 50
rng = np.random.default_rng(0)
mixing = rng.normal(size=(8, width))
values = rng.normal(size=(rows, 8)) @ mixing + 0.3 * rng.normal(size=(rows, width))
stamps = np.datetime64("2024-01-01T00:00:00") + np.arange(rows).astype("timedelta64[m]")
dataset = Dataset(tuple(f"v{j}" for j in range(width)), stamps.astype("datetime64[s]"),
                  values, {f"v{j}": 0.0 for j in range(width)}, 60)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
start = time.perf_counter()
MultivariateModel().fit(dataset)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print(json.dumps({"peak_mb": peak, "before_mb": before, "train_s": seconds}))
"""


def measure_train_memory() -> dict[str, float]:
    """Train on 100,000 x 50 in a fresh process; return its peak RSS (MiB) and training time.

    ``peak_mb`` is the whole process (interpreter, numpy, pandas and the 40 MB of data
    included); ``before_mb`` is the peak before training started.
    """
    done = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(REPO)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _median_seconds(call: Any, repeats: int) -> float:
    call()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return float(statistics.median(seconds))


def _ar1(rng: np.random.Generator, rows: int, phi: float, sigma: float) -> np.ndarray:
    noise = rng.normal(0.0, sigma, size=rows)
    out = np.empty(rows)
    level = 0.0
    for i in range(rows):
        level = phi * level + noise[i]
        out[i] = level
    return out


def _low_pass(signal: np.ndarray, minutes: float) -> np.ndarray:
    alpha = 1.0 / minutes
    out = np.empty_like(signal)
    level = 0.0
    for i, value in enumerate(signal):
        level += alpha * (value - level)
        out[i] = level
    return out


if __name__ == "__main__":  # pragma: no cover - manual run
    print(json.dumps(run_mv_benchmarks(), indent=2))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MB")
