"""Issue 11 defects 2, 4 and 5 against the pre-fix live path (``detect_raw_batch``, the old
``raw_blob_trigger``), for ``scripts/prefix_check/run.sh`` only: this code targets the API of
the revision before the fixes and is never collected in this tree.

The same attacks as the current tests (tests/integration/univariate/test_live.py and
test_live_faults.py), through the door the old code had: events → ``ingest_batch`` → detection
of each raw blob. Each test here failed on that revision (see RELIABILITY.md).
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.core.exceptions import AzureError
from azure.storage.blob import BlobServiceClient

from shared.demo.azurite import answering, azurite_binary, connection_string
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.telemetry.events import RawEvent
from shared.telemetry.ingest import ingest_batch
from shared.univariate.detect import detect_raw_batch

START = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
SPIKE = 75


def stamp(minute: int) -> str:
    return (START + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")


def value(minute: int) -> float:
    base = 2.0 + math.sin(minute * 2 * math.pi / 30) + 0.05 * ((minute * 7919) % 13 - 6)
    return 40.0 if minute == SPIKE else round(base, 3)


def minute_events(minute: int, extra: list[dict[str, Any]] | None = None) -> list[RawEvent]:
    bodies = [{"deviceId": "m1", "timestamp": stamp(minute), "power": value(minute)}]
    bodies += extra or []
    return [
        RawEvent(json.dumps(b).encode(), "0", 100 * minute + i,
                 enqueued_time=START + timedelta(minutes=minute))
        for i, b in enumerate(bodies)
    ]  # fmt: skip


# ------------------------------------------------------------------ defect 2


def test_defect_2_a_stray_old_reading_does_not_hide_the_spike(app_env: dict[str, str]) -> None:
    settings = Settings.from_env(app_env)
    store = BlobStore.from_settings(settings)
    flagged: list[str] = []
    for minute in range(90):
        extra = None
        if minute == SPIKE:  # one 100-day-old reading in the spike's batch
            old = (START - timedelta(days=100)).strftime("%Y-%m-%dT%H:%M:%SZ")
            extra = [{"deviceId": "m1", "timestamp": old, "power": 2.0}]
        for blob in ingest_batch(minute_events(minute, extra), store, settings).raw_blobs:
            report = detect_raw_batch(blob, store, settings)
            flagged += [a["timestamp"] for a in report.anomalies]
    assert stamp(SPIKE) in flagged


# ------------------------------------------------------------------ defect 4


def trigger(name: str, data: bytes, settings: Settings) -> None:
    from functions.univariate import raw_blob_trigger

    user = raw_blob_trigger.build().get_user_function()
    user(func.blob.InputStream(data=data, name=f"{settings.raw_container}/{name}"))


@pytest.mark.parametrize(
    "data", [b"", b"\x1f\x8b\x08\x00trunc", b"not json at all", b'{"format": "other"}'],
    ids=["empty", "truncated gzip", "text", "wrong schema"],
)  # fmt: skip
def test_defect_4_an_unreadable_raw_blob_is_dead_lettered_not_raised(
    app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, data: bytes
) -> None:
    for key, val in app_env.items():
        monkeypatch.setenv(key, val)
    from shared.settings import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    store = BlobStore.from_settings(settings)
    name = "m1/power/2026-11-01/p0-00000000000000000001-00000000000000000001.json"
    store.put_bytes(BlobRef(settings.raw_container, name), data)
    trigger(name, data, settings)  # before: raised on every try (no dead-letter path)
    assert list(store.list_names(settings.deadletter_container)), "no dead letter"


# ------------------------------------------------------------------ defect 5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ports = (_free_port(), _free_port(), _free_port())
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def connection(self) -> str:
        return connection_string(*self.ports)

    def start(self) -> None:
        blob, queue, table = self.ports
        args = [azurite_binary(), "--silent", "--disableTelemetry", "--skipApiVersionCheck",
                "--location", str(self.folder), "--blobHost", "127.0.0.1", "--blobPort",
                str(blob), "--queueHost", "127.0.0.1", "--queuePort", str(queue),
                "--tableHost", "127.0.0.1", "--tablePort", str(table)]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not answering(blob):
            assert time.monotonic() < deadline
            time.sleep(0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        assert process is not None
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_all(
    store: BlobStore, settings: Settings, outage: Any = None, server: Any = None
) -> list[str]:
    stream: list[str] = []
    for minute in range(90):
        report = ingest_batch(minute_events(minute), store, settings)
        for blob in report.raw_blobs:
            if outage is not None and minute == SPIKE:
                outage.armed = True
                with pytest.raises(AzureError):
                    detect_raw_batch(blob, store, settings)
                assert outage.fired
                server.start()
            detect_raw_batch(blob, store, settings)
    # Read every stored summary's stream anomalies.
    for name in sorted(store.list_names(settings.results_container)):
        if name.endswith("summary.json"):
            document = store.get_json(BlobRef(settings.results_container, name))
            stream += [a["timestamp"] for a in document.get("streamAnomalies", [])]
    return stream


class Outage:
    """Stops Azurite before the stream result (stream.json) is written: after the state."""

    def __init__(self, server: Server) -> None:
        self.server, self.armed, self.fired = server, False, False

    def __call__(self, request: Any) -> None:
        http = request.http_request
        if self.armed and http.method == "PUT" and re.search(r"/stream\.json", http.url):
            self.armed, self.fired = False, True
            self.server.stop()


def test_defect_5_an_outage_between_state_and_result_loses_no_anomaly(tmp_path: Path) -> None:
    server = Server(tmp_path / "azurite")
    server.start()
    try:
        ref_settings = Settings.from_env(
            {"AzureWebJobsStorage": server.connection, "RAW_CONTAINER": "raw-ref",
             "RESULTS_CONTAINER": "res-ref"})  # fmt: skip
        reference = run_all(BlobStore.from_settings(ref_settings), ref_settings)
        assert stamp(SPIKE) in reference
        settings = Settings.from_env(
            {"AzureWebJobsStorage": server.connection, "RAW_CONTAINER": "raw-out",
             "RESULTS_CONTAINER": "res-out"})  # fmt: skip
        outage = Outage(server)
        service = BlobServiceClient.from_connection_string(
            server.connection, retry_total=0, connection_timeout=2, read_timeout=5,
            raw_request_hook=outage)  # fmt: skip
        found = run_all(BlobStore(service), settings, outage, server)
        assert found == reference  # before: the spike's stream anomaly was lost
    finally:
        if server.process is not None:
            server.stop()


def test_defect_4_huge_readings_at_fifty_minutes(app_env: dict[str, str]) -> None:
    settings = Settings.from_env(app_env)
    store = BlobStore.from_settings(settings)
    broken: list[str] = []
    flagged: list[str] = []
    minutes = [*range(60), 60, *range(110, 150)]
    for minute in minutes:
        if minute == 60:  # one batch of 50 alternating +-1e308 readings, minutes 60-109
            bodies = [{"deviceId": "m1", "timestamp": stamp(60 + s),
                       "power": 1e308 if s % 2 else -1e308} for s in range(50)]  # fmt: skip
            events = [RawEvent(json.dumps(b).encode(), "0", 6000 + i) for i, b in enumerate(bodies)]
        else:
            body = {"deviceId": "m1", "timestamp": stamp(minute),
                    "power": 40.0 if minute == 140 else value(minute)}  # fmt: skip
            events = [RawEvent(json.dumps(body).encode(), "0", 100 * minute)]
        for blob in ingest_batch(events, store, settings).raw_blobs:
            try:
                report = detect_raw_batch(blob, store, settings)
            except Exception as exc:  # noqa: BLE001 - the probe records what broke
                broken.append(f"{minute}: {type(exc).__name__}: {exc}"[:200])
                continue
            flagged += [a["timestamp"] for a in report.anomalies]
            text = json.dumps(
                store.get_json(BlobRef(settings.results_container, report.written[-1]))
            )
            if minute >= 60 and (report.skipped or "NaN" in text or "Infinity" in text):
                broken.append(f"{minute}: skipped={report.skipped} nonfinite={'NaN' in text}")
    assert broken == []
    assert stamp(140) in flagged
