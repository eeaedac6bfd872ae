"""Command-line options shared by the commands that read CSV files (no heavy imports here)."""

from __future__ import annotations

import argparse


def date_format_type(value: str) -> str:
    """argparse type of ``--date-format`` (auto, day-first, month-first or a strftime pattern)."""
    from shared.errors import CsvFormatError
    from shared.timefmt import check_date_format

    try:
        return check_date_format(value, "--date-format", CsvFormatError)
    except CsvFormatError as exc:
        raise argparse.ArgumentTypeError(exc.message) from exc


def add_date_format_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--date-format`` to a command that reads CSV files."""
    parser.add_argument(
        "--date-format",
        type=date_format_type,
        default="auto",
        metavar="auto|day-first|month-first|PATTERN",
        help="how numeric dates such as 05/01/2007 read: auto (decided from the whole column; "
        "an ambiguous column is an error), day-first, month-first, or a strftime pattern "
        "such as '%%d/%%m/%%Y %%H:%%M'",
    )
