"""Error paths of ``meterwatch serve`` through the SDK and raw ``requests``: bad bodies, a huge
body, bad multivariate requests, refused data sources, a bad dataset, and fuzzed multivariate
bodies that must never give a server error.
"""

from __future__ import annotations

import io
import uuid
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.ai.anomalydetector import AnomalyDetectorClient
from azure.ai.anomalydetector.models import (
    ModelInfo,
)
from azure.storage.blob import BlobServiceClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.api.served import DETECT, KEY, TRAIN, wait_for
from tests.sample_data import sample_path

TWENTY_POINTS = ",".join(
    f'{{"timestamp": "2026-01-01T00:{i:02d}:00Z", "value": {i % 4}}}' for i in range(20)
)


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        pytest.param(b"{bad json", 400, "InvalidJsonFormat", id="not-json"),
        pytest.param(b'{"series": "nope", "granularity": "minutely"}', 400, "InvalidSeries",
                     id="series-string"),
        pytest.param(b'{"series": [], "granularity": 5}', 400, "InvalidSeries", id="empty"),
        pytest.param(b'{"series": [{"timestamp": [], "value": {}}], "granularity": "minutely"}',
                     400, "InvalidSeries", id="point-types"),
        pytest.param(
            f'{{"series": [{TWENTY_POINTS}], "granularity": "minutely", "sensitivity": "max"}}'
            .encode(), 400, "InvalidSensitivity", id="sensitivity-string"),
        pytest.param(
            f'{{"series": [{TWENTY_POINTS}], "granularity": "minutely", "period": [7]}}'
            .encode(), 400, "InvalidPeriod", id="period-array"),
    ],
)  # fmt: skip
def test_bad_bodies_are_400s_over_http(
    server: dict[str, str], content: bytes, status: int, code: str
) -> None:
    response = requests.post(
        f"{server['endpoint']}/anomalydetector/v1.1/timeseries/entire/detect",
        data=content,
        headers={"Content-Type": "application/json", "Ocp-Apim-Subscription-Key": KEY},
        timeout=10,
    )
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert response.headers["x-ms-error-code"] == code


def test_a_huge_body_is_refused_with_a_coded_413(server: dict[str, str]) -> None:
    huge = b'{"series": [' + b" " * (11 * 1024 * 1024) + b"]}"
    response = requests.post(
        f"{server['endpoint']}/anomalydetector/v1.1/timeseries/entire/detect",
        data=huge,
        headers={"Content-Type": "application/json", "Ocp-Apim-Subscription-Key": KEY},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["code"] == "PayloadTooLarge"


def test_bad_multivariate_requests_are_400s(
    client: AnomalyDetectorClient, server: dict[str, str], energy_url: str
) -> None:
    headers = {"Ocp-Apim-Subscription-Key": KEY}
    models = f"{server['endpoint']}/anomalydetector/v1.1/multivariate/models"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"dataSource": energy_url, "slidingWindow": 5}, "InvalidSlidingWindow"),
        ({"dataSource": energy_url, "slidingWindow": "200"}, "InvalidSlidingWindow"),
        ({"dataSource": energy_url, "startTime": 17}, "InvalidStartTime"),
        (
            {"dataSource": energy_url, "alignPolicy": {"fillNAMethod": "Cubic"}},
            "InvalidAlignPolicy",
        ),
        ({"dataSource": 42}, "InvalidDataSource"),
        ({}, "InvalidDataSource"),
        (
            {"dataSource": energy_url.replace("energy-data.zip", "missing.zip")},
            "DataSourceNotFound",
        ),
        ({"dataSource": energy_url.replace(".zip", ".parquet")}, "UnsupportedFormat"),
    ]
    for body, code in cases:
        response = requests.post(models, json=body, headers=headers, timeout=10)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["code"] == code, body
    for query in ("skip=-1", "top=0", "top=many", "top=100000"):
        response = requests.get(f"{models}?{query}", headers=headers, timeout=10)
        assert response.status_code == 400, query
        assert response.json()["code"] == "InvalidParameter"
    unknown = str(uuid.uuid4())
    for path in (f"{unknown}:detect-batch", f"{unknown}:detect-last"):
        response = requests.post(f"{models}/{path}", json={}, headers=headers, timeout=10)
        assert response.status_code == 404
        assert response.json()["code"] == "ModelNotExist"
    response = requests.get(f"{models}/..%2F..%2Fsecrets", headers=headers, timeout=10)
    assert response.status_code == 404


@pytest.mark.parametrize(
    "source",
    [
        "https://evil.example.com/data/energy.zip",
        "http://169.254.169.254/latest/meta-data/energy.zip",
        "http://10.0.0.4/devstoreaccount1/data/energy.zip",
        "http://localhost:1/devstoreaccount1/data/energy.zip",
        "http://[::1]/devstoreaccount1/data/energy.zip",
        "file:///etc/passwd",
        "/etc/passwd",
        "ftp://example.com/energy.zip",
        "gopher://127.0.0.1:6379/_INFO",
    ],
)
def test_data_sources_outside_the_storage_account_are_refused(
    server: dict[str, str], energy_url: str, source: str
) -> None:
    headers = {"Ocp-Apim-Subscription-Key": KEY}
    for version, field in (("v1.1", "dataSource"), ("v1.1-preview.1", "source")):
        response = requests.post(
            f"{server['endpoint']}/anomalydetector/{version}/multivariate/models",
            json={field: source, "startTime": TRAIN[0], "endTime": TRAIN[1]},
            headers=headers,
            timeout=10,
        )
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "InvalidDataSource"
        assert "refused" in response.json()["message"]


