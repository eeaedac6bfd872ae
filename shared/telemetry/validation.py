"""The one validation of untrusted telemetry fields: ids, metric names, numbers, timestamps.

Every door calls these (Event Hub events, IoT Hub routing blobs, raw-batch blobs read back; CSV
files and API bodies can too), so a field is accepted or refused the same way everywhere, and
every refusal is a coded :class:`~shared.errors.InputError` (``TelemetryError`` unless the door
passes its own class) that says what to fix. Nothing here lets a Python exception other than
that error escape: an integer of 400 digits, a list where a name belongs or a timestamp that
overflows the calendar are all *input* problems, not crashes.

The rules:

* **Names** (device ids, metric names) become blob path segments and hand-built JSON: 1-128
  characters of ``A-Z a-z 0-9 _ . : @ -``, starting with a letter or digit, matched over the
  *whole* text (``re.fullmatch``: ``$`` would let a trailing newline through). Code
  ``InvalidName``.
* **Values** are JSON numbers or numeric text, finite, and within ``±READING_LIMIT`` (10^15).
  Meter registers (energy in Wh over decades, pulse counts) stay far below it, and detection
  arithmetic on values up to 10^15 (squares, sums over days of points) stays finite in float64;
  ±1e308 would overflow to infinity and poison a detector state. Codes ``InvalidValue`` (not a
  number, NaN, infinite) and ``ValueOutOfRange`` (beyond the range, integers of 309+ digits).
* **Timestamps**: ISO 8601 text, ``12/16/2006 17:24`` or epoch seconds/milliseconds, between
  1970 and 2200, returned as canonical text (:func:`shared.timefmt.canonical_timestamp`). Code
  ``InvalidTimestamp``.
"""

from __future__ import annotations

import math
import re
from typing import TypeGuard

from shared.errors import InputError, TelemetryError
from shared.timefmt import canonical_timestamp

#: Largest accepted absolute reading (see the module docstring for why 10^15).
READING_LIMIT = 1e15

#: What a device id or metric name may be (always matched with ``fullmatch``).
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}")

#: Names already accepted (device ids are many but finite): the hot path is one set lookup.
#: Read-only outside this module; only :func:`checked_name` adds to it.
KNOWN_NAMES: set[str] = set()
_KNOWN_NAMES_LIMIT = 200_000


def checked_name(raw: object, what: str, error: type[InputError] = TelemetryError) -> str:
    """Return ``raw`` if it is a valid device id or metric name.

    Args:
        raw: The untrusted field (any JSON value, bytes from a property).
        what: The field's name for the message (``deviceId``, ``metric``).
        error: The error class of the calling door.

    Raises:
        InputError: ``InvalidName`` (as ``error``).
    """
    if type(raw) is str and raw in KNOWN_NAMES:
        return raw
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if not isinstance(raw, str):
        raise error(
            f"Invalid {what}: expected text, got {type(raw).__name__} {_excerpt(raw)}.",
            "InvalidName",
        )
    if NAME_PATTERN.fullmatch(raw) is None:
        raise error(
            f"Invalid {what} {raw[:80]!r}: use 1-128 letters, digits and _.:@- "
            "(it becomes part of a blob name).",
            "InvalidName",
        )
    if len(KNOWN_NAMES) < _KNOWN_NAMES_LIMIT:
        KNOWN_NAMES.add(raw)
    return raw


def is_known_name(raw: object) -> TypeGuard[str]:
    """Whether ``raw`` is a name already accepted (the ingest's one-lookup fast path)."""
    return type(raw) is str and raw in KNOWN_NAMES


