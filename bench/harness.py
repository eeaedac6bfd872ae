"""The benchmark harness: metric catalogue, targets, ratios, the results file and the table.

Everything here is pure (no detector is imported) so that it is unit-tested without the
reference venv. Results are one flat JSON object: numbers, strings, booleans or ``null``; a
figure that could not be measured is ``null`` and the part's ``<part>_status`` says why.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TypeVar

Scalar = float | int | str | bool | None
Results = dict[str, Scalar]
T = TypeVar("T")


class NotAvailable(Exception):  # noqa: N818 - reads as a status: "not available: <why>"
    """A benchmark part (or a piece of one) cannot run yet: its module or the reference is missing.

    The suite reports the reason as ``not available`` and carries on; it is not a failure.
    """


class PartReport:
    """What one part of the suite measured, and what it could not (with the reason).

    Attributes:
        part: The part's name (one of :data:`PARTS`).
        results: Flat figures measured by the part.
        notes: One line per piece that was not available or failed.
        details: Extra lines printed under the table (e.g. a per-family breakdown).
        failed: True when a piece raised something other than :class:`NotAvailable`.
    """

    def __init__(self, part: str) -> None:
        self.part = part
        self.results: Results = {}
        self.notes: list[str] = []
        self.details: list[str] = []
        self.failed = False

    def attempt(self, label: str, call: Callable[[], T]) -> T | None:
        """Run one piece of the part; on failure note why and return ``None`` (the rest goes on).

        :class:`NotAvailable` is noted as ``not available``; any other exception as ``failed``,
        with its traceback on stderr.
        """
        try:
            return call()
        except NotAvailable as exc:
            self.notes.append(f"{label}: not available ({exc})")
        except Exception as exc:  # a bug in a piece must not hide the other figures
            self.failed = True
            self.notes.append(f"{label}: failed ({type(exc).__name__}: {exc})")
            traceback.print_exc(file=sys.stderr)
        return None

    def status(self) -> str:
        """Return ``ok``, or the notes joined (``not available`` / ``failed`` pieces)."""
        return "ok" if not self.notes else "; ".join(self.notes)


#: Top-level names of meterwatch's own code: what is missing there is still being written.
_OURS = frozenset({"shared", "functions", "function_app", "bench"})


def require(module: str, *names: str) -> ModuleType:
    """Import a module another engineer is writing, or raise :class:`NotAvailable` saying why.

    Args:
        module: Dotted module name, e.g. ``shared.engine.univariate``.
        names: Attributes the benchmark needs from it.

    Raises:
        NotAvailable: The module, a meterwatch module or name it imports, or one of ``names``
            is missing.
        ImportError: A third-party import failed (a broken environment, reported as a failure).
    """
    try:
        loaded = importlib.import_module(module)
    except ImportError as exc:  # ModuleNotFoundError included
        missing = exc.name or ""
        if missing.split(".")[0] not in _OURS:
            raise
        if isinstance(exc, ModuleNotFoundError):
            raise NotAvailable(f"{missing} is not written yet") from exc
        raise NotAvailable(f"{exc} (still being written)") from exc
    absent = [name for name in names if not hasattr(loaded, name)]
    if absent:
        raise NotAvailable(f"{module} has no {', '.join(absent)} yet")
    return loaded


@dataclass(frozen=True)
class Metric:
    """One figure of ``bench/results.json``: its name, unit and what it measures."""

    name: str
    unit: str
    part: str
    description: str


@dataclass(frozen=True)
class Target:
    """A goal for one metric: ``metric op bound``, the bound a number or another metric's name."""

    metric: str
    op: str  # "<=" or ">="
    bound: float | str

    def describe(self) -> str:
        """Return the target as printed in the table, e.g. ``<= 20`` or ``>= reference_f1``."""
        bound = self.bound if isinstance(self.bound, str) else format_number(self.bound)
        return f"{self.op} {bound}"


@dataclass(frozen=True)
class Outcome:
    """A target checked against the results: ``PASS``, ``MISS`` or ``n/a`` (not measured)."""

    target: Target
    value: float | None
    bound: float | None
    status: str


PARTS = ("univariate", "ingest", "import", "quality", "mv", "api", "live", "tuning")

