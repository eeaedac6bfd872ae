"""Compact, exact encodings of the streaming detector's saved arrays.

Readings with a few decimals (as meters send them) are stored as scaled integers, and what the
detector keeps on a grid as its grid codes, Rice-coded in base85 (:mod:`.intcodec`); other
floats as base64 of zlib-compressed float64 bytes. Every encoding is exact, so a restored
detector continues bit-identically.

State versions: 5 writes the Rice codes (``z...`` kinds); 4 wrote the same arrays as zlib of
byte planes in base64 and is still read, exactly (:data:`READABLE_VERSIONS`).
"""

from __future__ import annotations

import base64
import math
import zlib
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from shared.engine.intcodec import b85decode, b85encode, decode_ints, encode_ints
from shared.engine.likelihood import COLLECTIVE_CODES, SHORT, TAIL_WINDOW, Episode, TailWindow
from shared.engine.univariate import FlatlineRule
from shared.errors import EngineError
from shared.jsontypes import JSONObject

if TYPE_CHECKING:
    from shared.engine.streaming import StreamDetector

__all__ = [
    "ERROR_STEP",
    "READABLE_VERSIONS",
    "STATE_VERSION",
    "coarse",
    "detector_state",
    "finite_or_none",
    "on_grid",
    "pack",
    "pack_readings",
    "restore_state",
    "season_step",
    "single",
    "unpack",
]

#: Version of the saved-state layout.
STATE_VERSION = 5
#: Layouts :func:`restore_state` reads (4: the same fields, zlib byte planes in base64).
READABLE_VERSIONS = (4, 5)

#: Decimals up to which readings are stored as scaled integers, and the code of a gap.
_MAX_DECIMALS = 6
_MISSING_CODE = -(2**62)


def _widen(width: int, data: bytes) -> np.ndarray:
    """Integers from differences stored by byte plane (state version 4; read only)."""
    planes = np.frombuffer(zlib.decompress(data), dtype=np.uint8).reshape(width, -1)
    deltas = planes.T.copy().view(f"<i{width}").ravel()
    return np.cumsum(deltas.astype(np.int64))


def pack(values: ArrayLike, dtype: str) -> str:
    """Floats as ``"<dtype>:"`` + base64 of zlib-compressed little-endian bytes (exact)."""
    raw = np.asarray(values, dtype=dtype).tobytes()
    return dtype + ":" + base64.b64encode(zlib.compress(raw, 6)).decode("ascii")


def pack_readings(values: ArrayLike) -> str:
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
                # A gap repeats the reading before it in the integer stream (no jump to
                # compress), and is marked in a bit mask.
                index = np.where(finite, np.arange(x.size), 0)
                codes = codes[np.maximum.accumulate(index)]
                text = f"zdec{decimals}:" + encode_ints(codes)
                if not finite.all():
                    text += "," + b85encode(zlib.compress(np.packbits(~finite).tobytes(), 9))
                return text
    return pack(x, "<f8")


def unpack(packed: object) -> list[float]:
    """Inverse of :func:`pack` and :func:`pack_readings`.

    A JSON list (state version 1, ``null`` = missing) is read too.
    """
    if isinstance(packed, list):
        return [math.nan if v is None else float(v) for v in packed]
    if not isinstance(packed, str) or ":" not in packed:
        raise EngineError(f"expected a packed array, got {type(packed).__name__}")
    kind, _, data = packed.partition(":")
    if kind.startswith("z"):
        return _unpack_rice(kind[1:], data)
    if kind.startswith("dec") and "w" in kind:
        decimals, _, width = kind[3:].partition("w")
        packed_codes, _, packed_gaps = data.partition(",")
        ints = _widen(int(width), base64.b64decode(packed_codes.encode("ascii"), validate=True))
        x = ints / 10.0 ** int(decimals)
        gaps = zlib.decompress(base64.b64decode(packed_gaps.encode("ascii"), validate=True))
        x[np.unpackbits(np.frombuffer(gaps, dtype=np.uint8), count=x.size).astype(bool)] = math.nan
        return [float(v) for v in x.tolist()]
    if kind.startswith("grid"):
        step = math.ldexp(1.0, int(kind[4:].partition("w")[0]))
        ints = _widen(
            int(kind.partition("w")[2]), base64.b64decode(data.encode("ascii"), validate=True)
        )
        return [float(v) for v in (ints.astype(np.float64) * step).tolist()]
    raw = zlib.decompress(base64.b64decode(data.encode("ascii"), validate=True))
    if kind.startswith("dec"):
        codes = np.cumsum(np.frombuffer(raw, dtype="<i8"))
        x = codes / 10.0 ** int(kind[3:])
        x[codes == _MISSING_CODE] = math.nan
        return [float(v) for v in x.tolist()]
    if kind.startswith("log"):
        codes = np.cumsum(np.frombuffer(raw, dtype="<i4").astype(np.int64))
        steps = int(kind[3:])
        x = np.where(codes == _ZERO_CODE, 0.0, np.exp2(np.maximum(codes, -32000) / steps))
        return [float(v) for v in x.tolist()]
    if kind.startswith("u8/"):
        per_unit = int(kind[3:])
        return [float(v) for v in (np.frombuffer(raw, dtype="u1") / per_unit).tolist()]
    if kind not in ("<f8", "<f4", "<f2"):
        raise EngineError(f"unknown array encoding {kind!r}")
    return [float(v) for v in np.frombuffer(raw, dtype=kind).tolist()]


