"""Training from a blob folder and, when allowed, from local paths (in-process API over Azurite)."""

from __future__ import annotations

import base64
import json
import time
import warnings
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from azure.storage.blob import BlobSasPermissions, generate_blob_sas
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.exceptions import StarletteDeprecationWarning

from shared.api.app import create_app
from shared.multivariate.local_runner import in_process_service
from shared.settings import Settings
from shared.storage.client import DEV_ACCOUNT, DEV_KEY, BlobRef, BlobStore
from shared.storage.names import MATERIALIZED_PREFIX

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2; httpx works the same here
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient


KEY = "datasource-key"
HEADERS = {"Ocp-Apim-Subscription-Key": KEY}
MODELS = "/anomalydetector/v1.1/multivariate/models"
WINDOW = {"startTime": "2006-12-16T17:24:00Z", "endTime": "2006-12-18T02:43:00Z"}


@pytest.fixture
def api(app_env: dict[str, str]) -> Iterator[tuple[TestClient, BlobStore, Settings]]:
    settings = Settings.from_env(
        {**app_env, "METERWATCH_API_KEYS": KEY, "API_ALLOW_LOCAL_PATHS": "true"}
    )
    store = BlobStore.from_settings(settings)
    service = in_process_service(settings, store)
    with TestClient(create_app(settings, store=store, multivariate=service)) as client:
        yield client, store, settings
    service.close()