METRICS: tuple[Metric, ...] = (
    Metric("entire_8640_ms", "ms", "univariate", "our detect_entire on 8,640 points, median"),
    Metric("reference_entire_8640_ms", "ms", "univariate", "reference entire, same series"),
    Metric("entire_speedup", "x", "univariate", "reference_entire_8640_ms / entire_8640_ms"),
    Metric("stream_us_per_point", "us", "univariate", "StreamDetector.update, per point"),
    Metric("stream_batch_us_per_point", "us", "univariate", "StreamDetector.update_many"),
    Metric("reference_import_s", "s", "univariate", "import anomaly_detector (not timed above)"),
    Metric("reference_import_mb", "MB", "univariate", "reference process peak RSS after import"),
    Metric("ingest_events_per_s", "ev/s", "ingest", "prepare_batch, 256-event batches, 1 core"),
    Metric("json_parse_events_per_s", "ev/s", "ingest", "bare json.loads of the same bodies"),
    Metric("ingest_vs_json_ratio", "x", "ingest", "ingest time / JSON time, paired median"),
    Metric("ingest_requests_per_batch", "", "ingest", "storage writes per 256-event batch"),
    Metric("ingest_raw_bytes_per_reading", "B", "ingest", "raw batch v2 gzip bytes per reading"),
    Metric("import_s", "s", "import", "import function_app, fresh process, median"),
    Metric("import_mb", "MB", "import", "peak RSS of that process, median"),
    Metric("f1_entire", "", "quality", "ours, entire, event-wise micro F1 over the corpus"),
    Metric("precision_entire", "", "quality", "ours, entire"),
    Metric("recall_entire", "", "quality", "ours, entire"),
    Metric("f1_stream", "", "quality", "ours, stream (causal)"),
    Metric("precision_stream", "", "quality", "ours, stream"),
    Metric("recall_stream", "", "quality", "ours, stream"),
    Metric("reference_f1_entire", "", "quality", "reference entire, same series and settings"),
    Metric("reference_precision_entire", "", "quality", "reference entire"),
    Metric("reference_recall_entire", "", "quality", "reference entire"),
    Metric("f1_entire_best", "", "quality", "ours, best corpus-wide sensitivity (oracle)"),
    Metric("f1_entire_best_sensitivity", "", "quality", "the sensitivity of that best F1"),
    Metric("reference_f1_entire_best", "", "quality", "reference, best sensitivity (oracle)"),
    Metric("reference_f1_entire_best_sensitivity", "", "quality", "its sensitivity"),
    Metric("quality_series", "", "quality", "series in the corpus"),
    Metric("quality_events", "", "quality", "labelled events in the corpus"),
    Metric("mv_train_10k_s", "s", "mv", "our training on 10,000 x 4"),
    Metric("reference_mv_train_10k_s", "s", "mv", "reference training, default settings"),
    Metric("mv_train_speedup", "x", "mv", "reference_mv_train_10k_s / mv_train_10k_s"),
    Metric("mv_infer_rows_per_s", "rows/s", "mv", "our inference throughput"),
    Metric("reference_mv_infer_rows_per_s", "rows/s", "mv", "reference inference throughput"),
    Metric("mv_top_contributor_acc", "", "mv", "events whose top contributor is the cause"),
    Metric("reference_mv_top_contributor_acc", "", "mv", "same definition, reference"),
    Metric("mv_f1", "", "mv", "event-wise F1 on the injected events"),
    Metric("mv_precision", "", "mv", "ours"),
    Metric("mv_recall", "", "mv", "ours"),
    Metric("reference_mv_f1", "", "mv", "same definition, reference"),
    Metric("reference_mv_precision", "", "mv", "reference"),
    Metric("reference_mv_recall", "", "mv", "reference"),
    Metric("mv_train_100k_50_mb", "MB", "mv", "our peak memory training 100,000 x 50"),
    Metric("reference_mv_train_peak_mb", "MB", "mv", "reference process peak RSS, 10k x 4"),
    Metric("api_overhead_ms", "ms", "api", "v1.1 entire request in-process minus the engine"),
    Metric("api_rps", "req/s", "api", "loopback HTTP load, 8 clients"),
    Metric("api_p99_ms", "ms", "api", "99th-percentile latency under that load"),
    Metric("live_requests_per_reading", "", "live", "storage requests per reading, end to end"),
    Metric("live_cpu_ms_per_reading", "ms", "live", "app CPU per reading, ingest + detection"),
    Metric("live_capacity_meter_metrics", "", "live", "meter-metrics one instance carries"),
    Metric("live_alert_latency_ms", "ms", "live", "batch delivered to alert published"),
    Metric("live_state_kb", "KB", "live", "a series' saved state, daily period"),
    Metric("live_peak_mb", "MB", "live", "peak RSS, blob trigger on 1,000 readings, cold"),
    Metric("tuning_nab_standard", "", "tuning", "NAB tuning part, stream mode, standard profile"),
    Metric("tuning_nab_low_fp", "", "tuning", "NAB tuning part, reward-low-FP profile"),
    Metric("tuning_nab_low_fn", "", "tuning", "NAB tuning part, reward-low-FN profile"),
    Metric("tuning_skab_f1", "", "tuning", "SKAB tuning part, multivariate, point-wise F1"),
    Metric("tuning_skab_far", "%", "tuning", "SKAB tuning part, false-alarm rate"),
    Metric("tuning_skab_mar", "%", "tuning", "SKAB tuning part, missed-alarm rate"),
    Metric("tuning_evaluate_max_diff", "", "tuning", "meterwatch evaluate vs the scorers"),
)