def _unpack_rice(kind: str, data: str) -> list[float]:
    """The ``z`` kinds of state version 5 (Rice-coded integers, :mod:`.intcodec`)."""
    if kind.startswith("dec"):
        packed_codes, _, packed_gaps = data.partition(",")
        x = decode_ints(packed_codes) / 10.0 ** int(kind[3:])
        if packed_gaps:
            gaps = np.frombuffer(zlib.decompress(b85decode(packed_gaps)), dtype=np.uint8)
            x[np.unpackbits(gaps, count=x.size).astype(bool)] = math.nan
        return [float(v) for v in x.tolist()]
    ints = decode_ints(data)
    if kind.startswith("grid"):
        step = math.ldexp(1.0, int(kind[4:]))
        return [float(v) for v in (ints.astype(np.float64) * step).tolist()]
    if kind.startswith("log"):
        steps = int(kind[3:])
        x = np.where(ints == _ZERO_CODE, 0.0, np.exp2(np.maximum(ints, -32000) / steps))
        return [float(v) for v in x.tolist()]
    if kind.startswith("u8/"):
        return [float(v) for v in (ints / int(kind[3:])).tolist()]
    raise EngineError(f"unknown array encoding z{kind!r}")


def single(values: np.ndarray) -> list[float]:
    """Per-phase scales rounded to float32: ample for a margin, and half the state."""
    return [float(v) for v in np.asarray(values, dtype=np.float32).tolist()]


#: Steps per octave of the per-phase scales' logarithmic grid (~2 % apart), the code of 0.
SCALE_STEPS = 32
_ZERO_CODE = -(2**15)
#: Standardised errors are kept on a grid of this step (1/32 of a noise scale).
ERROR_STEP = 1 / 32
#: Season values are kept on a grid of a power of two at most this share of the noise scale.
SEASON_SHARE = 1 / 64


def coarse(values: ArrayLike) -> list[float]:
    """Per-phase scales on a logarithmic grid of :data:`SCALE_STEPS` steps an octave.

    A margin needs no more resolution than ~2 %; on the grid, each value is a small integer
    code whose differences from phase to phase compress to a fraction of a byte.
    """
    x = np.asarray(values, dtype=np.float64)
    out = np.zeros_like(x)
    positive = x > 0
    codes = np.clip(np.round(np.log2(x[positive]) * SCALE_STEPS), -32000, 32000)
    out[positive] = np.exp2(codes / SCALE_STEPS)
    return [float(v) for v in out.tolist()]


def season_step(scale: float) -> float:
    """The season's grid: the largest power of two at most :data:`SEASON_SHARE` of ``scale``."""
    if not (scale > 0.0 and math.isfinite(scale)):
        return 0.0
    return math.ldexp(1.0, math.floor(math.log2(scale * SEASON_SHARE)))


def on_grid(value: float, step: float) -> float:
    """``value`` rounded to a multiple of ``step`` (a power of two; 0 = no grid)."""
    return round(value / step) * step if step > 0.0 else value


def pack_scales(values: ArrayLike) -> str:
    """Values of :func:`coarse` as their integer codes (exact), else as float64."""
    x = np.asarray(values, dtype=np.float64)
    if x.size and np.isfinite(x).all() and (x >= 0).all():
        codes = np.full(x.shape, _ZERO_CODE, dtype=np.int64)
        positive = x > 0
        codes[positive] = np.round(np.log2(x[positive]) * SCALE_STEPS)
        decoded = np.where(positive, np.exp2(np.maximum(codes, -32000) / SCALE_STEPS), 0.0)
        if np.array_equal(decoded, x):
            return f"zlog{SCALE_STEPS}:" + encode_ints(codes)
    return pack(x, "<f8")


def pack_grid(values: ArrayLike, step: float) -> str:
    """Values on the grid of ``step`` (a power of two) as integer differences (exact)."""
    x = np.asarray(values, dtype=np.float64)
    if step > 0.0 and x.size and np.isfinite(x).all():
        ints = np.round(x / step)
        if np.array_equal(ints * step, x) and float(np.max(np.abs(ints))) < 2**52:
            return f"zgrid{math.frexp(step)[1] - 1}:" + encode_ints(ints.astype(np.int64))
    return pack(x, "<f8")


