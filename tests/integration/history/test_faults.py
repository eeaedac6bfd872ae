"""Compaction under faults: a run that fails at any chosen point converges on the next run.

Faults are injected where storage would fail (after k history writes, before the activity
append, before the cursor is saved) and a concurrent writer races a conditional write. In every
case the history ends byte-identical to a clean run and no reading is lost or doubled.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from shared.history import compaction
from shared.history.compaction import compact, record_raw_batches
from shared.history.daily import RankedPoints, decode_day, encode_day, merge_day
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.storage.names import history_day_name
from tests.history_doubles import put_raw_batch

NOW = datetime(2026, 11, 2, 12, 20, tzinfo=UTC)
T0 = datetime(2026, 11, 2, 11, 0, tzinfo=UTC).timestamp()
DEVICES = [f"m{i}" for i in range(6)]


class StorageDown(ConnectionError):
    """What the SDK raises when the account stops answering (a ServiceRequestError)."""


def fleet(store: BlobStore, settings: Settings) -> None:
    names = [
        put_raw_batch(
            store,
            settings,
            "0",
            10 * b,
            10 * b + 9,
            f"2026-11-02T11:{b:02d}:30Z",
            {(d, "power"): [(T0 + 60 * b, float(i + b))] for i, d in enumerate(DEVICES)},
        )
        for b in range(10)
    ]
    record_raw_batches(store, settings, names, NOW - timedelta(minutes=5))


def snapshot(store: BlobStore, settings: Settings) -> dict[str, bytes]:
    return {
        d: store.get_bytes(BlobRef(settings.history_container, history_day_name(d, "2026-11-02")))
        for d in DEVICES
    }


@pytest.fixture
def clean(app_env: dict[str, str]) -> dict[str, bytes]:
    settings = Settings.from_env(
        {**app_env, "HISTORY_CONTAINER": app_env["HISTORY_CONTAINER"] + "x"}
    )
    store = BlobStore.from_settings(settings)
    fleet(store, settings)
    compact(store, settings, NOW)
    return snapshot(store, settings)


def failing_after(calls: int, real: Callable[..., Any]) -> Callable[..., Any]:
    count = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        count["n"] += 1
        if count["n"] > calls:
            raise StorageDown("storage stopped answering")
        return real(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize(
    ("target", "calls"),
    [
        ("fold_day", 0),  # before any history write
        ("fold_day", 3),  # halfway through the device-days
        ("append_entries", 0),  # history written, activity not appended
        ("_save_cursor", 0),  # everything written but the cursor
    ],
)
def test_a_failed_run_converges_on_the_next(
    app_env: dict[str, str],
    clean: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    calls: int,
) -> None:
    settings = Settings.from_env(app_env)
    store = BlobStore.from_settings(settings)
    fleet(store, settings)
    monkeypatch.setattr(compaction, target, failing_after(calls, getattr(compaction, target)))
    with pytest.raises(StorageDown):
        compact(store, settings, NOW)
    monkeypatch.undo()
    report = compact(store, settings, NOW + timedelta(minutes=15))
    assert report.batches == 10  # the journal entries were not consumed by the failed run
    assert snapshot(store, settings) == clean
    assert compact(store, settings, NOW + timedelta(minutes=30)).batches == 0
    for device in DEVICES:
        day = decode_day("", clean[device])
        assert day.series["power"].size == 10  # each reading once


def test_a_concurrent_writer_is_merged_not_overwritten(
    app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.from_env(app_env)
    store = BlobStore.from_settings(settings)
    name = put_raw_batch(
        store, settings, "0", 1, 1, "2026-11-02T11:00:30Z", {("m1", "power"): [(T0, 1.0)]}
    )
    record_raw_batches(store, settings, [name], NOW - timedelta(minutes=5))
    ref = BlobRef(settings.history_container, history_day_name("m1", "2026-11-02"))
    real_merge = merge_day
    raced = {"done": False}

    def merge_while_another_writes(*args: Any) -> Any:
        if not raced["done"]:  # another writer lands a reading between our read and write
            raced["done"] = True
            other = merge_day(
                None,
                "m1",
                "2026-11-02",
                {"power": RankedPoints.of_delivery(np.array([T0 + 60]), np.array([2.0]), 9, 9)},
            )
            store.put_bytes(ref, encode_day(other))
        return real_merge(*args)

    monkeypatch.setattr(compaction, "merge_day", merge_while_another_writes)
    report = compact(store, settings, NOW)
    assert report.conflicts == 1 and report.written == 1
    day = decode_day("", store.get_bytes(ref))
    assert day.series["power"].values.tolist() == [1.0, 2.0]