TARGETS: tuple[Target, ...] = (
    Target("entire_8640_ms", "<=", 20.0),
    Target("entire_speedup", ">=", 300.0),
    Target("stream_us_per_point", "<=", 50.0),
    Target("ingest_events_per_s", ">=", 100_000.0),
    Target("ingest_vs_json_ratio", "<=", 3.0),
    Target("import_s", "<=", 1.0),
    Target("import_mb", "<=", 150.0),
    Target("f1_entire", ">=", "reference_f1_entire"),
    Target("f1_stream", ">=", "reference_f1_entire"),
    Target("mv_train_10k_s", "<=", 5.0),
    Target("mv_train_speedup", ">=", 20.0),
    Target("mv_infer_rows_per_s", ">=", 50_000.0),
    Target("mv_top_contributor_acc", ">=", "reference_mv_top_contributor_acc"),
    Target("mv_f1", ">=", "reference_mv_f1"),
    Target("api_overhead_ms", "<=", 2.0),
    Target("live_requests_per_reading", "<=", 2.0),
    Target("live_cpu_ms_per_reading", "<=", 0.2),
    Target("live_capacity_meter_metrics", ">=", 50_000.0),
    Target("live_alert_latency_ms", "<=", 1000.0),
    Target("live_state_kb", "<=", 16.0),
    Target("live_peak_mb", "<=", 250.0),
    Target("tuning_nab_standard", ">=", 70.0),
    Target("tuning_nab_low_fp", ">=", 60.0),
    Target("tuning_skab_f1", ">=", 0.82),
    Target("tuning_skab_far", "<=", 15.0),
    Target("tuning_evaluate_max_diff", "<=", 1e-6),
)

#: Derived ratios: name -> (numerator, denominator), computed from figures of the same run.
#: (``ingest_vs_json_ratio`` is measured by the ingest part itself, from paired timings.)
RATIOS: dict[str, tuple[str, str]] = {
    "entire_speedup": ("reference_entire_8640_ms", "entire_8640_ms"),
    "mv_train_speedup": ("reference_mv_train_10k_s", "mv_train_10k_s"),
    "mv_infer_speedup": ("mv_infer_rows_per_s", "reference_mv_infer_rows_per_s"),
}


