"""Run Microsoft's reference ``time-series-anomaly-detector`` 0.4.0 on a benchmark job.

This script runs under the reference's own interpreter (``bench/.venv-ref/bin/python``), never in
the app's environment: the reference pins ``numpy<2`` and loads torch and mlflow on import. It
imports nothing from meterwatch, so it only needs what the reference venv has.

Usage::

    bench/.venv-ref/bin/python bench/reference_worker.py JOB.json RESULT.json

``JOB.json`` holds ``{"task": "entire", "entire": {...}}`` or ``{"task": "mv", "mv": {...}}``
(written by :mod:`bench.reference`). The result holds the import cost, the wall time of each
detection call (import excluded) and the raw per-point outputs, so that the app side scores both
detectors with the same code.
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import json
import os
import resource
import sys
import tempfile
import time
import warnings
from typing import Any

import numpy as np

# The reference prints tqdm progress bars and pandas FutureWarnings on every call.
os.environ.setdefault("TQDM_DISABLE", "1")
warnings.filterwarnings("ignore")

#: Seconds per step → the service's ``granularity`` name.
_GRANULARITIES = {1: "secondly", 60: "minutely", 3600: "hourly", 86400: "daily", 604800: "weekly"}


def peak_rss_mb() -> float:
    """Return this process's peak resident set size so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def granularity_of(step_s: float) -> tuple[str, int | None]:
    """Return the service's ``(granularity, customInterval)`` for a sampling step in seconds.

    Args:
        step_s: The series' sampling step.

    Returns:
        The coarsest granularity that divides the step, with ``customInterval`` set when the
        step is a multiple of it (``None`` for exactly one unit).
    """
    step = round(step_s)
    for unit_s in sorted(_GRANULARITIES, reverse=True):
        if step >= unit_s and step % unit_s == 0:
            interval = step // unit_s
            return _GRANULARITIES[unit_s], (interval if interval > 1 else None)
    return "secondly", None


def sweep_entire(
    module: Any, frame: Any, params: dict[str, Any], sensitivities: list[int]
) -> dict[int, list[int]]:
    """Detect once and derive the flags at several sensitivities (the expensive STL runs once).

    This follows ``UnivariateAnomalyDetector.predict`` for entire detection step by step: in
    the reference, ``sensitivity`` only enters ``get_margins`` after ``detect``. The caller
    checks the result against ``predict`` at the job's own sensitivity.

    Returns:
        Sensitivity -> flagged row positions.
    """
    detect_model = importlib.import_module("anomaly_detector.univariate")
    refine = importlib.import_module("anomaly_detector.univariate.util.refine")
    detector = module.EntireAnomalyDetector()
    call_params = copy.deepcopy(params)
    # predict() ignores what parse_arg() finds wrong (its check reads another attribute): so here.
    data, model_params = detector.parse_arg(frame, call_params)
    model = detect_model.AnomalyDetectionModel(series=data, **model_params)
    results, _, _, model_id, _ = model.detect(period=call_params.get("period"), last_value=None)
    results = results.sort_index()
    flagged: dict[int, list[int]] = {}
    for sensitivity in sensitivities:
        # get_margins() writes into the frame's arrays: each sensitivity gets a fresh copy.
        margins = refine.get_margins(
            results.copy(deep=True), sensitivity, model_id, call_params["boundaryVersion"], False
        )
        flagged[sensitivity] = [int(i) for i in np.flatnonzero(np.asarray(margins[5], bool))]
    return flagged


def run_entire(module: Any, job: dict[str, Any]) -> list[dict[str, Any]]:
    """Run ``EntireAnomalyDetector`` on each series of the job, timing each call.

    Args:
        module: The imported ``anomaly_detector`` package.
        job: ``{"series": [{"name", "timestamps", "values", "period", "step_s"}], "params",
            "repeats", "sensitivities", "verify_first"}``; ``params`` uses the service's names
            (``sensitivity``, ...); ``sensitivities`` (optional) asks for a sweep, and then
            only the first ``verify_first`` series also go through ``predict()`` (timed, and
            checked against the sweep); the others take their flags from the sweep.

    Returns:
        Per series: ``name``, ``seconds`` (one wall time per repeat), ``is_anomaly`` (of the
        last repeat), ``period`` (the one it used), ``sweep`` (sensitivity as text -> flagged
        positions, when asked) and ``error`` (``None`` when it ran).
    """
    import pandas as pd

    detector_class = module.EntireAnomalyDetector
    repeats = int(job.get("repeats", 1))
    sensitivities = [int(s) for s in job.get("sensitivities", [])]
    verify_first = int(job.get("verify_first", len(job["series"])))
    out: list[dict[str, Any]] = []
    for number, series in enumerate(job["series"]):
        frame = pd.DataFrame({"timestamp": series["timestamps"], "value": series["values"]})
        params: dict[str, Any] = dict(job.get("params", {}))
        granularity, interval = granularity_of(float(series["step_s"]))
        params["granularity"] = granularity
        if interval is not None:
            params["customInterval"] = interval
        if series.get("period") is not None:
            params["period"] = int(series["period"])
        seconds: list[float] = []
        flags: list[bool] = []
        period_used: int | None = None
        error: str | None = None
        sweep: dict[str, list[int]] = {}
        own = int(params.get("sensitivity", 99))
        calls = repeats if not sensitivities or number < verify_first else 0
        for _ in range(calls):
            # predict() mutates its params (granularity becomes an enum): a fresh copy per call.
            call_params = copy.deepcopy(params)
            try:
                start = time.perf_counter()
                result = detector_class().predict(None, frame, call_params)
                seconds.append(time.perf_counter() - start)
            except Exception as exc:  # the reference raises TypeError/KeyError on bad input
                error = f"{type(exc).__name__}: {exc}"
                break
            flags = [bool(item["result"]["is_anomaly"]) for item in result]
            period_used = int(result[0]["result"]["period"]) if result else None
        if sensitivities and error is None:
            try:
                swept = sweep_entire(module, frame, params, sorted({own, *sensitivities}))
            except Exception as exc:
                swept, error = {}, f"{type(exc).__name__}: {exc}"
            if calls and swept and swept[own] != [i for i, flag in enumerate(flags) if flag]:
                error = f"sweep disagrees with predict() at sensitivity {own}"
            elif not calls and swept:
                flags = [False] * len(frame)
                for position in swept[own]:
                    flags[position] = True
            sweep = {str(k): v for k, v in swept.items()}
        out.append(
            {
                "name": series.get("name", ""),
                "seconds": seconds,
                "is_anomaly": flags,
                "period": period_used,
                "sweep": sweep,
                "error": error,
            }
        )
    return out


