"""The compacted day blob: rank merge (newest delivery wins, order-free), deterministic bytes."""

from __future__ import annotations

import gzip
import itertools

import numpy as np
import pytest

from shared.errors import HistoryError
from shared.history.daily import (
    DayHistory,
    RankedPoints,
    decode_day,
    encode_day,
    merge_day,
    merge_points,
)


def delivery(epochs: list[float], values: list[float], enqueued: int, seq: int) -> RankedPoints:
    return RankedPoints.of_delivery(np.array(epochs), np.array(values), enqueued, seq)


def as_tuple(points: RankedPoints) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return tuple(points.epochs.tolist()), tuple(points.values.tolist())


def test_newest_delivery_wins_whatever_the_order() -> None:
    early = delivery([0, 60, 120], [1.0, 2.0, 3.0], enqueued=1_000, seq=10)
    late = delivery([60, 180], [20.0, 4.0], enqueued=2_000, seq=5)  # later, lower sequence
    same_ms = delivery([120], [30.0], enqueued=1_000, seq=11)  # same ms, higher sequence
    results = {
        as_tuple(merge_points(list(order)))
        for order in itertools.permutations([early, late, same_ms])
    }
    assert results == {((0.0, 60.0, 120.0, 180.0), (1.0, 20.0, 30.0, 4.0))}


def test_a_full_tie_is_broken_by_value_not_by_arrival() -> None:
    a = delivery([0], [1.0], enqueued=5, seq=5)
    b = delivery([0], [9.0], enqueued=5, seq=5)
    assert as_tuple(merge_points([a, b])) == as_tuple(merge_points([b, a])) == ((0.0,), (9.0,))


def test_merging_again_changes_nothing() -> None:
    points = merge_points([delivery([180, 0, 60], [3.0, 1.0, 2.0], 7, 7)])
    again = merge_points([points, points, delivery([0], [1.0], 7, 7)])
    assert as_tuple(again) == as_tuple(points) == ((0.0, 60.0, 180.0), (1.0, 2.0, 3.0))


def test_encoding_is_deterministic_and_round_trips() -> None:
    day = merge_day(
        None,
        "m1",
        "2026-11-02",
        {
            "voltage": delivery([1793577600.0, 1793577660.5], [230.1, 229.9], 1, 2),
            "power": delivery([1793577600.0], [1.5], 1, 2),
        },
    )
    data = encode_day(day)
    assert data == encode_day(merge_day(None, "m1", "2026-11-02", dict(day.series)))
    lines = gzip.decompress(data).decode().splitlines()
    assert lines[0] == (
        '{"format":"meterwatch.history","version":1,"deviceId":"m1","day":"2026-11-02","points":3}'
    )
    assert [line[:28] for line in lines[1:]] == [
        '{"metric":"power","points":1',
        '{"metric":"voltage","points"',
    ]
    back = decode_day("x", data)
    assert back.device_id == "m1" and back.day == "2026-11-02"
    assert as_tuple(back.series["voltage"]) == ((1793577600.0, 1793577660.5), (230.1, 229.9))
    assert back.series["power"].enqueued.tolist() == [1]
    only = decode_day("x", data, frozenset({"power"}))
    assert list(only.series) == ["power"]


def test_merge_day_keeps_metrics_it_was_not_given() -> None:
    base = merge_day(None, "m1", "2026-11-02", {"power": delivery([0], [1.0], 1, 1)})
    merged = merge_day(base, "m1", "2026-11-02", {"voltage": delivery([0], [230.0], 2, 2)})
    assert sorted(merged.series) == ["power", "voltage"]
    assert merged.points == 2


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not gzip",
        gzip.compress(b"\xff\xfe"),
        gzip.compress(b"[1,2]\n"),
        gzip.compress(b'{"format":"meterwatch.history","version":9}\n'),
        gzip.compress(
            b'{"format":"meterwatch.history","version":1,"deviceId":"m","day":"d"}\n'
            b'{"metric":"p","points":2,"epochs":"AQAAAAAAAAA=","values":"AAAAAAAA8D8=",'
            b'"enqueued":"AQAAAAAAAAA=","sequences":"AQAAAAAAAAA="}\n'
        ),
        gzip.compress(
            b'{"format":"meterwatch.history","version":1,"deviceId":"m","day":"d"}\n'
            b'{"metric":"p","points":1,"epochs":"not base64!","values":"","enqueued":"",'
            b'"sequences":""}\n'
        ),
        gzip.compress(b'{"format":"meterwatch.history","version":1}\n{"metric":"p"}\n'),
    ],
)
def test_a_blob_that_is_not_history_is_a_coded_error(data: bytes) -> None:
    with pytest.raises(HistoryError) as caught:
        decode_day("series/m/2026-11-02.jsonl.gz", data)
    assert caught.value.code == "CorruptHistory"
    assert "series/m/2026-11-02.jsonl.gz" in caught.value.message


def test_empty_day_history() -> None:
    assert DayHistory("m", "2026-11-02", {}).points == 0
    assert merge_points([]).size == 0
