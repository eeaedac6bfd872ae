"""Compaction over Azurite: raw batches in, one history blob per device and day out.

Idempotent under re-runs and redeliveries, independent of delivery order, late batches folded
when they are recorded, unreadable batches skipped without stopping the rest.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.history.compaction import backfill, compact, record_raw_batches
from shared.history.daily import decode_day
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.storage.names import history_day_name
from tests.history_doubles import put_raw_batch

NOW = datetime(2026, 11, 2, 12, 20, tzinfo=UTC)
T0 = datetime(2026, 11, 2, 11, 0, tzinfo=UTC).timestamp()


@pytest.fixture
def settings(app_env: dict[str, str]) -> Settings:
    return Settings.from_env(app_env)


@pytest.fixture
def store(settings: Settings) -> BlobStore:
    return BlobStore.from_settings(settings)


def minute(i: int) -> float:
    return T0 + 60 * i


def history_bytes(store: BlobStore, settings: Settings, device: str, day: str) -> bytes:
    return store.get_bytes(BlobRef(settings.history_container, history_day_name(device, day)))


def history_names(store: BlobStore, settings: Settings) -> list[str]:
    return list(store.list_names(settings.history_container, "series/"))


def test_batches_fold_into_one_blob_per_device_and_day(
    store: BlobStore, settings: Settings
) -> None:
    first = put_raw_batch(
        store,
        settings,
        "0",
        100,
        103,
        "2026-11-02T11:01:00Z",
        {
            ("m1", "power"): [(minute(0), 1.0), (minute(1), 1.1)],
            ("m1", "voltage"): [(minute(0), 230.0)],
            ("m2", "power"): [(minute(0), 5.0)],
        },
    )
    # A stray reading of the day before lands in that day's blob, not in the batch's.
    second = put_raw_batch(
        store,
        settings,
        "0",
        104,
        105,
        "2026-11-02T11:03:00Z",
        {("m1", "power"): [(minute(2), 1.2), (minute(-24 * 60), 0.5)]},
    )
    record_raw_batches(store, settings, [first, second], NOW - timedelta(minutes=15))
    report = compact(store, settings, NOW)
    assert (report.batches, report.readings, report.written) == (2, 6, 3)
    assert history_names(store, settings) == [
        "series/m1/2026-11-01.jsonl.gz",
        "series/m1/2026-11-02.jsonl.gz",
        "series/m2/2026-11-02.jsonl.gz",
    ]
    day = decode_day("", history_bytes(store, settings, "m1", "2026-11-02"))
    assert day.series["power"].epochs.tolist() == [minute(0), minute(1), minute(2)]
    assert day.series["power"].values.tolist() == [1.0, 1.1, 1.2]
    assert day.series["voltage"].values.tolist() == [230.0]
    assert sorted((a.device_id, a.metric) for a in report.active) == [
        ("m1", "power"),
        ("m1", "voltage"),
        ("m2", "power"),
    ]


def test_re_runs_and_redeliveries_change_nothing(store: BlobStore, settings: Settings) -> None:
    rows = {("m1", "power"): [(minute(i), float(i)) for i in range(30)]}
    name = put_raw_batch(store, settings, "1", 1, 30, "2026-11-02T11:30:00Z", rows)
    record_raw_batches(store, settings, [name], NOW - timedelta(minutes=5))
    compact(store, settings, NOW)
    before = history_bytes(store, settings, "m1", "2026-11-02")
    # Nothing new: the run reads nothing and writes nothing.
    assert compact(store, settings, NOW + timedelta(minutes=1)).batches == 0
    # The same batch delivered (and recorded) twice more, once in a later hour.
    put_raw_batch(store, settings, "1", 1, 30, "2026-11-02T11:30:00Z", rows)
    record_raw_batches(store, settings, [name, name], NOW + timedelta(minutes=2))
    record_raw_batches(store, settings, [name], NOW + timedelta(hours=1))
    again = compact(store, settings, NOW + timedelta(hours=1, minutes=5))
    assert again.batches == 1 and again.written == 0  # read once, merged, nothing to write
    assert history_bytes(store, settings, "m1", "2026-11-02") == before


def test_delivery_order_does_not_change_the_bytes(
    store: BlobStore, settings: Settings, app_env: dict[str, str]
) -> None:
    older = ("0", 1, 2, "2026-11-02T11:05:00Z", {("m1", "power"): [(minute(0), 1.0)]})
    newer = ("0", 9, 9, "2026-11-02T11:09:00Z", {("m1", "power"): [(minute(0), 7.0)]})
    results = []
    for suffix, order in (("a", (older, newer)), ("b", (newer, older))):
        local = Settings.from_env(
            {**app_env, "HISTORY_CONTAINER": f"{app_env['HISTORY_CONTAINER']}{suffix}"}
        )
        for i, batch in enumerate(order):
            name = put_raw_batch(store, local, *batch)
            record_raw_batches(store, local, [name], NOW - timedelta(minutes=30 - i))
            compact(store, local, NOW - timedelta(minutes=29 - i))
        results.append(history_bytes(store, local, "m1", "2026-11-02"))
    assert results[0] == results[1]
    assert decode_day("", results[0]).series["power"].values.tolist() == [7.0]


def test_a_late_batch_is_folded_when_it_is_recorded(store: BlobStore, settings: Settings) -> None:
    on_time = put_raw_batch(
        store, settings, "0", 10, 10, "2026-11-02T11:10:00Z", {("m1", "power"): [(minute(10), 1.0)]}
    )
    record_raw_batches(store, settings, [on_time], NOW - timedelta(minutes=30))
    compact(store, settings, NOW)
    # Enqueued long ago, delivered now (a consumer that was down): recorded in a later hour.
    late = put_raw_batch(
        store, settings, "0", 3, 4, "2026-11-02T09:00:00Z", {("m1", "power"): [(minute(-90), 0.9)]}
    )
    record_raw_batches(store, settings, [late], NOW + timedelta(hours=2))
    report = compact(store, settings, NOW + timedelta(hours=2, minutes=15))
    assert report.batches == 1
    day = decode_day("", history_bytes(store, settings, "m1", "2026-11-02"))
    assert day.series["power"].epochs.tolist() == [minute(-90), minute(10)]


def test_an_append_in_a_closing_hour_is_not_missed(store: BlobStore, settings: Settings) -> None:
    a = put_raw_batch(
        store, settings, "0", 1, 1, "2026-11-02T11:50:00Z", {("m1", "power"): [(minute(50), 1.0)]}
    )
    b = put_raw_batch(
        store, settings, "0", 2, 2, "2026-11-02T11:59:00Z", {("m1", "power"): [(minute(59), 2.0)]}
    )
    record_raw_batches(store, settings, [a], datetime(2026, 11, 2, 11, 52, tzinfo=UTC))
    compact(store, settings, datetime(2026, 11, 2, 12, 1, tzinfo=UTC))
    # A writer whose clock is a little behind still appends to hour 11 after 12:00.
    record_raw_batches(store, settings, [b], datetime(2026, 11, 2, 11, 59, 59, tzinfo=UTC))
    report = compact(store, settings, datetime(2026, 11, 2, 12, 16, tzinfo=UTC))
    assert report.batches == 1 and report.cursor is not None
    assert report.cursor.settled == "2026/11/02/12"  # hour 11 is over, read to its end
    day = decode_day("", history_bytes(store, settings, "m1", "2026-11-02"))
    assert day.series["power"].values.tolist() == [1.0, 2.0]


def test_unreadable_and_missing_batches_are_skipped(store: BlobStore, settings: Settings) -> None:
    good = put_raw_batch(
        store, settings, "0", 1, 1, "2026-11-02T11:00:00Z", {("m1", "power"): [(minute(0), 1.0)]}
    )
    store.put_bytes(
        BlobRef(settings.raw_container, "batches/2026/11/02/11/p0-bad.jsonl.gz"), b"junk"
    )
    record_raw_batches(
        store,
        settings,
        ["batches/2026/11/02/11/p0-bad.jsonl.gz", "batches/2026/11/02/11/p0-gone.jsonl.gz", good],
        NOW - timedelta(minutes=5),
    )
    report = compact(store, settings, NOW)
    assert report.batches == 1
    assert [line.split(":")[0] for line in report.unreadable] == [
        "batches/2026/11/02/11/p0-bad.jsonl.gz",
        "batches/2026/11/02/11/p0-gone.jsonl.gz",
    ]
    assert report.unreadable[0].split(": ")[1] in {"InvalidGzip", "InvalidJson", "InvalidEncoding"}
    assert history_names(store, settings) == ["series/m1/2026-11-02.jsonl.gz"]


def test_chunked_runs_give_the_same_history(
    store: BlobStore, settings: Settings, app_env: dict[str, str]
) -> None:
    names = [
        put_raw_batch(
            store,
            settings,
            "0",
            i,
            i,
            f"2026-11-02T11:{i:02d}:00Z",
            {("m1", "power"): [(minute(i), float(i))], ("m1", "power2"): [(minute(i), -1.0)]},
        )
        for i in range(12)
    ]
    chunked = Settings.from_env(
        {**app_env, "HISTORY_CONTAINER": app_env["HISTORY_CONTAINER"] + "c"}
    )
    for target in (settings, chunked):
        record_raw_batches(store, target, names, NOW - timedelta(minutes=5))
    whole = compact(store, settings, NOW)
    parts = compact(store, chunked, NOW, max_points=5)
    assert whole.batches == parts.batches == 12
    assert parts.device_days > whole.device_days  # several chunks touched the same day
    assert history_bytes(store, settings, "m1", "2026-11-02") == history_bytes(
        store, chunked, "m1", "2026-11-02"
    )


def test_backfill_records_batches_of_an_hour_range(store: BlobStore, settings: Settings) -> None:
    names = [
        put_raw_batch(
            store,
            settings,
            "0",
            i,
            i,
            f"2026-11-02T{h:02d}:00:00Z",
            {("m1", "power"): [(minute(i), 1.0)]},
        )
        for i, h in enumerate((9, 10, 13))
    ]
    start, end = datetime(2026, 11, 2, 9, tzinfo=UTC), datetime(2026, 11, 2, 10, 59, tzinfo=UTC)
    assert backfill(store, settings, start, end, NOW - timedelta(minutes=1)) == 2
    report = compact(store, settings, NOW)
    assert report.batches == 2 and names[2] not in report.unreadable
