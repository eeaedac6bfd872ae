"""The multivariate commands of ``meterwatch``: ``train`` and ``detect-mv``, on files.

Both call the same use cases as the Durable activities (:mod:`shared.multivariate.training`,
:mod:`~shared.multivariate.detection`, :mod:`~shared.multivariate.export`); a model trained here
is the same export zip the orchestration writes, and ``detect-mv --model`` loads
either with no storage account.

::

    meterwatch train energy-data.zip --start 2006-12-16T17:24:00Z --end 2006-12-18T02:43:00Z \\
        --output model.zip
    meterwatch detect-mv --model model.zip energy-data.zip --start 2006-12-19T00:00:00Z \\
        --end 2006-12-19T20:26:00Z --output results.json --picture results.png
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from shared.cli.options import add_date_format_argument
from shared.errors import InputError

FILL_NA_METHODS = ("Previous", "Subsequent", "Linear", "Zero", "Fixed")
ALIGN_MODES = ("Inner", "Outer")


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``train`` and ``detect-mv`` to the ``meterwatch`` sub-commands."""
    train = subparsers.add_parser(
        "train",
        help="train a multivariate model on a .zip (one CSV per variable) or a .csv (one column "
        "per variable)",
    )
    train.add_argument("input", type=Path, help="dataset: .zip (MultiTable) or .csv (OneTable)")
    train.add_argument("--start", default=None, help="first training timestamp (ISO 8601)")
    train.add_argument("--end", default=None, help="last training timestamp (ISO 8601)")
    train.add_argument(
        "--sliding-window", type=int, default=300, help="slidingWindow, 28-2880 (default 300)"
    )
    train.add_argument("--align-mode", choices=ALIGN_MODES, default="Outer")
    train.add_argument("--fill-na-method", choices=FILL_NA_METHODS, default="Linear")
    train.add_argument(
        "--padding-value", type=float, default=0.0, help="value of --fill-na-method Fixed"
    )
    train.add_argument("--display-name", default="", help="displayName (at most 24 characters)")
    train.add_argument("--output", type=Path, required=True, help="model zip to write")
    add_date_format_argument(train)
    train.set_defaults(handler=_train)

    detect = subparsers.add_parser(
        "detect-mv", help="detect multivariate anomalies with a trained model zip"
    )
    detect.add_argument("--model", type=Path, required=True, help="model zip (train/export)")
    detect.add_argument("input", type=Path, help="dataset: .zip (MultiTable) or .csv (OneTable)")
    detect.add_argument("--start", default=None, help="first timestamp to judge (ISO 8601)")
    detect.add_argument("--end", default=None, help="last timestamp to judge (ISO 8601)")
    detect.add_argument(
        "--top-contributors", type=int, default=None, help="contributors per anomaly"
    )
    detect.add_argument(
        "--output", type=Path, required=True, help="results.json (v1.1) or results.csv"
    )
    detect.add_argument("--picture", type=Path, default=None, help="PNG of the root-cause view")
    add_date_format_argument(detect)
    detect.set_defaults(handler=_detect_mv)


class ProgressBar:
    """A one-line progress bar for a share of work (0 to 1) on a text stream."""

    def __init__(self, stream: TextIO, label: str, width: int = 30) -> None:
        self.stream, self.label, self.width = stream, label, width
        self.started = time.perf_counter()
        self.done = False

    def update(self, share: float) -> None:
        """Redraw the bar at ``share`` (a newline once it reaches 1)."""
        if self.done:
            return
        share = min(max(float(share), 0.0), 1.0)
        filled = int(round(self.width * share))
        elapsed = time.perf_counter() - self.started
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'-' * (self.width - filled)}] "
            f"{share * 100:3.0f}% {elapsed:5.1f}s"
        )
        if share >= 1.0:
            self.stream.write("\n")
            self.done = True
        self.stream.flush()


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(f"{what} {path} does not exist.", "FileNotFound") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{what} {path} is a folder, not a file.", "FileNotFound") from exc


