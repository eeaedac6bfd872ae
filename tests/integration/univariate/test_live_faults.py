"""Storage outages at chosen points of live detection: 0 anomalies lost, 0 points doubled.

Azurite (its own, persisted on disk) is stopped by PID right before a chosen request of the
judgement of the batch holding a spike: the result write, the anomaly-log append, the shard
read, the shard write (the state saved and the result not must not lose the anomaly). The
invocation raises a storage error, as in the host; Azurite is restarted and the invocation
retried. The run must converge to the stored bytes of a run without outage, and the
alert must be published by the successful attempt with the same id.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.exceptions import AzureError
from azure.storage.blob import BlobServiceClient

from shared.alerts import Alert, read_anomalies
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.univariate.live import LiveState, judge_raw_blob
from tests.integration.telemetry.test_ingest_storage import RestartableAzurite
from tests.live_fleet import START, Fleet, minute_batches

SPIKE = (1, "power", 75)
#: (label, HTTP method, blob path pattern, occurrence) of the request before which storage
#: goes away.
POINTS = [
    ("result write", "PUT", r"/live/batches/.*\.result\.json", 1),
    ("anomaly log append", "PUT", r"/anomalies/.*comp=appendblock", 1),
    ("state shard read", "GET", r"/live-state/", 1),
    ("state shard write", "PUT", r"/live-state/", 1),
    ("one shard saved, the other not", "PUT", r"/live-state/", 2),
]


@pytest.fixture
def own_azurite(tmp_path: Any) -> Iterator[RestartableAzurite]:
    with RestartableAzurite.running(tmp_path / "azurite") as server:
        yield server


class OutageAt:
    """A raw-request hook that stops Azurite before the first request matching a point."""

    def __init__(self, server: RestartableAzurite) -> None:
        self.server = server
        self.armed: tuple[str, re.Pattern[str], int] | None = None
        self.fired = 0

    def __call__(self, request: Any) -> None:
        if self.armed is None:
            return
        method, pattern, occurrence = self.armed
        http = request.http_request
        if http.method == method and pattern.search(http.url):
            if occurrence > 1:
                self.armed = (method, pattern, occurrence - 1)
                return
            self.armed = None
            self.fired += 1
            self.server.stop()


def judged(store: BlobStore, settings: Settings) -> dict[str, bytes]:
    container = settings.results_container
    return {
        name: store.get_bytes(BlobRef(container, name))
        for name in store.list_names(container)
        if name.startswith(("live/", "live-state/"))
    }


@pytest.mark.parametrize(
    ("label", "method", "pattern", "occurrence"), POINTS, ids=[p[0] for p in POINTS]
)
def test_outage_during_detection_converges_with_nothing_lost_or_doubled(
    own_azurite: RestartableAzurite,
    unique: str,
    label: str,
    method: str,
    pattern: str,
    occurrence: int,
) -> None:
    env = {
        "AzureWebJobsStorage": own_azurite.connection,
        "LIVE_STATE_SHARDS": "2",
        "LIVE_SNAPSHOT_POINTS": "30",
    }
    fleet = Fleet(3, spikes={SPIKE})
    blobs = minute_batches(fleet, range(90))
    spike_batch = SPIKE[2]

    # The reference: the same batches, no outage.
    reference = Settings.from_env({**env, "RESULTS_CONTAINER": f"ref-{unique}"})
    ref_store = BlobStore.from_settings(reference)
    ref_alerts: list[Alert] = []
    for name, data in blobs:
        ref_alerts += judge_raw_blob(name, data, ref_store, reference, LiveState()).alerts
    assert len(ref_alerts) == 1

    settings = Settings.from_env({**env, "RESULTS_CONTAINER": f"res-{unique}"})
    outage = OutageAt(own_azurite)
    service = BlobServiceClient.from_connection_string(
        own_azurite.connection,
        retry_total=0,
        connection_timeout=2,
        read_timeout=5,
        raw_request_hook=outage,
    )
    store = BlobStore(service)
    state = LiveState()
    published: list[Alert] = []
    started = time.monotonic()
    for number, (name, data) in enumerate(blobs):
        if number == spike_batch:
            outage.armed = (method, re.compile(pattern), occurrence)
            with pytest.raises(AzureError):
                judge_raw_blob(name, data, store, settings, state)
            assert outage.fired == 1, f"no request matched the {label}"
            own_azurite.restart()
        published += judge_raw_blob(name, data, store, settings, state).alerts
    assert time.monotonic() - started < 120
    # 0 lost: the alert was published by the successful attempt, with the reference's id.
    assert [a.id for a in published] == [a.id for a in ref_alerts]
    # 0 doubled: results and states are byte for byte those of the run without outage.
    assert judged(store, settings) == judged(ref_store, reference)
    logged = read_anomalies(store, START, settings=settings)
    assert [a.id for a in logged] == [a.id for a in ref_alerts]
