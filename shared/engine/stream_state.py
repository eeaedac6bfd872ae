"""Compact, exact encodings of the streaming detector's saved arrays.

Arrays are stored as base64 of zlib-compressed little-endian numbers: readings with a few
decimals (as meters send them) as scaled-integer differences, other floats at the precision
the detector itself keeps them, so a restored detector continues bit-identically.
"""

from __future__ import annotations

import base64
import math
import zlib
from typing import Any

import numpy as np

__all__ = ["finite_or_none", "pack", "pack_readings", "single", "unpack"]

#: Decimals up to which readings are stored as scaled integers, and the code of a gap.
_MAX_DECIMALS = 6
_MISSING_CODE = -(2**62)


def pack(values: Any, dtype: str) -> str:
    """Floats as ``"<dtype>:"`` + base64 of zlib-compressed little-endian bytes (exact)."""
    raw = np.asarray(values, dtype=dtype).tobytes()
    return dtype + ":" + base64.b64encode(zlib.compress(raw, 6)).decode("ascii")


def pack_readings(values: Any) -> str:
    """Readings, exactly: as scaled integers when they are decimals of a few digits.

    Meters report a fixed number of decimals (``0.418``, ``241.04``); such readings are stored
    as the differences of ``round(x * 10**d)``, which compress to a fraction of their float
    bytes. The encoding is used only when decoding gives back every reading bit for bit;
    otherwise the floats are stored as they are.
    """
    x = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(x)
    if finite.any() and float(np.max(np.abs(x[finite]))) < 1e12:
        for decimals in range(_MAX_DECIMALS + 1):
            scale = 10.0**decimals
            ints = np.where(finite, np.round(x * scale), 0.0)
            decoded = ints / scale
            if np.array_equal(decoded[finite], x[finite]):
                codes = ints.astype(np.int64)
                codes[~finite] = _MISSING_CODE
                deltas = np.diff(codes, prepend=np.int64(0))
                packed = base64.b64encode(zlib.compress(deltas.astype("<i8").tobytes(), 6))
                return f"dec{decimals}:" + packed.decode("ascii")
    return pack(x, "<f8")


def unpack(packed: Any) -> list[float]:
    """Inverse of :func:`pack` and :func:`pack_readings`.

    A JSON list (state version 1, ``null`` = missing) is read too.
    """
    if isinstance(packed, list):
        return [math.nan if v is None else float(v) for v in packed]
    if not isinstance(packed, str) or ":" not in packed:
        raise TypeError(f"expected a packed array, got {type(packed).__name__}")
    kind, _, data = packed.partition(":")
    raw = zlib.decompress(base64.b64decode(data.encode("ascii"), validate=True))
    if kind.startswith("dec"):
        codes = np.cumsum(np.frombuffer(raw, dtype="<i8"))
        x = codes / 10.0 ** int(kind[3:])
        x[codes == _MISSING_CODE] = math.nan
        return [float(v) for v in x.tolist()]
    if kind not in ("<f8", "<f4", "<f2"):
        raise ValueError(f"unknown array encoding {kind!r}")
    return [float(v) for v in np.frombuffer(raw, dtype=kind).tolist()]


def single(values: np.ndarray) -> list[float]:
    """Per-phase scales rounded to float32: ample for a margin, and half the state."""
    return [float(v) for v in np.asarray(values, dtype=np.float32).tolist()]


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