def _train(args: argparse.Namespace) -> int:
    from shared.multivariate.export import export_model, local_model_object
    from shared.multivariate.ids import content_hash
    from shared.multivariate.spec import parse_training_spec
    from shared.multivariate.training import read_dataset, train_model

    data = _read(args.input, "The dataset")
    spec = parse_training_spec(
        {
            "startTime": args.start,
            "endTime": args.end,
            "slidingWindow": args.sliding_window,
            "alignPolicy": {
                "alignMode": args.align_mode,
                "fillNAMethod": args.fill_na_method,
                "paddingValue": args.padding_value,
            },
            "displayName": args.display_name,
            "dateFormat": args.date_format,
        }
    )
    series = read_dataset(data, args.input.name, date_format=spec.date_format)
    bar = ProgressBar(sys.stderr, "training")
    trained = train_model(series, spec, progress=bar.update)
    bar.update(1.0)
    model_object = local_model_object(trained, str(args.input), args.input.name, content_hash(data))
    archive = export_model(trained.model.to_bytes(), model_object)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(archive)
    diagnostics = trained.model.diagnostics
    print(
        f"trained on {len(trained.training)} timestamps x {len(trained.model.variables)} variables "
        f"({', '.join(trained.model.variables)}), {trained.windows.to_dict()['trainStart']} to "
        f"{trained.windows.to_dict()['trainEnd']}, in {trained.seconds:.2f}s "
        f"(threshold {diagnostics.threshold:.4g})",
        file=sys.stderr,
    )
    print(f"model {model_object['modelId']} written to {args.output}", file=sys.stderr)
    return 0


def _detect_mv(args: argparse.Namespace) -> int:
    from shared.multivariate.detection import detect_batch, result_csv, result_id_for, top_anomalies
    from shared.multivariate.export import load_export
    from shared.multivariate.ids import content_hash
    from shared.multivariate.training import read_dataset
    from shared.timefmt import to_datetime64

    suffix = args.output.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise InputError(
            f"--output {args.output}: use a .json (v1.1 batch result) or a .csv file.",
            "InvalidOutput",
        )
    exported = load_export(_read(args.model, "The model"))
    data = _read(args.input, "The dataset")
    series = read_dataset(data, args.input.name, date_format=args.date_format)
    start = None if args.start is None else to_datetime64(args.start, "--start")
    end = None if args.end is None else to_datetime64(args.end, "--end")
    top = args.top_contributors or exported.model.config.top_contributor_count
    detection = detect_batch(
        exported.model,
        series,
        exported.align_policy,
        start=start,
        end=end,
        top_contributor_count=top,
        data_source=str(args.input),
    )
    model_id = str(exported.model_object.get("modelId", ""))
    detection = replace(
        detection,
        result_id=result_id_for(model_id, detection.start, detection.end, top, content_hash(data)),
    )
    result = detection.to_v11()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".json":
        args.output.write_text(json.dumps(result, indent=2), encoding="utf-8")
    else:
        args.output.write_text(result_csv(result), encoding="utf-8")
    if args.picture is not None:
        from shared.demo.plots_mv import plot_multivariate

        plot_multivariate(args.picture, detection.window, result, title=args.input.name)
    anomalies = detection.anomalies
    print(
        f"{len(anomalies)} of {len(detection.points)} timestamps anomalous "
        f"({result['summary']['setupInfo']['startTime']} to "
        f"{result['summary']['setupInfo']['endTime']}); results in {args.output}",
        file=sys.stderr,
    )
    for anomaly in top_anomalies(result, 3):
        causes = ", ".join(
            f"{c['variable']} {c['contributionScore']:.2f}" for c in anomaly["topContributors"]
        )
        print(
            f"  {anomaly['timestamp']} severity {anomaly['severity']:.2f}: {causes}",
            file=sys.stderr,
        )
    return 0
