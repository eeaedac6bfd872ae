"""Exact, compact text for integer arrays: Rice codes in base85 (the stream state's arrays).

A saved detector is mostly integer arrays (readings of a few decimals as scaled integers, values
on a grid as multiples of its step). zlib codes their noisy low bytes poorly (about 1.2 bits a
number above their entropy); a Rice code of the zig-zagged numbers (or of their differences,
whichever is shorter) comes within about 0.3 bits, and both of its parts encode and decode as a
few numpy operations, so no Python loop runs per number:

* the ``k`` low bits of every number, packed back to back (fixed width);
* the high part ``z >> k`` of every number in unary (that many 0 bits, then a 1).

The text is ``{d|r}{k}.{count}.{base85}``: ``d`` when differences are coded (the first is from
0), ``r`` for the numbers themselves; ``D`` and ``R`` when the code is zlib-compressed as well
(long runs, which Rice alone codes at a bit a number, then cost almost nothing).

Base85 is the alphabet of :func:`base64.b85encode` (no quote, backslash, comma, dot or colon:
safe inside JSON strings and as a field separator), computed with numpy (the standard
library's is a Python loop): 25 % above the bytes where base64 costs 33 %.
"""

from __future__ import annotations

import zlib

import numpy as np

from shared.errors import EngineError

__all__ = ["b85decode", "b85encode", "decode_ints", "encode_ints"]

_ALPHABET = np.frombuffer(
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~",
    dtype=np.uint8,
)
_VALUE = np.full(256, 255, dtype=np.uint8)
_VALUE[_ALPHABET] = np.arange(85, dtype=np.uint8)
_POWERS = np.array([85**4, 85**3, 85**2, 85, 1], dtype=np.uint64)
#: Largest quotient total accepted when decoding (a corrupt header must not allocate gigabytes).
_MAX_BITS = 1 << 31


def b85encode(data: bytes) -> str:
    """Base85 of ``data``, the same text as ``base64.b85encode(data).decode()``."""
    pad = -len(data) % 4
    words = np.frombuffer(data + b"\0" * pad, dtype=">u4").astype(np.uint64)
    digits = (words[:, None] // _POWERS) % np.uint64(85)
    text = _ALPHABET[digits.astype(np.intp)].tobytes()
    return text[: len(text) - pad].decode("ascii")


def b85decode(text: str) -> bytes:
    """Inverse of :func:`b85encode` (``base64.b85decode``).

    Raises:
        ValueError: A character outside the alphabet, or a group beyond 32 bits.
    """
    raw = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    pad = -raw.size % 5
    values = _VALUE[np.concatenate([raw, np.full(pad, ord("~"), dtype=np.uint8)])]
    if (values == 255).any():
        raise EngineError("not base85 text")
    words = values.reshape(-1, 5).astype(np.uint64) @ _POWERS
    if (words >> np.uint64(32)).any():
        raise EngineError("base85 group out of range")
    data: bytes = words.astype(">u4").tobytes()
    return data[: len(data) - pad]


def _zigzag(ints: np.ndarray) -> np.ndarray:
    signed = ints.astype(np.int64)
    return ((signed << 1) ^ (signed >> 63)).view(np.uint64)


def _unzigzag(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = (z >> np.uint64(1)).view(np.int64) ^ -(z & np.uint64(1)).view(np.int64)
    return out


def _best_k(z: np.ndarray) -> tuple[int, float]:
    """The ``k`` of the shortest Rice code of non-negative ``z``, and its length in bits.

    The length is convex in ``k`` with its minimum near ``log2(mean)``: start there and walk.
    """

    def bits(k: int) -> float:
        # In floats: a sum of uint64 would wrap for huge numbers (and pick a tiny k).
        return z.size * (k + 1) + float((z >> np.uint64(k)).astype(np.float64).sum())

    mean = float(z.astype(np.float64).mean()) if z.size else 0.0
    k = min(63, max(0, int(np.log2(mean)) if mean >= 1.0 else 0))
    here = bits(k)
    for step in (1, -1):
        while 0 <= k + step <= 63:
            there = bits(k + step)
            if there >= here:
                break
            k, here = k + step, there
    return k, here


def _rice(z: np.ndarray, k: int) -> bytes:
    """The Rice code of non-negative ``z`` with parameter ``k``: low bits, then unary."""
    shifts = np.arange(k - 1, -1, -1, dtype=np.uint64)
    low = ((z[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
    high = (z >> np.uint64(k)).astype(np.int64)
    unary = np.zeros(z.size + int(high.sum()), dtype=np.uint8)
    unary[np.cumsum(high + 1) - 1] = 1
    return np.packbits(low.ravel()).tobytes() + np.packbits(unary).tobytes()


def encode_ints(ints: np.ndarray) -> str:
    """An int64 array as Rice-coded text (differences or values, whichever is shorter)."""
    values = np.asarray(ints, dtype=np.int64)
    deltas = _zigzag(np.diff(values, prepend=np.int64(0)))
    plain = _zigzag(values)
    k_deltas, bits_deltas = _best_k(deltas)
    k_plain, bits_plain = _best_k(plain)
    if bits_deltas <= bits_plain:
        mode, k, z = "d", k_deltas, deltas
    else:
        mode, k, z = "r", k_plain, plain
    data = _rice(z, k)
    # Long runs (a constant array, one jump then zeros) cost a bit a number in Rice; zlib takes
    # them to almost nothing. Upper case marks the zlib-compressed code.
    packed = zlib.compress(data, 6)
    if len(packed) < len(data):
        return f"{mode.upper()}{k}.{values.size}.{b85encode(packed)}"
    return f"{mode}{k}.{values.size}.{b85encode(data)}"


def decode_ints(text: str) -> np.ndarray:
    """Inverse of :func:`encode_ints` (int64).

    Raises:
        ValueError: The text is not an encoding of :func:`encode_ints`.
    """
    head, count_text, payload = text.split(".", 2)
    mode, k, n = head[:1], int(head[1:]), int(count_text)
    if mode not in ("d", "r", "D", "R") or not 0 <= k < 64 or n < 0:
        raise EngineError(f"not a Rice-coded array: {text[:20]!r}")
    raw = b85decode(payload)
    if mode.isupper():
        inflater = zlib.decompressobj()
        raw = inflater.decompress(raw, _MAX_BITS // 8)
        if inflater.unconsumed_tail or not inflater.eof:
            raise EngineError("Rice-coded array: bad or oversized zlib stream")
        mode = mode.lower()
    data = np.frombuffer(raw, dtype=np.uint8)
    low_bytes = (n * k + 7) // 8
    if data.size < low_bytes:
        raise EngineError("Rice-coded array truncated")
    low = np.unpackbits(data[:low_bytes], count=n * k).reshape(n, k).astype(np.uint64)
    unary = np.unpackbits(data[low_bytes:])
    if unary.size > _MAX_BITS:
        raise EngineError("Rice-coded array too long")
    ends = np.flatnonzero(unary)
    if ends.size < n:
        raise EngineError("Rice-coded array truncated")
    high = np.diff(ends[:n], prepend=-1).astype(np.uint64) - np.uint64(1)
    z = (high << np.uint64(k)) | (low @ (np.uint64(1) << np.arange(k - 1, -1, -1, dtype=np.uint64)))
    values = _unzigzag(z)
    return np.cumsum(values) if mode == "d" else values