def run_mv(module: Any, job: dict[str, Any]) -> dict[str, Any]:
    """Train ``MultivariateAnomalyDetector`` (default settings) and detect, timing both.

    Args:
        module: The imported ``anomaly_detector`` package.
        job: ``{"timestamps", "columns", "values" (rows), "train": [start, stop],
            "detect": [start, stop], "params"}``; rows are positions in ``values``.

    Returns:
        ``train_s``, ``predict_s``, ``detect_rows``, ``variables`` and per detect row
        ``is_anomaly``, ``score`` and ``contributions`` (one score per variable, in
        ``variables`` order; rows of the warm-up that the reference does not score hold
        ``False``/``0``), plus ``train_peak_mb`` (process peak RSS after training).
    """
    import pandas as pd

    index = pd.DatetimeIndex(pd.to_datetime(job["timestamps"]), name="timestamp")
    frame = pd.DataFrame(
        np.asarray(job["values"], dtype=float), index=index, columns=job["columns"]
    )
    train_start, train_stop = job["train"]
    detect_start, detect_stop = job["detect"]
    train_frame = frame.iloc[train_start:train_stop]
    detect_frame = frame.iloc[detect_start:detect_stop]
    with tempfile.TemporaryDirectory(prefix="mvad-ref-") as folder:
        params: dict[str, Any] = dict(job.get("params", {}))
        params["save"] = folder
        model = module.MultivariateAnomalyDetector()
        start = time.perf_counter()
        model.fit(train_frame, copy.deepcopy(params))
        train_s = time.perf_counter() - start
        train_peak_mb = peak_rss_mb()
        start = time.perf_counter()
        rows = model.predict(None, detect_frame, copy.deepcopy(params))
        predict_s = time.perf_counter() - start
    variables = [str(column) for column in job["columns"]]
    position = {stamp: i for i, stamp in enumerate(detect_frame.index)}
    column_of = {name: j for j, name in enumerate(variables)}
    count = len(detect_frame)
    is_anomaly = [False] * count
    score = [0.0] * count
    contributions = [[0.0] * len(variables) for _ in range(count)]
    scored = 0
    for row in rows:
        i = position[pd.Timestamp(row["index"])]
        scored += 1
        is_anomaly[i] = bool(row["is_anomaly"])
        score[i] = float(row["score"])
        for item in row["interpretation"]:
            contributions[i][column_of[str(item["variable_name"])]] = float(
                item["contribution_score"]
            )
    return {
        "train_s": train_s,
        "predict_s": predict_s,
        "train_rows": len(train_frame),
        "detect_rows": count,
        "scored_rows": scored,
        "variables": variables,
        "is_anomaly": is_anomaly,
        "score": score,
        "contributions": contributions,
        "train_peak_mb": train_peak_mb,
    }


def main(argv: list[str]) -> int:
    """Read the job, import the reference (timed), run the task and write the result."""
    if len(argv) != 3:
        sys.stderr.write("usage: reference_worker.py JOB.json RESULT.json\n")
        return 2
    with open(argv[1], encoding="utf-8") as handle:
        job = json.load(handle)
    before_mb = peak_rss_mb()
    start = time.perf_counter()
    module = importlib.import_module("anomaly_detector")
    import_s = time.perf_counter() - start
    result: dict[str, Any] = {
        "import_s": import_s,
        "import_peak_mb": peak_rss_mb(),
        "interpreter_mb": before_mb,
        "python": sys.version.split()[0],
        "reference_version": importlib.metadata.version("time-series-anomaly-detector"),
        "torch_version": importlib.metadata.version("torch"),
        "numpy_version": importlib.metadata.version("numpy"),
    }
    task = job.get("task")
    if task == "entire":
        result["entire"] = run_entire(module, job["entire"])
    elif task == "mv":
        result["mv"] = run_mv(module, job["mv"])
    else:
        sys.stderr.write(f"unknown task {task!r}: expected 'entire' or 'mv'\n")
        return 2
    with open(argv[2], "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
