"""The server of the SDK tests: ``meterwatch serve`` over Azurite, one for this package.

``test_sdk.py`` and ``test_sdk_errors.py`` share it (package scope: one child process, as when
they were one module); ``test_sdk_releases.py`` starts its own ``server`` for the pinned
releases.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.ai.anomalydetector import AnomalyDetectorClient
from azure.core.credentials import AzureKeyCredential
from azure.storage.blob import BlobServiceClient

from shared.cli.serve import serve_in_subprocess
from tests.integration.api.served import KEY


@pytest.fixture(scope="package")
def server(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``meterwatch serve`` over Azurite, with containers of its own; endpoint and settings."""
    suffix = uuid.uuid4().hex[:8]
    env = {
        "AzureWebJobsStorage": azurite,
        "METERWATCH_API_KEYS": f"other-key,{KEY}",
        "TRAINING_CONTAINER": f"training-{suffix}",
        "MODELS_CONTAINER": f"models-{suffix}",
        "RESULTS_CONTAINER": f"results-{suffix}",
        "MV_POLL_INTERVAL_SECONDS": "1",
    }
    with serve_in_subprocess(env, cwd=tmp_path_factory.mktemp("serve")) as endpoint:
        yield {"endpoint": endpoint, "data": f"data-{suffix}", **env}


@pytest.fixture(scope="package")
def client(server: dict[str, str]) -> Iterator[AnomalyDetectorClient]:
    with AnomalyDetectorClient(
        server["endpoint"], AzureKeyCredential(KEY), retry_total=0
    ) as sdk_client:
        yield sdk_client


@pytest.fixture
def energy_url(server: dict[str, str], azurite: str, energy_zip: Path) -> str:
    """energy-data.zip uploaded to Azurite; its blob URL (the ``dataSource``)."""
    service = BlobServiceClient.from_connection_string(azurite)
    container = service.get_container_client(server["TRAINING_CONTAINER"])
    if not container.exists():
        container.create_container()
    blob = container.upload_blob("energy-data.zip", energy_zip.read_bytes(), overwrite=True)
    return str(blob.url)
