"""The pipeline's detection through ``RemoteBackend`` (the SDK) pointed at ``meterwatch serve``."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError

from shared.cli.csvio import read_series_csv
from shared.cli.serve import free_port, serve_in_subprocess
from shared.errors import ConfigurationError, DetectionRequestError, MeterwatchError
from shared.settings import Settings
from shared.univariate.contract import EmbeddedBackend, backend_for
from shared.univariate.detect import DetectionOptions
from shared.univariate.remote import RemoteBackend
from shared.univariate.series import request_body

KEY = "remote-test-key"
POINTS = 1500


@pytest.fixture(scope="module")
def endpoint(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second meterwatch: ``meterwatch serve`` over the session's Azurite."""
    env = {"AzureWebJobsStorage": azurite, "METERWATCH_API_KEYS": KEY}
    with serve_in_subprocess(env, cwd=tmp_path_factory.mktemp("remote-serve")) as url:
        yield url


def power_request(power_csv: Path) -> dict[str, Any]:
    """The v1.1 request of 1,500 readings of power.csv with a 5 kW spike."""
    series = read_series_csv(power_csv)
    values = series.values[:POINTS].copy()
    values[1400] = 5.0
    formatted = DetectionOptions().format(series.timestamps[:POINTS], values)
    return request_body(formatted)


def test_detection_through_a_remote_meterwatch_matches_the_embedded_engine(
    endpoint: str, app_env: dict[str, str], power_csv: Path
) -> None:
    remote_env = {**app_env, "ANOMALY_DETECTOR_ENDPOINT": endpoint, "ANOMALY_DETECTOR_KEY": KEY}
    remote = backend_for(Settings.from_env(remote_env))
    assert isinstance(remote, RemoteBackend)
    local = backend_for(Settings.from_env(app_env))
    assert isinstance(local, EmbeddedBackend)
    request = power_request(power_csv)
    changepoint = {**request, "stableTrendWindow": 10, "threshold": 0.99}
    assert remote.entire(request) == local.entire(request)
    assert remote.last(request) == local.last(request)
    assert remote.changepoint(changepoint) == local.changepoint(changepoint)
    assert remote.entire(request)["isAnomaly"][1400] is True


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


class _IncompleteAnswers(http.server.BaseHTTPRequestHandler):
    """An endpoint that answers every detection with a JSON object lacking the v1.1 fields."""

    def do_POST(self) -> None:  # noqa: N802 (the http.server hook's name)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"period": 0}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet."""


def test_an_answer_without_the_v11_fields_is_refused_by_name(power_csv: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _IncompleteAnswers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        backend = RemoteBackend(f"http://127.0.0.1:{server.server_port}", KEY, retry_total=0)
        with pytest.raises(MeterwatchError, match="lacks expectedValues") as caught:
            backend.entire(power_request(power_csv))
        assert caught.value.code == "InvalidRemoteResponse"
        with pytest.raises(MeterwatchError, match="lacks confidenceScores, isChangePoint"):
            backend.changepoint(power_request(power_csv))
    finally:
        server.shutdown()
        server.server_close()
