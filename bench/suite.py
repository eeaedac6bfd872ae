"""``bench/run``: meterwatch beside the reference detector, one run, one results file.

Parts (``--only`` picks some, comma-separated):

* ``univariate`` - entire detection on 8,640 points (ours and the reference), streaming;
* ``ingest`` - ``prepare_batch`` events/s on one core against bare ``json.loads``;
* ``import`` - ``import function_app`` in a fresh process: wall time and peak RSS;
* ``quality`` - event-wise precision/recall/F1 on the labelled synthetic corpus, both detectors;
* ``mv`` - multivariate training, inference and root-cause accuracy, both detectors;
* ``api`` - the v1.1 REST API's overhead over the engine and a loopback load
  (``bench/bench_api.py``);
* ``live`` - the live path end to end through the triggers (``bench/bench_live.py``);
* ``tuning`` - NAB's and SKAB's tuning parts (real labelled telemetry), stream mode and the
  multivariate engine with the shipped defaults, scored by ``../shared/tools/``
  (``bench/bench_tuning.py``).

A part whose module is not written yet is reported as ``not available`` and the others go on.
Targets are printed as PASS/MISS beside each figure; the exit status is 0 even when one is
missed (``--strict`` exits 1 when a part failed with an error). Figures go to
``bench/results.json`` as one flat object; ``--only`` keeps the other parts' previous figures.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    bench_import,
    bench_ingest,
    bench_live,
    bench_mv_reference,
    bench_quality,
    bench_tuning,
    bench_univariate,
)
from bench.harness import (
    PARTS,
    NotAvailable,
    PartReport,
    Results,
    derive,
    evaluate,
    format_table,
    load_average,
    load_results,
    machine_info,
    merge_results,
    require,
    summarise,
    write_results,
)
from bench.reference import ensure_reference_venv


def run_api(report: PartReport, quick: bool) -> None:
    """The ``api`` part: ``bench.bench_api.run_api_benchmarks`` (the REST API engineer's)."""
    module = require("bench.bench_api", "run_api_benchmarks")
    figures = dict(module.run_api_benchmarks(quick))
    status = figures.pop("api_status", "ok")
    if status != "ok":
        report.notes.append(str(status))
    report.results.update(figures)


RESULTS_PATH = Path(__file__).resolve().parent / "results.json"
PartRunner = Callable[[PartReport, bool], None]
RUNNERS: dict[str, PartRunner] = {
    "univariate": bench_univariate.run,
    "ingest": bench_ingest.run,
    "import": bench_import.run,
    "quality": bench_quality.run,
    "mv": bench_mv_reference.run,
    "api": run_api,
    "live": bench_live.run,
    "tuning": bench_tuning.run,
}
NEEDS_REFERENCE = frozenset({"univariate", "quality", "mv"})


def parse_parts(text: str | None) -> list[str]:
    """Return the parts named in ``--only`` (all of them when ``None``), in the suite's order.

    Raises:
        ValueError: A name is not one of :data:`bench.harness.PARTS`.
    """
    if not text:
        return list(PARTS)
    asked = {name.strip() for name in text.split(",") if name.strip()}
    unknown = sorted(asked - set(PARTS))
    if unknown:
        raise ValueError(f"unknown part(s) {', '.join(unknown)}: choose from {', '.join(PARTS)}")
    return [part for part in PARTS if part in asked]


def run_part(part: str, runner: PartRunner, quick: bool) -> PartReport:
    """Run one part; a missing module or an error is noted in the report, never raised."""
    report = PartReport(part)
    report.results[f"{part}_date"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    sys.stderr.write(f"[bench] {part} ...\n")
    sys.stderr.flush()
    start = time.perf_counter()
    try:
        runner(report, quick)
    except NotAvailable as exc:
        report.notes.append(f"not available ({exc})")
    except Exception as exc:  # report and carry on with the other parts
        report.failed = True
        report.notes.append(f"failed ({type(exc).__name__}: {exc})")
        traceback.print_exc(file=sys.stderr)
    wall = time.perf_counter() - start
    report.results[f"{part}_wall_s"] = round(wall, 2)
    report.results[f"{part}_status"] = report.status()
    sys.stderr.write(f"[bench] {part} done in {wall:.1f} s: {report.status()}\n")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected parts, write the results file and print the table."""
    parser = argparse.ArgumentParser(
        prog="bench/run", description="meterwatch benchmarks beside time-series-anomaly-detector"
    )
    parser.add_argument("--only", help=f"comma-separated parts: {','.join(PARTS)}")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="results JSON file")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument("--no-setup", action="store_true", help="never install the reference")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a part failed")
    args = parser.parse_args(argv)
    try:
        parts = parse_parts(args.only)
    except ValueError as exc:
        parser.error(str(exc))
    if NEEDS_REFERENCE & set(parts) and not args.no_setup:
        try:
            ensure_reference_venv()
        except NotAvailable as exc:
            sys.stderr.write(f"[bench] reference not available: {exc}\n")
    started = time.perf_counter()
    current: Results = machine_info()
    reports = [run_part(part, RUNNERS[part], args.quick) for part in parts]
    for report in reports:
        current.update(report.results)
    current["bench_parts"] = ",".join(parts)
    current["bench_quick"] = bool(args.quick)
    current["bench_wall_s"] = round(time.perf_counter() - started, 1)
    current["machine_load_1m_end"] = load_average()
    results = current
    if set(parts) != set(PARTS):
        results = merge_results(load_results(args.output), current, parts)
    results.update(derive(results))
    outcomes = evaluate(results)
    results.update(summarise(outcomes))
    written = write_results(args.output, results)
    print(f"meterwatch benchmarks - {written['machine']} - {written['date']}")
    print(format_table(written, outcomes))
    print()
    for part in PARTS:
        status = written.get(f"{part}_status")
        if status is not None:
            print(f"{part:<11} {status}")
    for report in reports:
        if report.details:
            print(f"\n{report.part} detail:")
            print("\n".join(report.details))
    print(
        f"\ntargets: {written['targets_passed']} PASS, {written['targets_missed']} MISS, "
        f"{written['targets_not_measured']} not measured; written to {args.output}"
    )
    failed = any(report.failed for report in reports)
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())