def as_number(value: Scalar) -> float | None:
    """Return ``value`` as a finite float, or ``None`` (missing, text, bool, NaN, inf)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def ratio(numerator: Scalar, denominator: Scalar) -> float | None:
    """Return ``numerator / denominator``, or ``None`` when either is missing or it is undefined.

    Args:
        numerator: A figure of this run (``None`` when not measured).
        denominator: A figure of this run; zero or negative gives ``None``.
    """
    top, bottom = as_number(numerator), as_number(denominator)
    if top is None or bottom is None or bottom <= 0.0:
        return None
    return top / bottom


def derive(results: Mapping[str, Scalar]) -> Results:
    """Return the ratios of :data:`RATIOS` computed from ``results`` (``None`` when undefined)."""
    return {
        name: ratio(results.get(top), results.get(bottom)) for name, (top, bottom) in RATIOS.items()
    }


def evaluate(results: Mapping[str, Scalar], targets: Iterable[Target] = TARGETS) -> list[Outcome]:
    """Check each target against the results.

    Args:
        results: The flat results of one run.
        targets: The targets to check.

    Returns:
        One :class:`Outcome` per target; ``n/a`` when the metric or its bound was not measured.
    """
    outcomes: list[Outcome] = []
    for target in targets:
        value = as_number(results.get(target.metric))
        bound = (
            as_number(results.get(target.bound))
            if isinstance(target.bound, str)
            else float(target.bound)
        )
        if value is None or bound is None:
            status = "n/a"
        elif target.op == "<=":
            status = "PASS" if value <= bound else "MISS"
        elif target.op == ">=":
            status = "PASS" if value >= bound else "MISS"
        else:
            raise ValueError(f"target {target.metric}: op must be '<=' or '>=', not {target.op!r}")
        outcomes.append(Outcome(target, value, bound, status))
    return outcomes


def summarise(outcomes: Iterable[Outcome]) -> Results:
    """Return flat summary keys: how many targets passed, missed, and which ones missed."""
    listed = list(outcomes)
    missed = [o.target.metric for o in listed if o.status == "MISS"]
    return {
        "targets_passed": sum(o.status == "PASS" for o in listed),
        "targets_missed": len(missed),
        "targets_not_measured": sum(o.status == "n/a" for o in listed),
        "targets_missed_list": ", ".join(missed),
    }


def clean_scalar(name: str, value: object) -> Scalar:
    """Return ``value`` as a JSON scalar for the flat results file.

    numpy scalars become Python numbers and NaN/inf become ``None`` (JSON has neither).

    Raises:
        TypeError: ``value`` is a container or an object: the results file is flat.
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    item = getattr(value, "item", None)  # numpy scalar
    if callable(item) and getattr(value, "shape", None) == ():
        return clean_scalar(name, item())
    raise TypeError(f"result {name!r} must be a number, text, bool or null, not {type(value)}")


#: Key prefixes of each part's figures: a part re-run with ``--only`` replaces all of its keys.
PART_PREFIXES: dict[str, tuple[str, ...]] = {
    "univariate": (
        "univariate_",
        "entire_",
        "stream_",
        "reference_entire_",
        "reference_import_",
        "reference_version",
        "reference_torch_version",
    ),
    "ingest": ("ingest_", "json_parse_"),
    "live": ("live_",),
    "import": ("import_", "python_startup_"),
    "quality": (
        "quality_",
        "f1_",
        "precision_",
        "recall_",
        "household_",
        "reference_f1_",
        "reference_precision_",
        "reference_recall_",
        "reference_household_",
    ),
    "mv": ("mv_", "reference_mv_"),
    "api": ("api_",),
    "tuning": ("tuning_",),
}


def part_of(key: str) -> str | None:
    """Return the part a result key belongs to (``None`` for machine, ratio and summary keys)."""
    for part, prefixes in PART_PREFIXES.items():
        if key.startswith(prefixes):
            return part
    return None


def merge_results(
    previous: Mapping[str, Scalar], current: Mapping[str, Scalar], parts_run: Iterable[str]
) -> Results:
    """Keep the previous figures of parts not run now; replace everything of the parts run.

    Derived ratios and target summaries are dropped: they are recomputed from the merged
    figures (a ratio's two sides always come from one part, so from one run).
    """
    rerun = set(parts_run)
    merged: Results = {
        key: value
        for key, value in previous.items()
        if part_of(key) is not None and part_of(key) not in rerun
    }
    merged.update(current)
    return merged


def load_results(path: Path) -> Results:
    """Return the scalar entries of an existing results file (empty when missing or invalid)."""
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(previous, dict):
        return {}
    return {
        str(key): clean_scalar(str(key), value)
        for key, value in previous.items()
        if not isinstance(value, dict | list)
    }


def write_results(path: Path, results: Mapping[str, object]) -> Results:
    """Write the flat results object (``indent=2``, keys in the given order); return it.

    Raises:
        TypeError: A value is not a scalar.
    """
    cleaned = {name: clean_scalar(name, value) for name, value in results.items()}
    path.write_text(json.dumps(cleaned, indent=2) + "\n", encoding="utf-8")
    return cleaned