def test_another_port_on_the_storage_host_is_refused(
    server: dict[str, str], energy_url: str
) -> None:
    other = energy_url.replace("127.0.0.1:", "127.0.0.1:1", 1)
    response = requests.post(
        f"{server['endpoint']}/anomalydetector/v1.1/multivariate/models",
        json={"dataSource": other},
        headers={"Ocp-Apim-Subscription-Key": KEY},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidDataSource"


def test_a_bad_dataset_gives_a_failed_model_that_refuses_detection(
    client: AnomalyDetectorClient, server: dict[str, str], azurite: str, energy_zip: Path
) -> None:
    with zipfile.ZipFile(energy_zip) as source:
        power = source.read("power.csv")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("power.csv", power)  # one variable: not a multivariate dataset
    service = BlobServiceClient.from_connection_string(azurite)
    container = service.get_container_client(server["TRAINING_CONTAINER"])
    if not container.exists():
        container.create_container()
    url = str(container.upload_blob("one-variable.zip", buffer.getvalue(), overwrite=True).url)

    model = client.train_multivariate_model(
        ModelInfo(
            data_source=url,
            start_time=datetime.fromisoformat(TRAIN[0]),
            end_time=datetime.fromisoformat(TRAIN[1]),
        )
    )
    failed: Any = client.get_multivariate_model(model.model_id)
    assert failed.model_info.status == "FAILED"
    assert failed.model_info.errors[0].code
    assert failed.model_info.errors[0].message

    headers = {"Ocp-Apim-Subscription-Key": KEY}
    base = f"{server['endpoint']}/anomalydetector"
    detect = requests.post(
        f"{base}/v1.1/multivariate/models/{model.model_id}:detect-batch",
        json={"dataSource": url, "startTime": DETECT[0], "endTime": DETECT[1]},
        headers=headers,
        timeout=10,
    )
    assert detect.status_code == 400
    assert detect.json()["code"] == "ModelNotReady"
    export = requests.get(
        f"{base}/v1.1-preview.1/multivariate/models/{model.model_id}/export",
        headers=headers,
        timeout=10,
    )
    assert export.status_code == 400
    assert export.json()["code"] == "ModelNotReady"
    client.delete_multivariate_model(model.model_id)


@pytest.fixture(scope="module")
def ready_model(server: dict[str, str], azurite: str) -> dict[str, str]:
    """A READY model trained through the API (a small sliding window, for speed)."""
    data = sample_path("energy-data.zip").read_bytes()
    service = BlobServiceClient.from_connection_string(azurite)
    container = service.get_container_client(server["TRAINING_CONTAINER"])
    if not container.exists():
        container.create_container()
    url = str(container.upload_blob("energy-fuzz.zip", data, overwrite=True).url)
    models = f"{server['endpoint']}/anomalydetector/v1.1/multivariate/models"
    headers = {"Ocp-Apim-Subscription-Key": KEY}
    body: dict[str, Any] = {
        "dataSource": url,
        "startTime": TRAIN[0],
        "endTime": TRAIN[1],
        "slidingWindow": 60,
    }
    model_id = requests.post(models, json=body, headers=headers, timeout=30).json()["modelId"]
    status = wait_for(
        lambda: requests.get(f"{models}/{model_id}", headers=headers, timeout=10).json()[
            "modelInfo"
        ]["status"]
    )
    assert status == "READY"
    return {"url": url, "model": f"{models}/{model_id}"}


def good_variables(points: int = 80) -> list[dict[str, Any]]:
    stamps = [f"2006-12-19T{8 + i // 60:02d}:{i % 60:02d}:00Z" for i in range(points)]
    return [
        {"variable": name, "timestamps": stamps, "values": [float(i % 5) for i in range(points)]}
        for name in ("kitchen", "laundryRoom", "power", "voltage")
    ]


FUZZ_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["2006-12-19T00:00:00Z", "kitchen", "power", "2006-12-19T01:00:00Z"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["variable", "timestamps", "values", "startTime", "x"]), children
        )
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    route=st.sampled_from(["detect-last", "detect-batch", "variable"]),
    field=st.sampled_from(
        ["variables", "topContributorCount", "dataSource", "startTime", "endTime"]
    ),
    index=st.integers(0, 3),
    part=st.sampled_from(["variable", "timestamps", "values"]),
    value=FUZZ_VALUES,
)
def test_no_multivariate_body_gives_a_server_error(
    ready_model: dict[str, str], route: str, field: str, index: int, part: str, value: Any
) -> None:
    headers = {"Ocp-Apim-Subscription-Key": KEY}
    if route == "variable":
        variables = good_variables()
        variables[index][part] = value
        body: dict[str, Any] = {"variables": variables}
        route = "detect-last"
    elif route == "detect-last":
        body = {"variables": good_variables(), "topContributorCount": 3, field: value}
    else:
        body = {
            "dataSource": ready_model["url"],
            "startTime": DETECT[0],
            "endTime": "2006-12-19T01:00:00Z",
            field: value,
        }
    response = requests.post(f"{ready_model['model']}:{route}", json=body, headers=headers,
                             timeout=30)  # fmt: skip
    assert response.status_code in (200, 202, 400), response.text
    if response.status_code == 400:
        assert response.headers["x-ms-error-code"] == response.json()["code"]
