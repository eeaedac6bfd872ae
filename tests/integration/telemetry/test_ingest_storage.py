"""Ingest against real storage (Azurite): the raw batch, dead letters, redelivery, outages."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from azure.core.exceptions import AzureError
from azure.storage.blob import BlobServiceClient

from shared.demo.azurite import answering, azurite_binary
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore, connection_string
from shared.telemetry.events import RawEvent
from shared.telemetry.ingest import ingest_batch, prepare_batch
from shared.telemetry.rawbatch import read_raw_batch
from tests.jsonview import json_blob

ENQUEUED = datetime(2026, 11, 1, 10, 0, 5, tzinfo=UTC)


def events(partition: str = "1", base: int = 100) -> list[RawEvent]:
    def event(seq: int, body: bytes, **kw: object) -> RawEvent:
        return RawEvent(body, partition, seq, enqueued_time=ENQUEUED, **kw)  # type: ignore[arg-type]

    good = [
        event(
            base + i,
            json.dumps(
                {
                    "deviceId": "m1",
                    "timestamp": f"2026-11-01T10:{i:02d}:00Z",
                    "power": i,
                    "voltage": 230,
                }
            ).encode(),
        )
        for i in range(5)
    ]
    bad = [
        event(base + 100, b"{not json", properties={"k": "v"}),
        event(base + 101, b'{"deviceId":"m1","timestamp":"2026-11-01T10:00:00Z","value":"NaN"}'),
        event(base + 102, b'{"deviceId":"m1","timestamp":"31/31/2026","value":1}'),
        event(base + 103, b'{"timestamp":"2026-11-01T10:00:00Z","value":1}'),
    ]
    return good[:2] + bad + good[2:]


def snapshot(store: BlobStore, settings: Settings) -> dict[str, bytes]:
    blobs = {}
    for container in (settings.raw_container, settings.deadletter_container):
        for name in store.list_names(container):
            blobs[f"{container}/{name}"] = store.get_bytes(BlobRef(container, name))
    return blobs


def test_batch_is_one_raw_blob_and_bad_events_dead_lettered(app_env: dict[str, str]) -> None:
    settings = Settings.from_env(app_env)
    store = BlobStore.from_settings(settings)
    report = ingest_batch(events(), store, settings)
    assert report.readings == 10
    raw = list(store.list_names(settings.raw_container))
    assert raw == ["batches/2026/11/01/10/p1-00000000000000000100-00000000000000000203.jsonl.gz"]
    data = store.get_bytes(BlobRef(settings.raw_container, raw[0]))
    batch = read_raw_batch(raw[0], data)
    assert [(s.metric, s.values.tolist()) for s in batch.series] == [
        ("power", [0.0, 1.0, 2.0, 3.0, 4.0]),
        ("voltage", [230.0] * 5),
    ]
    properties = (
        store.container(settings.raw_container).get_blob_client(raw[0]).get_blob_properties()
    )
    assert properties.content_settings.content_type == "application/gzip"
    letters = {
        name: json_blob(store, BlobRef(settings.deadletter_container, name))
        for name in store.list_names(settings.deadletter_container)
    }
    assert {letter["code"] for letter in letters.values()} == {
        "InvalidJson",
        "InvalidValue",
        "InvalidTimestamp",
        "MissingField",
    }
    # Nothing lost: every bad event's original payload is kept.
    assert {letter["payload"] for letter in letters.values()} == {
        e.body.decode() for e in events() if e.sequence_number >= 200
    }


def test_redelivered_batch_changes_nothing_and_writes_nothing(app_env: dict[str, str]) -> None:
    settings = Settings.from_env(app_env)
    store = BlobStore.from_settings(settings)
    ingest_batch(events(), store, settings)
    first = snapshot(store, settings)
    container = store.container(settings.raw_container)
    (name,) = list(store.list_names(settings.raw_container))
    etag = container.get_blob_client(name).get_blob_properties().etag
    report = ingest_batch(list(reversed(events())), store, settings)
    assert report.already_written == 5  # the raw batch and 4 dead letters: all already there
    assert snapshot(store, settings) == first
    # Not rewritten (so no second blob trigger): the ETag is the first write's.
    assert container.get_blob_client(name).get_blob_properties().etag == etag


def test_storage_failure_raises_so_the_runtime_retries() -> None:
    settings = Settings.from_env(
        {
            "AzureWebJobsStorage": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
            "KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
        }
    )
    store = BlobStore.from_settings(settings)
    store.service._config.retry_policy.total_retries = 0  # type: ignore[union-attr]  # fail fast
    with pytest.raises(AzureError):
        ingest_batch(events(), store, settings)


# ------------------------------------------------------------------ outage in the middle


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RestartableAzurite:
    """An Azurite of its own, persisted on disk, that a test can stop and restart by PID."""

    folder: Path
    ports: tuple[int, int, int]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    @property
    def connection(self) -> str:
        return connection_string(*self.ports)

    def start(self) -> None:
        if self.process is not None:  # never drop a running server unreaped
            self.stop()
        blob, queue, table = self.ports
        args = [
            azurite_binary(), "--silent", "--disableTelemetry", "--skipApiVersionCheck",
            "--location", str(self.folder),
            "--blobHost", "127.0.0.1", "--blobPort", str(blob),
            "--queueHost", "127.0.0.1", "--queuePort", str(queue),
            "--tableHost", "127.0.0.1", "--tablePort", str(table),
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not answering(blob):
            assert self.process.poll() is None and time.monotonic() < deadline, "no Azurite"
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM by PID (Azurite saves its store and exits), bounded to 10 s."""
        process, self.process = self.process, None
        assert process is not None
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()  # SIGKILL is immediate; always reaped, never left a zombie

    def restart(self) -> None:
        self.start()
        self.restarts += 1

    @classmethod
    @contextmanager
    def running(cls, folder: Path) -> Iterator[RestartableAzurite]:
        """A started Azurite on three free loopback ports, stopped (if running) at the end."""
        server = cls(folder, (_free_port(), _free_port(), _free_port()))
        server.start()
        try:
            yield server
        finally:
            if server.process is not None:
                server.stop()


