"""Detection quality: event-wise precision, recall and F1, ours (entire, stream) and the reference.

Both detectors see the same series with the same setting: the v1.1 service defaults
(sensitivity 99, maxAnomalyRatio 0.25) and the series' true period where it is known and usable
(the reference needs at least two cycles plus one point; with fewer, or for a non-seasonal
family, both are told ``period=0``). Series: :func:`shared.synthetic.quality_corpus` (29 series
modelled on NAB/Yahoo-like telemetry, some without any anomaly) and, reported apart, the
six-day synthetic household (four meters). Scores are those of
:func:`shared.evaluation.event_scores` (see :mod:`bench.scoring`), micro-averaged over the
corpus: the counts of every series are added before precision and recall are taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.bench_univariate import MAX_ANOMALY_RATIO, SENSITIVITY, iso_stamps, make_config
from bench.harness import NotAvailable, PartReport, Results, require
from bench.reference import run_reference
from bench.scoring import EventCounts, event_counts

TOLERANCE = 3
#: Sensitivities of the sweep that finds each detector's best corpus-wide setting (an oracle:
#: it looks at the labels, so it bounds what tuning could reach; the headline uses 99).
SWEEP = (99, 95, 90, 85, 80, 70, 60, 50, 30, 10)
#: Series whose reference flags are also computed through its public ``predict()``.
VERIFY_FIRST = 6

#: The generator's true seasonal period per corpus family, in points (0: not seasonal).
TRUE_PERIODS: dict[str, int] = {
    "cpu_5min": 288,
    "traffic_hourly": 24,
    "temperature_1min": 1440,
    "latency_1min": 0,
    "random_walk": 0,
    "sparse_counts": 0,
    "hetero_daily": 96,
    "drift_trend": 24,
    "quantised_sensor": 1440,
    "seasonal_phase_change": 24,
    "clean-0": 144,
    "clean-1": 0,
    "clean-2": 0,
}
HOUSEHOLD_PERIOD = 1440
HOUSEHOLD_DAYS = 6


def period_of(name: str, points: int) -> int | None:
    """Return the period both detectors are given for a series (``None``: let them detect).

    A known period is used only when the series holds at least two cycles plus one point (the
    reference refuses fewer); otherwise the series is treated as non-seasonal (``0``).
    """
    family = name.rsplit("-", 1)[0]
    period = TRUE_PERIODS.get(name, TRUE_PERIODS.get(family))
    if name.startswith("household-"):
        period = HOUSEHOLD_PERIOD
    if period is None:
        return None
    return period if period == 0 or points >= 2 * period + 1 else 0


def labelled_series() -> tuple[list[Any], list[Any]]:
    """Return ``(corpus, household)`` as lists of ``LabelledSeries`` (household renamed)."""
    synthetic = require("shared.demo.household", "household")
    corpus = list(require("bench.corpus", "quality_corpus").quality_corpus(seed=0))
    household = [
        _renamed(series, f"household-{metric}")
        for metric, series in synthetic.household(days=HOUSEHOLD_DAYS, seed=0).items()
    ]
    return corpus, household


def _renamed(series: Any, name: str) -> Any:
    import dataclasses

    return dataclasses.replace(series, name=name)


def score(series: Any, flags: np.ndarray) -> EventCounts:
    """Return the event counts of one series (``shared.evaluation.event_scores``)."""
    if flags.shape != series.values.shape:
        raise ValueError(f"{series.name}: {flags.size} flags for {series.values.size} points")
    return event_counts(series.events, flags, TOLERANCE)


def ours_entire_flags(all_series: Sequence[Any], sensitivity: int) -> dict[str, np.ndarray]:
    """Run our entire detection on each series at one sensitivity; return flags by name."""
    engine = require("shared.engine.univariate", "UnivariateConfig", "detect_entire")
    flags: dict[str, np.ndarray] = {}
    for series in all_series:
        config = make_config(
            engine.UnivariateConfig,
            sensitivity=sensitivity,
            max_anomaly_ratio=MAX_ANOMALY_RATIO,
            period=period_of(series.name, series.values.size),
        )
        flags[series.name] = np.asarray(
            engine.detect_entire(series.values, config).is_anomaly, dtype=bool
        )
    return flags


def ours_flags(all_series: Sequence[Any]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Run our entire and stream detectors on each series; return flags by series name."""
    engine = require("shared.engine.univariate", "UnivariateConfig", "detect_entire")
    entire: dict[str, np.ndarray] = {}
    stream: dict[str, np.ndarray] = {}
    streaming: Any = None
    try:
        streaming = require("shared.engine.streaming", "StreamConfig", "StreamDetector")
    except NotAvailable:
        streaming = None
    for series in all_series:
        period = period_of(series.name, series.values.size)
        config = make_config(
            engine.UnivariateConfig,
            sensitivity=SENSITIVITY,
            max_anomaly_ratio=MAX_ANOMALY_RATIO,
            period=period,
        )
        result = engine.detect_entire(series.values, config)
        entire[series.name] = np.asarray(result.is_anomaly, dtype=bool)
        if streaming is not None:
            detector = streaming.StreamDetector(
                make_config(streaming.StreamConfig, sensitivity=SENSITIVITY, period=period)
            )
            stream[series.name] = np.asarray(detector.update_many(series.values).is_anomaly, bool)
    return entire, stream