def checked_value(raw: object, what: str, error: type[InputError] = TelemetryError) -> float:
    """Return a reading as a finite float within ``±READING_LIMIT``.

    Args:
        raw: A JSON number or numeric text (``"0.418"``).
        what: The field's name for the message.
        error: The error class of the calling door.

    Raises:
        InputError: ``InvalidValue`` (not a number, NaN, infinite, too many digits) or
            ``ValueOutOfRange`` (beyond ``±READING_LIMIT``), as ``error``.
    """
    kind = type(raw)
    if kind is float:
        value: float = raw  # type: ignore[assignment]
    elif kind is int or kind is str:
        try:
            value = float(raw)  # type: ignore[arg-type]
        except OverflowError as exc:  # an integer beyond any float
            raise error(
                f"Field {what!r} is {_excerpt(raw)}: readings must lie within ±{READING_LIMIT:g}.",
                "ValueOutOfRange",
            ) from exc
        except ValueError as exc:
            raise error(
                f"Field {what!r} must be a number, got {_excerpt(raw)}.", "InvalidValue"
            ) from exc
        if math.isinf(value) and "inf" not in str(raw).lower():  # "9" * 400 as text
            raise error(
                f"Field {what!r} is {_excerpt(raw)}: readings must lie within ±{READING_LIMIT:g}.",
                "ValueOutOfRange",
            )
    else:
        raise error(
            f"Field {what!r} must be a number, got {type(raw).__name__} {_excerpt(raw)}.",
            "InvalidValue",
        )
    if -READING_LIMIT <= value <= READING_LIMIT:
        return value
    if math.isnan(value) or math.isinf(value):
        raise error(
            f"Field {what!r} is {value}: NaN and infinite readings are not accepted.",
            "InvalidValue",
        )
    raise error(
        f"Field {what!r} is {value:g}: readings must lie within ±{READING_LIMIT:g} "
        "(check the meter's scaling).",
        "ValueOutOfRange",
    )


def looks_numeric(raw: str) -> bool:
    """Whether text is a number (``"1.5"``, ``"1e3"``), so a field is a metric, not metadata."""
    if raw in _NOT_NUMERIC:  # firmware versions and the like repeat in every message
        return False
    try:
        float(raw)
    except ValueError:
        if len(_NOT_NUMERIC) < _KNOWN_NAMES_LIMIT:
            _NOT_NUMERIC.add(raw)
        return False
    return True


_NOT_NUMERIC: set[str] = set()


def checked_timestamp(raw: object, error: type[InputError] = TelemetryError) -> str:
    """Return a telemetry timestamp as canonical text ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``.

    Args:
        raw: ISO 8601 text, ``12/16/2006 17:24``, or epoch seconds or milliseconds.
        error: The error class of the calling door.

    Raises:
        InputError: ``InvalidTimestamp`` (as ``error``).
    """
    if type(raw) is str and 20 <= len(raw) <= 27 and raw[-1] == "Z" and raw[:17] in _MINUTES:
        # The hot path: a minute already validated (meters share minutes), whole seconds or a
        # fraction of 1-6 ASCII digits; the same text canonical_timestamp returns (a property
        # test checks it).
        second = raw[17:19]
        if second.isascii() and second.isdigit() and second < "60":
            if len(raw) == 20:
                return raw
            fraction = raw[20:-1]
            if raw[19] == "." and fraction.isascii() and fraction.isdigit():
                fraction = fraction.ljust(6, "0")
                return raw[:19] + ("Z" if fraction == "000000" else f".{fraction}Z")
    try:
        canonical = canonical_timestamp(raw)
    except TelemetryError as exc:
        if error is TelemetryError:
            raise
        raise error(exc.message, exc.code) from exc
    except (ValueError, OverflowError, TypeError, OSError) as exc:
        # An integer too large for a float, a year past 9999 in a parser: input, not a crash.
        raise error(
            f"Unusable timestamp {_excerpt(raw)}: use ISO 8601 such as 2006-12-16T17:24:00Z.",
            "InvalidTimestamp",
        ) from exc
    if len(_MINUTES) < _MINUTES_LIMIT:
        _MINUTES.add(canonical[:17])
    return canonical


#: ``YYYY-MM-DDTHH:MM:`` prefixes of canonical timestamps already seen (a few days of minutes).
_MINUTES: set[str] = set()
_MINUTES_LIMIT = 20_000


def _excerpt(raw: object) -> str:
    # int.__repr__ of a huge int raises ValueError (the 4300-digit limit): never repr() blindly.
    if isinstance(raw, int) and not isinstance(raw, bool) and raw.bit_length() > 64:
        return f"an integer of about {int(raw.bit_length() * 0.30103)} digits"
    text = repr(raw)
    return text if len(text) <= 80 else text[:77] + "..."
