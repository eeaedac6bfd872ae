"""Compact, exact encodings of the streaming detector's saved arrays.

Arrays are stored as base64 of zlib-compressed little-endian numbers: readings with a few
decimals (as meters send them) as scaled-integer differences, other floats at the precision
the detector itself keeps them, so a restored detector continues bit-identically.
"""

from __future__ import annotations

import base64
import math
import zlib
from collections import deque
from dataclasses import asdict
from typing import Any

import numpy as np

from shared.engine.likelihood import SHORT, TAIL_WINDOW, Episode, TailWindow
from shared.engine.univariate import FlatlineRule

__all__ = [
    "STATE_VERSION",
    "detector_state",
    "finite_or_none",
    "pack",
    "pack_readings",
    "restore_state",
    "single",
    "unpack",
]

#: Version of the saved-state layout.
STATE_VERSION = 3

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


def detector_state(d: Any) -> dict[str, Any]:
    """The state document of a :class:`~shared.engine.streaming.StreamDetector`."""
    return {
        "version": STATE_VERSION,
        "config": asdict(d._config),
        "count": d._count,
        "since_refit": d._since_refit,
        "ready": d._ready,
        "period": d._period,
        "target_period": d._target,
        "last_detected": d._last_detected,
        "detected_at": d._detected_at,
        "history_cap": d._history.maxlen,
        "history": pack_readings(d._history),
        "recent": list(d._recent),
        "recent_window": d._recent.maxlen,
        "slope": d._slope,
        "season": pack(d._season, "<f8"),
        "scale_up": pack(d._scale_up, "<f4" if d._period else "<f8"),
        "scale_down": pack(d._scale_down, "<f4" if d._period else "<f8"),
        "busy_up": pack(d._busy_up, "<f4" if d._period else "<f8"),
        "busy_down": pack(d._busy_down, "<f4" if d._period else "<f8"),
        "gain": d._gain,
        "k_up": d._k_up,
        "k_down": d._k_down,
        "flat_value": d._flat_value,
        "flat_length": d._flat_length,
        "flat_threshold": d._flat.threshold,
        "flat_resting": d._flat.resting,
        "errors": pack(d._errors, "<f2"),
        "outside": d._outside,
        "last_level": d._last_level,
        "alarms": d._alarms,
        "hurried": d._hurried,
        "hold": d._hold,
        "floor": d._floor,
        "before": d._before,
        "since_shift": d._since_shift,
        "short": list(d._short),
        "collective": pack(d._collective, "<f2"),
        "episode": d._episode.peak,
    }


def restore_state(d: Any, state: dict[str, Any]) -> None:
    """Load a state document of :data:`STATE_VERSION` into a new detector ``d``.

    Raises:
        KeyError, TypeError, ValueError, zlib.error: When the document is malformed.
    """
    d._history = deque(unpack(state["history"]), maxlen=int(state["history_cap"]))
    d._count = int(state["count"])
    d._since_refit = int(state["since_refit"])
    d._ready = bool(state["ready"])
    d._period = int(state["period"])
    d._target = int(state["target_period"])
    last_detected = state["last_detected"]
    d._last_detected = None if last_detected is None else int(last_detected)
    d._detected_at = int(state["detected_at"])
    d._recent = deque((float(v) for v in state["recent"]), maxlen=int(state["recent_window"]))
    d._slope = float(state["slope"])
    d._season = unpack(state["season"])
    d._scale_up = unpack(state["scale_up"])
    d._scale_down = unpack(state["scale_down"])
    d._busy_up = unpack(state["busy_up"])
    d._busy_down = unpack(state["busy_down"])
    d._gain = float(state["gain"])
    d._k_up = float(state["k_up"])
    d._k_down = float(state["k_down"])
    flat_value = state["flat_value"]
    d._flat_value = None if flat_value is None else float(flat_value)
    d._flat_length = int(state["flat_length"])
    resting = state["flat_resting"]
    d._flat = FlatlineRule(
        int(state["flat_threshold"]), None if resting is None else float(resting)
    )
    d._errors = deque(unpack(state["errors"]), maxlen=TAIL_WINDOW)
    d._outside = int(state["outside"])
    d._last_level = float(state["last_level"])
    d._alarms = int(state["alarms"])
    d._hurried = bool(state["hurried"])
    d._hold = float(state["hold"])
    floor = state["floor"]
    d._floor = None if floor is None else float(floor)
    d._before = float(state["before"])
    d._since_shift = int(state["since_shift"])
    d._short = deque((float(v) for v in state["short"]), maxlen=SHORT)
    d._collective = deque(unpack(state["collective"]), maxlen=TAIL_WINDOW)
    d._episode = Episode(float(state["episode"]))
    known = [v for v in d._history if math.isfinite(v)]
    d._known = len(known)
    d._values = deque(known[-TAIL_WINDOW:], maxlen=TAIL_WINDOW)
    d._value_tail = TailWindow(d._values)
    d._error_tail = TailWindow(d._errors)
    d._collective_tail = TailWindow(d._collective)