@pytest.fixture
def own_azurite(tmp_path: Path) -> Iterator[RestartableAzurite]:
    with RestartableAzurite.running(tmp_path / "azurite") as server:
        yield server


class OutageStore(BlobStore):
    """The real store, whose n-th write first stops Azurite (the fault injection point)."""

    def __init__(self, service: BlobServiceClient, server: RestartableAzurite) -> None:
        super().__init__(service)
        self.server = server
        self.writes = 0
        self.fail_at: int | None = None

    def put_bytes_if_absent(self, ref: BlobRef, data: bytes, *, content_type: str = "") -> bool:
        self.writes += 1
        if self.writes == self.fail_at:
            self.fail_at = None
            self.server.stop()
        return super().put_bytes_if_absent(ref, data, content_type=content_type)


def test_outage_during_ingest_raises_then_the_retry_converges(
    own_azurite: RestartableAzurite, unique: str
) -> None:
    """Azurite stopped at every write position of a batch: 0 events lost, 0 doubled."""
    settings = Settings.from_env(
        {
            "AzureWebJobsStorage": own_azurite.connection,
            "RAW_CONTAINER": f"raw-{unique}",
            "DEADLETTER_CONTAINER": f"dead-{unique}",
        }
    )
    service = BlobServiceClient.from_connection_string(
        own_azurite.connection, retry_total=0, connection_timeout=2, read_timeout=5
    )
    store = OutageStore(service, own_azurite)
    batches = [events(partition="1", base=1000 * (k + 1)) for k in range(5)]
    started = time.monotonic()
    raised = 0
    for k, batch in enumerate(batches):
        # Batch k loses storage at its (k+1)-th write: the 4 dead letters, then the raw blob.
        store.writes, store.fail_at = 0, k + 1
        with pytest.raises(AzureError):
            ingest_batch(batch, store, settings)
        raised += 1
        own_azurite.restart()
        report = ingest_batch(batch, store, settings)  # the runtime's retry
        assert report.already_written == k  # what was written before the outage stays
    assert time.monotonic() - started < 60
    assert (raised, own_azurite.restarts) == (5, 5)
    # Converged: exactly the blobs a clean run writes, byte for byte (nothing lost or doubled).
    expected: dict[str, bytes] = {}
    for batch in batches:
        prepared = prepare_batch(batch)
        expected |= {f"{settings.raw_container}/{b.name}": b.data for b in prepared.blobs}
        expected |= {
            f"{settings.deadletter_container}/{b.name}": b.data for b in prepared.dead_letters
        }
    assert snapshot(store, settings) == expected
    readings = [
        (s.device_id, s.metric, stamp, batch.first_sequence)
        for name in store.list_names(settings.raw_container)
        for batch in [read_raw_batch(name, store.get_bytes(BlobRef(settings.raw_container, name)))]
        for s in batch.series
        for stamp in s.timestamps
    ]
    assert len(readings) == len(set(readings)) == 5 * 10
