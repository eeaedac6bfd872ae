"""The pipeline's detection through ``RemoteBackend`` (the SDK) pointed at ``meterwatch serve``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from azure.core.exceptions import ServiceRequestError

from shared.cli.csvio import read_series_csv
from shared.cli.serve import free_port, serve_in_subprocess
from shared.errors import ConfigurationError, DetectionRequestError
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.telemetry.events import RawEvent
from shared.telemetry.ingest import ingest_batch
from shared.timefmt import format_timestamp
from shared.univariate.contract import EmbeddedBackend, backend_for
from shared.univariate.detect import detect_raw_batch
from shared.univariate.remote import RemoteBackend

KEY = "remote-test-key"
POINTS = 1500


@pytest.fixture(scope="module")
def endpoint(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second meterwatch: ``meterwatch serve`` over the session's Azurite."""
    env = {"AzureWebJobsStorage": azurite, "METERWATCH_API_KEYS": KEY}
    with serve_in_subprocess(env, cwd=tmp_path_factory.mktemp("remote-serve")) as url:
        yield url


def run_pipeline(settings: Settings, power_csv: Path) -> tuple[BlobStore, list[str]]:
    """Deliver 1,500 readings of power.csv (with a 5 kW spike) and detect each raw batch."""
    store = BlobStore.from_settings(settings)
    series = read_series_csv(power_csv)
    values = series.values[:POINTS].copy()
    values[1400] = 5.0
    bodies = [
        json.dumps(
            {"deviceId": "meter-r", "timestamp": format_timestamp(float(t)), "power": float(v)}
        ).encode()
        for t, v in zip(series.timestamps[:POINTS], values, strict=True)
    ]
    blobs: list[str] = []
    for start in range(0, POINTS, 500):
        events = [RawEvent(b, "0", start + i) for i, b in enumerate(bodies[start : start + 500])]
        for blob in ingest_batch(events, store, settings).raw_blobs:
            detect_raw_batch(blob, store, settings)
            blobs.append(blob)
    return store, blobs


def stored_results(store: BlobStore, settings: Settings) -> dict[str, object]:
    return {
        name: store.get_json(BlobRef(settings.results_container, name))
        for name in store.list_names(settings.results_container)
        if name.endswith(("entire.json", "last.json", "changepoint.json"))
    }


def test_pipeline_detection_through_a_remote_meterwatch(
    endpoint: str, app_env: dict[str, str], power_csv: Path
) -> None:
    remote_env = {**app_env, "ANOMALY_DETECTOR_ENDPOINT": endpoint, "ANOMALY_DETECTOR_KEY": KEY}
    remote = Settings.from_env(remote_env)
    backend = backend_for(remote)
    assert isinstance(backend, RemoteBackend)
    store, blobs = run_pipeline(remote, power_csv)
    assert len(blobs) == 3
    through_remote = stored_results(store, remote)
    assert len(through_remote) == 9  # entire, last and change points for each batch

    # The same telemetry detected by the embedded engine gives the same stored results.
    unique = uuid.uuid4().hex[:8]
    local_env = {
        **app_env,
        "RAW_CONTAINER": f"raw-local-{unique}",
        "RESULTS_CONTAINER": f"results-local-{unique}",
    }
    local = Settings.from_env(local_env)
    assert isinstance(backend_for(local), EmbeddedBackend)
    local_store, _ = run_pipeline(local, power_csv)
    assert stored_results(local_store, local) == through_remote

    last_batch = max(n for n in through_remote if n.endswith("entire.json"))
    entire = through_remote[last_batch]
    assert isinstance(entire, dict)
    assert np.count_nonzero(entire["isAnomaly"]) >= 1


def test_a_request_the_remote_refuses_is_a_coded_detection_error(endpoint: str) -> None:
    backend = RemoteBackend(endpoint, KEY)
    body: dict[str, Any] = {
        "series": [{"timestamp": f"2026-11-02T00:{i:02d}:00Z", "value": 1.0} for i in range(11)],
        "granularity": "minutely",
        "period": None,
    }
    with pytest.raises(DetectionRequestError) as caught:
        backend.entire(body)
    assert caught.value.code == "InvalidSeries"
    assert endpoint in caught.value.message
    body["series"] = body["series"] * 2  # duplicated timestamps
    with pytest.raises(DetectionRequestError) as caught:
        backend.changepoint(body)
    assert caught.value.code == "InvalidSeries"


def test_a_wrong_key_names_the_setting(endpoint: str) -> None:
    backend = RemoteBackend(endpoint, "wrong-key")
    body = {
        "series": [{"timestamp": f"2026-11-02T00:{i:02d}:00Z", "value": 1.0} for i in range(20)],
        "granularity": "minutely",
    }
    with pytest.raises(ConfigurationError) as caught:
        backend.last(body)
    assert "ANOMALY_DETECTOR_KEY" in caught.value.message


def test_an_unreachable_endpoint_raises_the_sdk_error_for_a_retry() -> None:
    backend = RemoteBackend(f"http://127.0.0.1:{free_port()}", KEY, retry_total=0)
    body = {
        "series": [{"timestamp": f"2026-11-02T00:{i:02d}:00Z", "value": 1.0} for i in range(20)],
        "granularity": "minutely",
    }
    with pytest.raises(ServiceRequestError):
        backend.entire(body)