def wait_ready(client: TestClient, model_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        model: dict[str, Any] = client.get(f"{MODELS}/{model_id}", headers=HEADERS).json()
        if model["modelInfo"]["status"] in ("READY", "FAILED") or time.monotonic() > deadline:
            return model
        time.sleep(0.1)


def variables_of(model: dict[str, Any]) -> list[str]:
    return sorted(s["variable"] for s in model["modelInfo"]["diagnosticsInfo"]["variableStates"])


def test_a_blob_folder_of_csvs_is_a_multitable_dataset(
    api: tuple[TestClient, BlobStore, Settings], energy_zip: Path
) -> None:
    client, store, settings = api
    with zipfile.ZipFile(energy_zip) as archive:
        for member in archive.namelist():
            store.put_bytes(
                BlobRef(settings.training_container, f"energy/{member}"), archive.read(member)
            )
    store.put_bytes(BlobRef(settings.training_container, "energy/notes.txt"), b"not a variable")
    store.put_bytes(
        BlobRef(settings.training_container, "energy/deeper/extra.csv"), b"timestamp,value\n"
    )
    url = f"{store.service.url}{settings.training_container}/energy/"
    response = client.post(MODELS, json={"dataSource": url, **WINDOW}, headers=HEADERS)
    assert response.status_code == 201, response.text
    model = wait_ready(client, response.json()["modelId"])
    assert model["modelInfo"]["status"] == "READY"
    assert variables_of(model) == ["kitchen", "laundryRoom", "power", "voltage"]
    packed = [n for n in store.list_names(settings.training_container, MATERIALIZED_PREFIX)]
    assert len(packed) == 1 and packed[0].endswith("/energy.zip")


def test_local_paths_when_allowed(
    api: tuple[TestClient, BlobStore, Settings], energy_zip: Path, tmp_path: Path
) -> None:
    client, store, settings = api
    response = client.post(
        MODELS, json={"dataSource": str(energy_zip), **WINDOW, "slidingWindow": 100},
        headers=HEADERS,
    )  # fmt: skip
    assert response.status_code == 201, response.text
    from_file = wait_ready(client, response.json()["modelId"])
    assert from_file["modelInfo"]["status"] == "READY"

    folder = tmp_path / "meters"
    folder.mkdir()
    with zipfile.ZipFile(energy_zip) as archive:
        archive.extractall(folder)
    response = client.post(
        MODELS, json={"dataSource": folder.as_uri(), **WINDOW, "slidingWindow": 100},
        headers=HEADERS,
    )  # fmt: skip
    assert response.status_code == 201, response.text
    from_folder = wait_ready(client, response.json()["modelId"])
    assert variables_of(from_folder) == variables_of(from_file)
    # Each local dataset was copied into the training container, where training reads it.
    assert len(list(store.list_names(settings.training_container, MATERIALIZED_PREFIX))) == 2

    missing = client.post(
        MODELS, json={"dataSource": str(tmp_path / "nothing.zip")}, headers=HEADERS
    )
    assert missing.status_code == 400
    assert missing.json()["code"] == "InvalidDataSource"
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    wrong = client.post(MODELS, json={"dataSource": str(text)}, headers=HEADERS)
    assert wrong.status_code == 400
    assert wrong.json()["code"] == "UnsupportedFormat"


# ------------------------------------------------------------------ the data-source policy


def sas_url(store: BlobStore, container: str, name: str, data: bytes, **sas: Any) -> str:
    """``data`` uploaded to ``container/name``; its URL with a read SAS (Azurite checks it)."""
    store.put_bytes(BlobRef(container, name), data)
    token = generate_blob_sas(
        DEV_ACCOUNT, container, name, account_key=sas.pop("key", DEV_KEY),
        permission=BlobSasPermissions(read=True), expiry=datetime.now(UTC) + timedelta(hours=1),
    )  # fmt: skip
    return f"{store.service.url}{container}/{quote(name)}?{token}"


def test_a_sas_url_is_read_with_its_sas_and_the_sas_is_kept_nowhere(
    api: tuple[TestClient, BlobStore, Settings], energy_zip: Path, unique: str
) -> None:
    client, store, settings = api
    url = sas_url(store, f"caller-{unique}", "energy.zip", energy_zip.read_bytes())
    token = url.split("?", 1)[1]
    response = client.post(MODELS, json={"dataSource": url, **WINDOW, "slidingWindow": 100},
                           headers=HEADERS)  # fmt: skip
    assert response.status_code == 201, response.text
    model_id = response.json()["modelId"]
    assert wait_ready(client, model_id)["modelInfo"]["status"] == "READY"
    detect = client.post(
        f"{MODELS}/{model_id}:detect-batch",
        json={"dataSource": url, "startTime": "2006-12-19T00:00:00Z",
              "endTime": "2006-12-19T02:00:00Z"},
        headers=HEADERS,
    )  # fmt: skip
    assert detect.status_code == 202, detect.text
    result_url = detect.headers["Operation-Location"]
    deadline = time.monotonic() + 60
    while client.get(result_url, headers=HEADERS).json()["summary"]["status"] not in (
        "READY", "FAILED"
    ) and time.monotonic() < deadline:  # fmt: skip
        time.sleep(0.1)
    result = client.get(result_url, headers=HEADERS).json()
    assert result["summary"]["status"] == "READY"
    assert result["summary"]["setupInfo"]["dataSource"] == url.split("?")[0]
    # Not in any answer, and not in any stored document of the app's containers.
    for answer in (response.text, detect.text, json.dumps(result),
                   client.get(f"{MODELS}/{model_id}", headers=HEADERS).text):  # fmt: skip
        assert token not in answer and "sig=" not in answer
    for container in (settings.models_container, settings.results_container,
                      settings.training_container):  # fmt: skip
        for name in store.list_names(container):
            data = store.get_bytes(BlobRef(container, name))
            assert token.encode() not in data and b"sig=" not in data, f"{container}/{name}"


def test_a_sas_that_does_not_grant_read_is_refused(
    api: tuple[TestClient, BlobStore, Settings], energy_zip: Path, unique: str
) -> None:
    client, store, _ = api
    forged_key = base64.b64encode(b"not the account key").decode()
    url = sas_url(store, f"caller-{unique}", "energy.zip", energy_zip.read_bytes(), key=forged_key)
    response = client.post(MODELS, json={"dataSource": url}, headers=HEADERS)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "InvalidDataSource"
    assert "does not grant read" in response.json()["message"]
    assert "sig=" not in response.text


def test_other_containers_are_refused_without_echoing_their_content(
    api: tuple[TestClient, BlobStore, Settings], unique: str
) -> None:
    """A dataSource in another container (a planted secret) is a 400 that never echoes it."""
    client, store, _ = api
    secret = b"timestamp,value\nmaster-key-0123456789,abcdef\n"
    container = f"azure-webjobs-secrets-{unique}"
    store.put_bytes(BlobRef(container, "meterwatch/keys.csv"), secret)
    for source in (f"{store.service.url}{container}/meterwatch/keys.csv",
                   f"{store.service.url}{container}/meterwatch/"):  # fmt: skip
        response = client.post(MODELS, json={"dataSource": source}, headers=HEADERS)
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "InvalidDataSource"
        assert "master-key" not in response.text and "abcdef" not in response.text
    listed = client.get(MODELS, params={"top": 100}, headers=HEADERS).json()
    assert "master-key" not in json.dumps(listed)


def test_every_train_call_is_a_new_model_unless_it_is_a_retry(
    api: tuple[TestClient, BlobStore, Settings], energy_zip: Path
) -> None:
    client, store, settings = api
    store.put_bytes(BlobRef(settings.training_container, "twice.zip"), energy_zip.read_bytes())
    body = {"dataSource": f"{store.service.url}{settings.training_container}/twice.zip",
            **WINDOW, "slidingWindow": 100}  # fmt: skip
    first = client.post(MODELS, json=body, headers=HEADERS).json()["modelId"]
    second = client.post(MODELS, json=body, headers=HEADERS).json()["modelId"]
    assert first != second  # the notebook's "models after training" count grows
    retry = {**HEADERS, "x-ms-client-request-id": "3b5e1c2a-retry"}
    third = client.post(MODELS, json=body, headers=retry).json()["modelId"]
    again = client.post(MODELS, json=body, headers=retry).json()["modelId"]
    assert third == again and third not in (first, second)
    for model_id in (first, second, third):
        assert wait_ready(client, model_id)["modelInfo"]["status"] == "READY"
    listed = client.get(MODELS, params={"top": 10000}, headers=HEADERS).json()
    assert {first, second, third} <= {m["modelId"] for m in listed["models"]}


def test_the_host_header_is_never_written_into_links(
    api: tuple[TestClient, BlobStore, Settings], energy_zip: Path
) -> None:
    client, store, settings = api
    store.put_bytes(BlobRef(settings.training_container, "host.zip"), energy_zip.read_bytes())
    body = {"dataSource": f"{store.service.url}{settings.training_container}/host.zip",
            **WINDOW, "slidingWindow": 100}  # fmt: skip
    evil = {**HEADERS, "Host": "evil.example.com"}
    for _ in range(2):
        response = client.post(MODELS, json=body, headers=evil)
        assert response.status_code == 201
        assert "evil" not in response.headers["Location"]
        assert response.headers["Location"].startswith("/anomalydetector/v1.1/multivariate/")
    page = client.get(MODELS, params={"top": 1}, headers=evil).json()
    assert page["nextLink"] and "evil" not in page["nextLink"]
    assert page["nextLink"].startswith("multivariate/models?skip=1&top=1")
    preview = client.post("/anomalydetector/v1.1-preview/multivariate/models",
                          json={"source": body["dataSource"], **WINDOW}, headers=evil)  # fmt: skip
    assert "evil" not in preview.headers["Location"]


def test_a_configured_public_url_is_the_base_of_links(
    app_env: dict[str, str], energy_zip: Path
) -> None:
    settings = Settings.from_env({**app_env, "METERWATCH_API_KEYS": KEY,
                                  "API_PUBLIC_URL": "https://meters.example.net/api"})  # fmt: skip
    store = BlobStore.from_settings(settings)
    store.put_bytes(BlobRef(settings.training_container, "p.zip"), energy_zip.read_bytes())
    service = in_process_service(settings, store)
    with TestClient(create_app(settings, store=store, multivariate=service)) as client:
        body = {"dataSource": f"{store.service.url}{settings.training_container}/p.zip",
                **WINDOW, "slidingWindow": 100}  # fmt: skip
        response = client.post(MODELS, json=body, headers={**HEADERS, "Host": "evil.example"})
        assert response.headers["Location"].startswith(
            "https://meters.example.net/api/anomalydetector/v1.1/multivariate/models/"
        )
    service.close()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    version=st.sampled_from(["v1.1", "v1.1-preview", "v1.1-preview.1"]),
    skip=st.one_of(st.none(), st.text(max_size=12), st.integers(-5, 20_000).map(str)),
    top=st.one_of(st.none(), st.text(max_size=12), st.integers(-5, 20_000).map(str)),
)
def test_any_list_parameters_are_a_page_or_a_coded_400(
    api: tuple[TestClient, BlobStore, Settings], version: str, skip: str | None, top: str | None
) -> None:
    client, _, _ = api
    dollar = "$" if version != "v1.1" else ""
    params = {f"{dollar}{k}": v for k, v in (("skip", skip), ("top", top)) if v is not None}
    response = client.get(
        f"/anomalydetector/{version}/multivariate/models", params=params, headers=HEADERS
    )
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert response.json()["code"] == "InvalidParameter"
    else:
        assert len(response.json()["models"]) <= 100
