"""The stream state's encodings: Rice codes in base85, exact; version 4 states still restore."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared.engine.intcodec import b85decode, b85encode, decode_ints, encode_ints
from shared.engine.stream_state import STATE_VERSION, pack_readings, unpack
from shared.engine.streaming import StreamConfig, StreamDetector

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 7, 8, 31, 1000])
def test_base85_is_the_standard_alphabet_and_round_trips(size: int) -> None:
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    text = b85encode(data)
    assert text == base64.b85encode(data).decode("ascii")
    assert b85decode(text) == data
    assert not set(text) & set('"\\,.:')  # JSON-safe, and free of the field separators


def _arrays() -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    return [
        np.array([], dtype=np.int64),
        np.array([0]),
        np.zeros(1440, dtype=np.int64),
        np.full(100, -(2**15)),
        rng.integers(-100, 100, 5760),
        np.cumsum(rng.integers(-3, 4, 2000)),
        rng.integers(0, 3, 300),
        np.array([2**62, -(2**62), 0, 5]),
        np.array([-(2**63), 2**63 - 1, 0]),
        rng.integers(-(2**62), 2**62, 50),
    ]


@pytest.mark.parametrize("index", range(len(_arrays())))
def test_rice_code_is_exact(index: int) -> None:
    ints = _arrays()[index]
    back = decode_ints(encode_ints(ints))
    assert back.dtype == np.int64
    assert np.array_equal(back, ints)


def test_rice_code_is_near_the_entropy_of_noisy_readings() -> None:
    # Readings of three decimals with noise of 0.05: about 8.1 bits of entropy per difference.
    rng = np.random.default_rng(5)
    ints = np.round(1500 + 50 * rng.standard_normal(5760)).astype(np.int64)
    text = encode_ints(ints)
    assert len(b85decode(text.split(".", 2)[2])) * 8 / ints.size < 8.5
    # A constant array costs almost nothing.
    assert len(encode_ints(np.zeros(1440, dtype=np.int64))) < 40


@pytest.mark.parametrize(
    "garbled",
    ["", "d5", "x5.10.abc", "d5.10.", "d5.10.0000", "d99.1.00000", 'd5.10.a"bc', "D3.4.0"],
)
def test_garbled_rice_code_raises_value_error(garbled: str) -> None:
    with pytest.raises(ValueError):
        decode_ints(garbled)


def test_readings_with_gaps_round_trip_bit_for_bit() -> None:
    rng = np.random.default_rng(2)
    x = np.round(230 + rng.normal(0, 0.3, 3000), 1)
    x[[0, 17, 18, 2999]] = np.nan
    packed = pack_readings(x)
    assert packed.startswith("zdec1:")
    back = np.array(unpack(packed))
    assert np.array_equal(np.isnan(back), np.isnan(x))
    assert back[~np.isnan(x)].tobytes() == x[~np.isnan(x)].tobytes()
    # Not decimals: float64 bytes, still exact.
    noisy = rng.normal(0, 1, 50)
    assert np.array(unpack(pack_readings(noisy))).tobytes() == noisy.tobytes()


def _v4_state() -> dict[str, Any]:
    # Written by the version-4 encoder (zlib byte planes in base64): 900 points, period 96, two
    # decimals, gaps at 500 and 777 inside the kept history, a spike at 650.
    state: dict[str, Any] = json.loads((DATA / "stream_state_v4.json").read_text("utf-8"))
    return state


def _series_after_fixture() -> np.ndarray:
    rng = np.random.default_rng(40)
    t = np.arange(900, 1200)
    x = np.round(20 + 5 * np.sin(2 * np.pi * t / 96) + rng.normal(0, 0.4, t.size), 2)
    x[[50, 120]] = [35.0, np.nan]
    return x


def test_version_4_state_restores_and_resaves_exactly() -> None:
    old = _v4_state()
    assert old["version"] == 4
    from_v4 = StreamDetector.from_state(old)
    resaved = json.loads(json.dumps(from_v4.to_state(), allow_nan=False))
    assert resaved["version"] == STATE_VERSION == 5
    for field in ("history", "season", "errors", "scale_up", "scale_down", "collective"):
        old_field = old[field]
        assert isinstance(old_field, str) and not old_field.startswith("z")
        assert resaved[field].startswith("z")
        a, b = np.array(unpack(old[field])), np.array(unpack(resaved[field]))
        assert a.tobytes() == b.tobytes() or (
            np.array_equal(np.isnan(a), np.isnan(b))
            and a[~np.isnan(a)].tobytes() == b[~np.isnan(b)].tobytes()
        ), field
    from_v5 = StreamDetector.from_state(resaved)
    x = _series_after_fixture()
    first, second = from_v4.update_many(x), from_v5.update_many(x)
    for name in ("expected_values", "upper_margins", "lower_margins", "severity"):
        assert getattr(first, name).tobytes() == getattr(second, name).tobytes(), name
    assert np.array_equal(first.is_anomaly, second.is_anomaly)
    assert from_v4.to_state() == from_v5.to_state()


def test_daily_state_at_one_reading_a_minute_is_small() -> None:
    rng = np.random.default_rng(3)
    minutes = np.arange(4 * 1440)
    x = np.round(1.5 + 0.8 * np.sin(2 * np.pi * minutes / 1440) + rng.normal(0, 0.05, 5760), 3)
    detector = StreamDetector(StreamConfig())
    detector.update_many(x)
    text = json.dumps(detector.to_state(), separators=(",", ":"))
    assert detector.period == 1440
    assert len(text) < 15 * 1024
    restored = StreamDetector.from_state(json.loads(text))
    assert restored.to_state() == detector.to_state()
    assert math.isfinite(restored.update(1.5).expected_value)