def reference_flags(
    all_series: Sequence[Any],
) -> tuple[dict[str, np.ndarray], dict[int, dict[str, np.ndarray]]]:
    """Run the reference's entire detection on each series (one worker, one import).

    Returns:
        Flags by series name at the headline setting, and the sweep: sensitivity -> flags.
    """
    job = {
        "task": "entire",
        "entire": {
            "series": [
                {
                    "name": s.name,
                    "timestamps": iso_stamps(s.timestamps),
                    "values": s.values.tolist(),
                    "period": period_of(s.name, s.values.size),
                    "step_s": float(s.step_seconds),
                }
                for s in all_series
            ],
            "params": {"sensitivity": SENSITIVITY, "maxAnomalyRatio": MAX_ANOMALY_RATIO},
            "repeats": 1,
            "sensitivities": list(SWEEP),
            # predict() on the first few too: checks the one-detect sweep against the public API.
            "verify_first": VERIFY_FIRST,
        },
    }
    result = run_reference(job, timeout_s=1800.0)
    flags: dict[str, np.ndarray] = {}
    sweep: dict[int, dict[str, np.ndarray]] = {s: {} for s in SWEEP}
    errors = []
    for item in result["entire"]:
        if item["error"]:
            errors.append(f"{item['name']}: {item['error']}")
            continue
        flags[item["name"]] = np.asarray(item["is_anomaly"], dtype=bool)
        for sensitivity, positions in item["sweep"].items():
            mask = np.zeros(len(item["is_anomaly"]), dtype=bool)
            mask[np.asarray(positions, dtype=np.int64)] = True
            sweep[int(sensitivity)][item["name"]] = mask
    if errors:
        raise RuntimeError("reference failed on " + "; ".join(errors))
    return flags, sweep


def best_of(corpus: Sequence[Any], sweep: dict[int, dict[str, np.ndarray]]) -> tuple[int, float]:
    """Return the sensitivity with the best corpus-wide F1, and that F1 (ties: the higher one)."""
    scored = [(micro(corpus, flags).f1, sensitivity) for sensitivity, flags in sweep.items()]
    f1, sensitivity = max(scored)
    return sensitivity, f1


def micro(series: Sequence[Any], flags: dict[str, np.ndarray]) -> EventCounts:
    """Add up the event counts of ``series`` (all must have flags)."""
    total = EventCounts()
    for item in series:
        total = total + score(item, flags[item.name])
    return total


def figures(prefix: str, suffix: str, counts: EventCounts) -> Results:
    """Return ``{prefix}precision{suffix}``, recall and f1 for one detector and set."""
    return {
        f"{prefix}precision{suffix}": counts.precision,
        f"{prefix}recall{suffix}": counts.recall,
        f"{prefix}f1{suffix}": counts.f1,
    }


def breakdown(
    corpus: Sequence[Any], household: Sequence[Any], flags: dict[str, dict[str, np.ndarray]]
) -> list[str]:
    """Return per-family F1 lines (events, then F1 of each detector), for tuning."""
    families: dict[str, list[Any]] = {}
    for item in corpus:
        families.setdefault(item.name.rsplit("-", 1)[0], []).append(item)
    families["household"] = list(household)
    names = list(flags)
    lines = [f"{'family':<24}{'events':>7}" + "".join(f"{n:>20}" for n in names)]
    for family, members in families.items():
        cells = []
        for name in names:
            if all(m.name in flags[name] for m in members):
                counts = micro(members, flags[name])
                cells.append(f"{counts.f1:.2f} P{counts.precision:.2f} R{counts.recall:.2f}")
            else:
                cells.append("n/a")
        events = sum(len(m.events) for m in members)
        lines.append(f"{family:<24}{events:>7}" + "".join(f"{c:>20}" for c in cells))
    return lines


def run(report: PartReport, quick: bool = False) -> None:
    """The ``quality`` part: event-wise scores of both detectors on the labelled series."""
    corpus, household = labelled_series()
    everything = corpus + household
    report.results["quality_series"] = len(corpus)
    report.results["quality_events"] = sum(len(s.events) for s in corpus)
    report.results["quality_points"] = int(sum(s.values.size for s in corpus))
    flags: dict[str, dict[str, np.ndarray]] = {}
    ours = report.attempt("ours entire/stream", lambda: ours_flags(everything))
    if ours is not None:
        entire, stream = ours
        flags["ours entire"] = entire
        report.results.update(figures("", "_entire", micro(corpus, entire)))
        report.results.update(figures("household_", "_entire", micro(household, entire)))
        if stream:
            flags["ours stream"] = stream
            report.results.update(figures("", "_stream", micro(corpus, stream)))
            report.results.update(figures("household_", "_stream", micro(household, stream)))
        else:
            report.notes.append("ours stream: not available (shared.engine.streaming)")
        sweep = report.attempt(
            "ours sweep", lambda: {s: ours_entire_flags(corpus, s) for s in SWEEP}
        )
        if sweep is not None:
            best, f1 = best_of(corpus, sweep)
            report.results["f1_entire_best"] = f1
            report.results["f1_entire_best_sensitivity"] = best
    ref = report.attempt("reference entire", lambda: reference_flags(everything))
    if ref is not None:
        ref_flags, ref_sweep = ref
        flags["reference entire"] = ref_flags
        report.results.update(figures("reference_", "_entire", micro(corpus, ref_flags)))
        report.results.update(
            figures("reference_household_", "_entire", micro(household, ref_flags))
        )
        best, f1 = best_of(corpus, ref_sweep)
        report.results["reference_f1_entire_best"] = f1
        report.results["reference_f1_entire_best_sensitivity"] = best
    if flags:
        report.details.extend(breakdown(corpus, household, flags))