def pack_codes(values: ArrayLike, per_unit: int) -> str:
    """Non-negative values that are multiples of ``1 / per_unit``, at most 255 of them."""
    codes = np.round(np.asarray(values, dtype=np.float64) * per_unit).astype("u1")
    return f"zu8/{per_unit}:" + encode_ints(codes.astype(np.int64))


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def detector_state(d: StreamDetector) -> JSONObject:
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
        "season": pack_grid(d._season, d._season_step),
        "season_step": d._season_step,
        "scale_up": pack_scales(d._scale_up),
        "scale_down": pack_scales(d._scale_down),
        "busy_up": pack_scales(d._busy_up),
        "busy_down": pack_scales(d._busy_down),
        "gain": d._gain,
        "k_up": d._k_up,
        "k_down": d._k_down,
        "flat_value": d._flat_value,
        "flat_length": d._flat_length,
        "flat_threshold": d._flat.threshold,
        "flat_resting": d._flat.resting,
        "errors": pack_grid(d._errors, ERROR_STEP),
        "outside": d._outside,
        "last_level": d._last_level,
        "alarms": d._alarms,
        "hurried": d._hurried,
        "hold": d._hold,
        "floor": d._floor,
        "before": d._before,
        "since_shift": d._since_shift,
        "early": d._early,
        "short": list(d._short),
        "collective": pack_codes(d._collective, COLLECTIVE_CODES),
        "episode": d._episode.peak,
    }


def restore_state(d: StreamDetector, state: Mapping[str, object]) -> None:
    """Load a state document of a :data:`READABLE_VERSIONS` layout into a new detector ``d``.

    Raises:
        KeyError, EngineError (a ValueError), zlib.error: When the document is malformed.
    """
    d._history = deque(unpack(state["history"]), maxlen=_int(state["history_cap"]))
    d._count = _int(state["count"])
    d._since_refit = _int(state["since_refit"])
    d._ready = bool(state["ready"])
    d._period = _int(state["period"])
    d._target = _int(state["target_period"])
    last_detected = state["last_detected"]
    d._last_detected = None if last_detected is None else _int(last_detected)
    d._detected_at = _int(state["detected_at"])
    d._recent = deque(
        (_float(v) for v in _list(state["recent"])), maxlen=_int(state["recent_window"])
    )
    d._slope = _float(state["slope"])
    d._season = unpack(state["season"])
    d._season_step = _float(state["season_step"])
    d._scale_up = unpack(state["scale_up"])
    d._scale_down = unpack(state["scale_down"])
    d._busy_up = unpack(state["busy_up"])
    d._busy_down = unpack(state["busy_down"])
    d._gain = _float(state["gain"])
    d._k_up = _float(state["k_up"])
    d._k_down = _float(state["k_down"])
    flat_value = state["flat_value"]
    d._flat_value = None if flat_value is None else _float(flat_value)
    d._flat_length = _int(state["flat_length"])
    resting = state["flat_resting"]
    d._flat = FlatlineRule(
        _int(state["flat_threshold"]), None if resting is None else _float(resting)
    )
    d._errors = deque(unpack(state["errors"]), maxlen=TAIL_WINDOW)
    d._outside = _int(state["outside"])
    d._last_level = _float(state["last_level"])
    d._alarms = _int(state["alarms"])
    d._hurried = bool(state["hurried"])
    d._hold = _float(state["hold"])
    floor = state["floor"]
    d._floor = None if floor is None else _float(floor)
    d._before = _float(state["before"])
    d._since_shift = _int(state["since_shift"])
    d._early = bool(state.get("early", False))
    d._short = deque((_float(v) for v in _list(state["short"])), maxlen=SHORT)
    d._collective = deque(unpack(state["collective"]), maxlen=TAIL_WINDOW)
    d._episode = Episode(_float(state["episode"]))
    known = [v for v in d._history if math.isfinite(v)]
    d._known = len(known)
    d._values = deque(known[-TAIL_WINDOW:], maxlen=TAIL_WINDOW)
    d._value_tail = TailWindow(d._values)
    d._error_tail = TailWindow(d._errors)
    d._collective_tail = TailWindow(d._collective)


def _int(value: object) -> int:
    if isinstance(value, int | float | str):
        return int(value)
    raise EngineError(f"expected a number, got {type(value).__name__}")


def _float(value: object) -> float:
    if isinstance(value, int | float | str):
        return float(value)
    raise EngineError(f"expected a number, got {type(value).__name__}")


def _list(value: object) -> list[object]:
    if isinstance(value, list):
        return value
    raise EngineError(f"expected an array, got {type(value).__name__}")
