"""Property tests on the history doors: any bytes, any ranges, any merge order."""

from __future__ import annotations

import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import HistoryError
from shared.history.daily import RankedPoints, decode_day, encode_day, merge_day, merge_points
from shared.history.reader import epoch_of


@given(st.binary(max_size=2048))
@settings(max_examples=300, deadline=None)
def test_any_bytes_are_a_day_or_a_coded_error(data: bytes) -> None:
    try:
        decode_day("series/m/2026-11-02.jsonl.gz", data)
    except HistoryError as exc:
        assert exc.code == "CorruptHistory"


deliveries = st.lists(
    st.tuples(
        st.lists(st.integers(0, 30), min_size=1, max_size=8),  # minutes
        st.floats(-1e6, 1e6, allow_nan=False),
        st.integers(0, 5),  # enqueued
        st.integers(0, 5),  # sequence
    ),
    min_size=1,
    max_size=6,
)


@given(deliveries, st.randoms(use_true_random=False))
@settings(max_examples=200, deadline=None)
def test_merge_is_order_free_idempotent_and_round_trips(
    parts: list[tuple[list[int], float, int, int]], rng: random.Random
) -> None:
    ranked = [
        RankedPoints.of_delivery(np.array(m, dtype=float) * 60, np.full(len(m), v), e, s)
        for m, v, e, s in parts
    ]
    merged = merge_points(ranked)
    shuffled = list(ranked)
    rng.shuffle(shuffled)
    again = merge_points(shuffled + [merged])
    assert merged.epochs.tolist() == again.epochs.tolist()
    assert merged.values.tolist() == again.values.tolist()
    assert np.all(np.diff(merged.epochs) > 0)
    day = merge_day(None, "m", "1970-01-01", {"p": merged})
    back = decode_day("x", encode_day(day)).series["p"]
    assert back.epochs.tolist() == merged.epochs.tolist()
    assert back.values.tolist() == merged.values.tolist()
    assert back.enqueued.tolist() == merged.enqueued.tolist()


@given(st.one_of(st.text(max_size=40), st.integers(), st.floats(), st.booleans()))
@settings(max_examples=300, deadline=None)
def test_any_range_bound_is_a_time_or_a_coded_error(bound: object) -> None:
    try:
        value = epoch_of(bound)  # type: ignore[arg-type]
    except HistoryError as exc:
        assert exc.code == "InvalidHistoryRange"
    else:
        assert abs(value) <= 253_402_300_799.0  # finite and a day number fits an int
