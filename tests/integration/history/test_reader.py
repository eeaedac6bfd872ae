"""read_history over Azurite: the range's days, counted at the HTTP layer, plus the tail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from shared.errors import HistoryError
from shared.history.compaction import compact, record_raw_batches
from shared.history.reader import read_device_history, read_history
from shared.settings import Settings
from shared.storage.client import BlobStore
from tests.history_doubles import counted_store, put_raw_batch

DAY0 = datetime(2026, 11, 1, tzinfo=UTC).timestamp()


@pytest.fixture
def settings(app_env: dict[str, str]) -> Settings:
    return Settings.from_env(app_env)


def fleet_archive(store: BlobStore, settings: Settings, devices: int, days: int) -> None:
    """Hourly raw batches of a fleet, every device in every batch, 4 readings per hour."""
    names = []
    for hour in range(days * 24):
        rows = {
            (f"m{d}", metric): [
                (DAY0 + hour * 3600 + q * 900, float(d + hour + q) + (metric == "voltage") * 230)
                for q in range(4)
            ]
            for d in range(devices)
            for metric in ("power", "voltage")
        }
        stamp = datetime.fromtimestamp(DAY0 + hour * 3600 + 3599, tz=UTC)
        names.append(
            put_raw_batch(
                store, settings, "0", hour * 10, hour * 10 + 9, f"{stamp:%Y-%m-%dT%H:%M:%SZ}", rows
            )
        )
    now = datetime.fromtimestamp(DAY0 + days * 86_400, tz=UTC)
    record_raw_batches(store, settings, names, now)
    compact(store, settings, now + timedelta(minutes=1))


def test_a_range_read_costs_one_request_per_day_whatever_the_fleet(
    azurite: str, settings: Settings
) -> None:
    store, counter = counted_store(azurite)
    fleet_archive(store, settings, devices=20, days=3)
    store.container(settings.history_container)  # created already: not part of the read
    costs = {}
    for device in ("m0", "m7", "m19"):
        counter.reset()
        history = read_history(
            store, settings, device, "power", DAY0 + 3600, DAY0 + 2 * 86_400 + 7200, tail=False
        )
        costs[device] = counter.count
        d = int(device[1:])
        assert history.size == (2 * 86_400 + 3600) // 900 + 1
        assert history.epochs[0] == DAY0 + 3600 and history.epochs[-1] == DAY0 + 2 * 86_400 + 7200
        assert np.all(np.diff(history.epochs) == 900)
        assert history.values[0] == float(d + 1)
    assert costs == {"m0": 3, "m7": 3, "m19": 3}  # three days, one GET each
    counter.reset()
    one_day = read_history(store, settings, "m3", "voltage", DAY0, DAY0 + 3600, tail=False)
    assert counter.count == 1 and one_day.values.tolist() == [233.0, 234.0, 235.0, 236.0, 234.0]
    counter.reset()
    nothing = read_history(store, settings, "nobody", "power", DAY0, DAY0 + 86_399, tail=False)
    assert counter.count == 1 and nothing.size == 0  # a 404, nothing more


def test_the_tail_adds_what_is_not_compacted_yet(azurite: str, settings: Settings) -> None:
    store, counter = counted_store(azurite)
    early = put_raw_batch(
        store,
        settings,
        "0",
        1,
        2,
        "2026-11-01T10:00:00Z",
        {("m1", "power"): [(DAY0 + 36_000, 1.0), (DAY0 + 36_060, 2.0)]},
    )
    record_raw_batches(store, settings, [early], datetime.now(UTC) - timedelta(minutes=1))
    compact(store, settings, datetime.now(UTC))
    # Delivered after the compaction: a correction of 10:01 and a new reading, plus another meter.
    late = put_raw_batch(
        store,
        settings,
        "0",
        3,
        5,
        "2026-11-01T10:02:00Z",
        {
            ("m1", "power"): [(DAY0 + 36_060, 2.5), (DAY0 + 36_120, 3.0)],
            ("m2", "power"): [(DAY0 + 36_000, 9.0)],
        },
    )
    record_raw_batches(store, settings, [late], datetime.now(UTC))
    counter.reset()
    compacted = read_history(store, settings, "m1", "power", DAY0, DAY0 + 86_399, tail=False)
    assert counter.count == 1 and compacted.values.tolist() == [1.0, 2.0]
    counter.reset()
    full = read_history(store, settings, "m1", "power", DAY0, DAY0 + 86_399)
    assert full.values.tolist() == [1.0, 2.5, 3.0]
    # 1 day + cursor + journal listing(s) of the open hours + 1 journal range + 1 batch.
    assert 5 <= counter.count <= 6, counter.requests


def test_device_history_returns_every_metric(azurite: str, settings: Settings) -> None:
    store, _ = counted_store(azurite)
    fleet_archive(store, settings, devices=2, days=1)
    found = read_device_history(store, settings, "m1", DAY0, DAY0 + 7200, tail=False)
    assert sorted(found.series) == ["power", "voltage"]
    assert found.days_read == 1 and found.series["voltage"].size == 9


@pytest.mark.parametrize(
    ("start", "end", "match"),
    [
        ("2026-11-02T00:00:00Z", "2026-11-01T00:00:00Z", "starts after it ends"),
        ("2025-01-01T00:00:00Z", "2026-11-01T00:00:00Z", "at most 400 days"),
        ("yesterday", "2026-11-01T00:00:00Z", "start"),
    ],
)
def test_bad_ranges_are_coded_errors(
    azurite: str, settings: Settings, start: str, end: str, match: str
) -> None:
    store, counter = counted_store(azurite)
    with pytest.raises(HistoryError, match=match) as caught:
        read_history(store, settings, "m1", "power", start, end)
    assert caught.value.code == "InvalidHistoryRange"
    assert counter.count == 0


def test_a_tail_over_its_bound_is_skipped_not_scanned(
    azurite: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.history import reader

    store, counter = counted_store(azurite)
    compact(store, settings)  # the compaction's cursor stands at the current hour
    names = [
        put_raw_batch(
            store, settings, "0", i, i, "2026-11-01T10:00:00Z", {("m1", "power"): [(DAY0 + i, 1.0)]}
        )
        for i in range(4)
    ]
    record_raw_batches(store, settings, names, datetime.now(UTC))
    monkeypatch.setattr(reader, "TAIL_MAX_BATCHES", 3)
    counter.reset()
    found = read_device_history(store, settings, "m1", DAY0, DAY0 + 3600)
    assert found.tail_batches == 0 and found.series == {}
    assert counter.count <= 5  # the day, the cursor, the journal listing(s) and its one blob
    monkeypatch.setattr(reader, "TAIL_MAX_BATCHES", 4)
    assert read_device_history(store, settings, "m1", DAY0, DAY0 + 3600).tail_batches == 4
