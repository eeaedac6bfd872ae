"""Shared fixtures: a real Azurite per test session, settings pointing at it, sample data paths."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# The well-known Azurite development account (public, documented by Microsoft; not a secret).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _azurite_binary() -> str:
    local = REPO / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if found:
        return found
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=REPO, check=True)
    return str(local)


def _wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"Azurite did not answer on 127.0.0.1:{port} within {timeout}s")


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start Azurite on free loopback ports; yield its storage connection string."""
    blob, queue, table = _free_port(), _free_port(), _free_port()
    workdir = tmp_path_factory.mktemp("azurite")
    proc = subprocess.Popen(
        [
            _azurite_binary(),
            "--silent",
            "--inMemoryPersistence",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--blobHost", "127.0.0.1", "--blobPort", str(blob),
            "--queueHost", "127.0.0.1", "--queuePort", str(queue),
            "--tableHost", "127.0.0.1", "--tablePort", str(table),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=workdir,
    )  # fmt: skip
    try:
        _wait_for_port(blob)
        yield (
            "DefaultEndpointsProtocol=http;"
            f"AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{blob}/{DEV_ACCOUNT};"
            f"QueueEndpoint=http://127.0.0.1:{queue}/{DEV_ACCOUNT};"
            f"TableEndpoint=http://127.0.0.1:{table}/{DEV_ACCOUNT};"
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def unique() -> str:
    """A short unique suffix so tests sharing one Azurite never see each other's blobs."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def app_env(azurite: str, unique: str) -> dict[str, str]:
    """App settings for one test: Azurite storage and containers of its own."""
    return {
        "AzureWebJobsStorage": azurite,
        "RAW_CONTAINER": f"raw-{unique}",
        "RESULTS_CONTAINER": f"results-{unique}",
        "DEADLETTER_CONTAINER": f"deadletter-{unique}",
        "TRAINING_CONTAINER": f"training-{unique}",
        "MODELS_CONTAINER": f"models-{unique}",
    }


@pytest.fixture
def power_csv() -> Path:
    """The tutorial's univariate sample (read from the team folder, never copied)."""
    path = SHARED_DATA / "power.csv"
    if not path.exists():
        pytest.skip(f"sample data not found at {path}")
    return path


@pytest.fixture
def energy_zip() -> Path:
    """The tutorial's multivariate sample zip (read from the team folder, never copied)."""
    path = SHARED_DATA / "energy-data.zip"
    if not path.exists():
        pytest.skip(f"sample data not found at {path}")
    return path


os.environ.setdefault("MPLBACKEND", "Agg")
