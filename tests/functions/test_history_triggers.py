"""The history timers: metadata from get_functions(), and runs in-process on real TimerRequests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import azure.functions as func
from azure.functions.meta import Datum
from azure.functions.timer import TimerRequestConverter

from shared.alerts import alert_id, read_anomalies
from shared.history.compaction import compact
from shared.history.reader import read_history
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.timefmt import format_timestamp
from tests.history_doubles import put_raw_batch
from tests.history_fleet import STEP, write_archive

T = TypeVar("T")


class Collected(func.Out[T], Generic[T]):
    """An output binding value, as the worker hands one to a function."""

    def __init__(self) -> None:
        self.value: T | None = None

    def set(self, val: T) -> None:
        self.value = val

    def get(self) -> T:
        assert self.value is not None, "nothing was set"
        return self.value


def timer_request(past_due: bool = False) -> func.TimerRequest:
    """A TimerRequest decoded as the worker decodes the host's timer payload."""
    payload = {
        "Schedule": {"AdjustForDST": True},
        "ScheduleStatus": {
            "Last": "2026-11-03T11:00:00+00:00",
            "Next": "2026-11-03T12:00:00+00:00",
            "LastUpdated": "2026-11-03T11:00:00+00:00",
        },
        "IsPastDue": past_due,
    }
    request = TimerRequestConverter.decode(Datum(json.dumps(payload), "json"), trigger_metadata={})
    assert isinstance(request, func.TimerRequest)
    return request


def bindings(function: Any) -> dict[str, dict[str, Any]]:
    return {b["name"]: b for b in json.loads(function.get_function_json())["bindings"]}


def test_timer_metadata(app_functions: dict[str, Any]) -> None:
    compaction = bindings(app_functions["history_compaction"])
    assert compaction["timer"]["type"] == "timerTrigger"
    assert compaction["timer"]["schedule"] == "%HISTORY_COMPACTION_SCHEDULE%"
    assert compaction["timer"]["useMonitor"] is True
    detection = bindings(app_functions["scheduled_detection"])
    assert detection["timer"]["schedule"] == "%SCHEDULED_DETECTION_SCHEDULE%"
    out = detection["anomalies"]
    assert (out["type"], out["direction"]) == ("eventHub", "OUT")
    assert out["connection"] == "AnomaliesConnection"
    assert out["eventHubName"] == "%ANOMALIES_EVENTHUB_NAME%"
    live = bindings(app_functions["raw_blob_trigger"]).get("anomalies")
    if live is not None:  # the same hub and connection as the live path
        assert (live["connection"], live["eventHubName"]) == (
            out["connection"],
            out["eventHubName"],
        )


def test_timers_compact_then_publish_the_missed_anomaly_once(
    function_env: dict[str, str], app_functions: dict[str, Any]
) -> None:
    settings = Settings.from_env(function_env)
    store = BlobStore.from_settings(settings)
    # The timers read the real clock: an archive that ends a few minutes ago.
    now = datetime.now(UTC)
    last = (now - timedelta(minutes=5)).timestamp() // STEP * STEP
    spike = last - 2 * 3600
    write_archive(
        store, settings, now - timedelta(minutes=4), devices=2, spikes={("m1", spike): 40.0}
    )
    app_functions["history_compaction"].get_user_function()(timer_request())
    assert sorted(store.list_names(settings.history_container, "series/m1/"))
    out: Collected[list[str]] = Collected()
    app_functions["scheduled_detection"].get_user_function()(timer_request(past_due=True), out)
    assert out.value is not None
    published = [json.loads(message) for message in out.value]
    spike_id = alert_id("m1", "power", format_timestamp(spike), "entire")
    assert [m["id"] for m in published].count(spike_id) == 1
    assert all(m["schema"] == "meterwatch.alert/1" for m in published)
    assert {m["id"] for m in published} <= {
        a.id for a in read_anomalies(store, last - 86_400, settings=settings)
    }
    # The next runs have nothing new: nothing is published again.
    app_functions["history_compaction"].get_user_function()(timer_request())
    again: Collected[list[str]] = Collected()
    app_functions["scheduled_detection"].get_user_function()(timer_request(), again)
    assert again.value is None


def test_the_raw_blob_trigger_records_each_batch_for_the_compaction(
    function_env: dict[str, str], app_functions: dict[str, Any]
) -> None:
    settings = Settings.from_env(function_env)
    store = BlobStore.from_settings(settings)
    now = datetime.now(UTC)
    stamp = (now - timedelta(minutes=3)).timestamp() // 60 * 60
    name = put_raw_batch(
        store,
        settings,
        "3",
        70,
        71,
        format_timestamp(stamp + 1),
        {("m1", "power"): [(stamp, 1.5)], ("m2", "power"): [(stamp, 2.5)]},
    )
    data = store.get_bytes(BlobRef(settings.raw_container, name))
    trigger = app_functions["raw_blob_trigger"].get_user_function()
    for _delivery in range(2):  # a redelivered blob event records the name again: harmless
        trigger(
            func.blob.InputStream(
                data=data, name=f"{settings.raw_container}/{name}", length=len(data)
            ),
            Collected(),
        )
    report = compact(store, settings)
    assert (report.batches, report.readings) == (1, 2)
    history = read_history(store, settings, "m2", "power", stamp - 60, stamp + 60, tail=False)
    assert history.values.tolist() == [2.5]
