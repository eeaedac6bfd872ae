"""The live judge's bootstrap hook reads the history: a series without state starts informed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.timefmt import format_timestamp
from shared.univariate.live import bootstrap_from_history, judge_raw_blob
from tests.history_doubles import counted_store, put_raw_batch
from tests.history_fleet import STEP, compacted_archive

END = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
LAST = END.timestamp() // STEP * STEP


@pytest.fixture
def settings(app_env: dict[str, str]) -> Settings:
    return Settings.from_env(app_env)


def test_bootstrap_reads_the_last_days_once_per_day(azurite: str, settings: Settings) -> None:
    store, counter = counted_store(azurite)
    compacted_archive(store, settings, END, devices=1, hours=5 * 24)
    counter.reset()
    found = bootstrap_from_history(store, settings, "m0", "power", LAST + STEP)
    assert found is not None
    epochs, values = found
    assert epochs[0] >= LAST + STEP - settings.live_bootstrap_days * 86_400
    assert epochs[-1] == LAST and values.size == epochs.size == 3 * 24 * 12
    assert counter.count == settings.live_bootstrap_days + 1  # one GET per day touched
    assert bootstrap_from_history(store, settings, "nobody", "power", LAST) is None


def test_a_spike_in_the_first_live_batch_is_caught_thanks_to_history(settings: Settings) -> None:
    store = BlobStore.from_settings(settings)
    compacted_archive(store, settings, END, devices=1, hours=72)  # m0 has history, m9 none
    spike = LAST + STEP
    rows = {("m0", "power"): [(spike, 40.0)], ("m9", "power"): [(spike, 40.0)]}
    name = put_raw_batch(store, settings, "5", 1, 2, format_timestamp(spike + 1), rows)
    data = store.get_bytes(BlobRef(settings.raw_container, name))
    report = judge_raw_blob(name, data, store, settings)
    assert [(a.device_id, a.timestamp) for a in report.alerts] == [("m0", format_timestamp(spike))]