def format_number(value: float) -> str:
    """Format a figure for the table: four significant digits, thousands separators."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    digits = max(0, 3 - math.floor(math.log10(magnitude)))
    return f"{value:.{digits}f}"


def format_value(value: Scalar, unit: str = "") -> str:
    """Format a result for the table (``n/a`` when missing)."""
    if value is None:
        return "n/a"
    if isinstance(value, bool | str):
        return str(value)
    text = f"{value:,}" if isinstance(value, int) else format_number(float(value))
    if unit == "x":
        return f"{text}x"
    return f"{text} {unit}" if unit else text


def format_table(results: Mapping[str, Scalar], outcomes: Iterable[Outcome]) -> str:
    """Return the results as a text table: metric, value, target and PASS/MISS beside it.

    Metrics of the catalogue come first, in its order; other numeric keys follow.
    """
    by_metric = {o.target.metric: o for o in outcomes}
    units = {m.name: m.unit for m in METRICS}
    names = [m.name for m in METRICS if m.name in results]
    names += [
        key
        for key in results
        if key not in units
        and as_number(results[key]) is not None
        and not key.startswith("machine")
    ]
    lines = [f"{'metric':<34} {'value':>16}  {'target':<46} status", "-" * 106]
    for name in names:
        outcome = by_metric.get(name)
        target, status = "", ""
        if outcome is not None:
            target = outcome.target.describe()
            if isinstance(outcome.target.bound, str) and outcome.bound is not None:
                target += f" ({format_number(outcome.bound)})"
            status = outcome.status
        value = format_value(results[name], units.get(name, ""))
        lines.append(f"{name:<34} {value:>16}  {target:<46} {status}".rstrip())
    return "\n".join(lines)


def machine_info(now: datetime | None = None) -> Results:
    """Return flat machine facts: cores, CPU model, memory, Python, platform, load, date (UTC)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory_gb: float | None = None
    try:
        memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory_gb = None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    python = platform.python_version()
    return {
        "machine": f"{cores} cores, {cpu}, Python {python}, {platform.system()}",
        "machine_cores": cores,
        "machine_cpu": cpu,
        "machine_memory_gb": round(memory_gb, 1) if memory_gb is not None else None,
        "machine_python": python,
        "machine_platform": platform.platform(),
        "machine_load_1m": load_average(),
        "date": stamp,
    }


def load_average() -> float | None:
    """Return the 1-minute load average (other work slows every timing; ``None`` if unknown)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def time_calls(call: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Time ``call`` ``repeats`` times after ``warmup`` untimed calls; return seconds per call."""
    for _ in range(warmup):
        call()
    seconds: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds


def median(values: Iterable[float]) -> float:
    """Return the median (``statistics.median``), raising ``ValueError`` when empty."""
    listed = list(values)
    if not listed:
        raise ValueError("median of no measurements: the benchmark ran zero repeats")
    return float(statistics.median(listed))


#: Exit status of a part's measuring subprocess when the code it measures is not there yet.
EXIT_NOT_AVAILABLE = 3


def pin_to_one_core() -> int | None:
    """Pin this process to one CPU (the lowest it may use); return it (``None``: unsupported)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def run_measuring_process(
    report: PartReport, module: str, arguments: Iterable[str] = (), timeout: float = 900
) -> None:
    """Run ``python -m MODULE --output FILE [ARGUMENTS]`` fresh; add the JSON it writes.

    The parts that pin themselves to one core (``ingest``, ``live``) measure in a process of
    their own, so the suite's imports and memory never weigh on their figures.

    Raises:
        NotAvailable: The module exited with :data:`EXIT_NOT_AVAILABLE` (its stderr says why).
        RuntimeError: It failed otherwise (the end of its stderr is in the message).
    """
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="meterwatch-bench-") as folder:
        output = Path(folder) / "figures.json"
        command = [sys.executable, "-m", module, "--output", str(output), *arguments]
        done = subprocess.run(
            command,
            cwd=Path(__file__).resolve().parents[1],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if done.returncode == EXIT_NOT_AVAILABLE:
            raise NotAvailable(done.stderr.strip().removeprefix("not available: "))
        if done.returncode != 0:
            raise RuntimeError(f"{module} exited {done.returncode}: {done.stderr[-1500:]}")
        report.results.update(json.loads(output.read_text(encoding="utf-8")))
