"""Training from a blob folder and, when allowed, from local paths (in-process API over Azurite)."""

from __future__ import annotations

import time
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from shared.api.app import create_app
from shared.multivariate.local_runner import in_process_service
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
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
            store.put_bytes(BlobRef("folders", f"energy/{member}"), archive.read(member))
    store.put_bytes(BlobRef("folders", "energy/notes.txt"), b"not a variable")
    store.put_bytes(BlobRef("folders", "energy/deeper/extra.csv"), b"timestamp,value\n")
    url = f"{store.service.url}folders/energy/"
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
