"""``meterwatch evaluate``: a detector output against labels (NAB scores, F1, alarm rates).

``evaluate OUTPUT --labels LABELS [--json FILE] [--plot PNG]``: OUTPUT is a detector output CSV
(``meterwatch detect``'s, or anyone's: a timestamp column and ``isAnomaly`` and/or a score
column) or a folder of them; LABELS a NAB-style windows JSON, a CSV of anomalous timestamps, a
CSV with a label column (``--label-column anomaly``) or a folder of such CSVs. The rules are
those of :mod:`shared.evaluation`; the reading and matching of
:mod:`shared.evaluation.files`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from shared.cli.options import add_date_format_argument

if TYPE_CHECKING:
    from shared.evaluation.files import EvaluationReport

PROFILE_LABELS = {"standard": "standard", "low_fp": "low FP", "low_fn": "low FN"}


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``evaluate`` (called by :mod:`shared.cli.main`)."""
    evaluate = commands.add_parser(
        "evaluate",
        help="score a detector output against labels (NAB profiles, F1, alarm rates)",
        description="Score a detector output CSV (or a folder of them) against labels: the "
        "three NAB v1.1 profile scores (threshold optimised on the score column), and "
        "point-wise precision, recall, F1, false-alarm and missed-alarm rates (SKAB's "
        "definitions) of the flags.",
    )
    evaluate.add_argument("output", type=Path, help="detector output CSV, or a folder of them")
    evaluate.add_argument(
        "--labels",
        type=Path,
        required=True,
        help="windows JSON ({file: [[start, end], ...]} or [[start, end], ...]), a CSV of "
        "anomalous timestamps, a CSV with --label-column, or a folder of label CSVs",
    )
    evaluate.add_argument(
        "--label-column", default=None, help="0/1 label column of the label CSV (e.g. anomaly)"
    )
    evaluate.add_argument(
        "--label-timestamp-column",
        default=None,
        help="timestamp column of the label CSV (default: timestamp, datetime, time, date or "
        "the first column)",
    )
    evaluate.add_argument(
        "--timestamp-column",
        default=None,
        help="timestamp column of the output (default: timestamp, datetime, time, date or the "
        "first column)",
    )
    evaluate.add_argument(
        "--score-column", default="severity", help="score column of the output (NAB threshold)"
    )
    evaluate.add_argument(
        "--flag-column", default="isAnomaly", help="0/1 flag column of the output (F1, FAR)"
    )
    evaluate.add_argument(
        "--flag-threshold",
        type=float,
        default=0.5,
        help="without a flag column, a row is flagged when its score is >= this",
    )
    evaluate.add_argument(
        "--skip-rows",
        type=int,
        default=0,
        help="point-wise metrics start at this row of each file (SKAB's protocol: 400)",
    )
    evaluate.add_argument(
        "--no-probation",
        action="store_true",
        help="score NAB on every row (NAB leaves the first 15 %%, at most 750 rows, out)",
    )
    evaluate.add_argument("--json", type=Path, default=None, help="write the report as JSON")
    evaluate.add_argument(
        "--plot",
        type=Path,
        default=None,
        help="PNG of the series with windows, hits, misses and false alarms (for a folder: a "
        "folder of PNGs)",
    )
    evaluate.add_argument("--per-file", action="store_true", help="print one line per file")
    add_date_format_argument(evaluate)
    evaluate.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from shared.evaluation.files import OutputColumns, evaluate_outputs

    report = evaluate_outputs(
        args.output,
        args.labels,
        OutputColumns(
            args.timestamp_column, args.score_column, args.flag_column, args.flag_threshold
        ),
        label_column=args.label_column,
        label_timestamp_column=args.label_timestamp_column,
        skip_rows=args.skip_rows,
        probation=not args.no_probation,
        date_format=args.date_format,
    )
    document = report.to_dict()
    print(_summary(document, per_file=args.per_file))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if args.plot is not None:
        from shared.demo.plots_evaluation import plot_evaluation

        for item in report.files:
            target = args.plot
            if args.output.is_dir():
                target = args.plot / Path(item.output.name).with_suffix(".png")
            plot_evaluation(target, item)
        print(f"pictures: {args.plot}", file=sys.stderr)
    for key in report.unmatched_labels:
        print(f"warning: labels for {key} matched no output file", file=sys.stderr)
    return 0


def _summary(document: EvaluationReport, per_file: bool) -> str:
    nab = document["nab"]
    point = document["pointwise"]
    files = document["files"]
    windows = sum(item["windows"] for item in files)
    lines = [f"{len(files)} file(s), {windows} labelled window(s)", ""]
    lines.append(f"{'NAB profile':<12} {'score':>8} {'threshold':>10} {'found':>7} {'FP':>6}")
    for key, label in PROFILE_LABELS.items():
        entry = nab[key]
        threshold = "none" if entry["threshold"] is None else f"{entry['threshold']:.4g}"
        lines.append(
            f"{label:<12} {entry['score']:>8.2f} {threshold:>10} "
            f"{entry['detected_windows']:>3}/{entry['windows']:<3} {entry['false_positives']:>6}"
        )
    lines += [
        "",
        f"point-wise: precision {point['precision']:.3f}  recall {point['recall']:.3f}  "
        f"F1 {point['f1']:.3f}  false-alarm rate {point['false_alarm_rate']:.2f} %  "
        f"missed-alarm rate {point['missed_alarm_rate']:.2f} %",
        f"  TP {point['tp']}  FP {point['fp']}  FN {point['fn']}  TN {point['tn']}",
    ]
    if per_file:
        lines += ["", f"{'file':<56} {'rows':>6} {'win':>4} {'hit':>4} {'F1':>6} {'FAR %':>6}"]
        for item in files:
            lines.append(
                f"{item['file']:<56} {item['rows']:>6} {item['windows']:>4} "
                f"{item['windows_with_a_flag']:>4} {item['f1']:>6.3f} "
                f"{item['false_alarm_rate']:>6.2f}"
            )
    return "\n".join(lines)
