"""Shared fixtures: a real Azurite per test session, settings pointing at it, sample data paths."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.demo.azurite import running_azurite

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def azurite() -> Iterator[str]:
    """A private Azurite on free loopback ports for the session; yields its connection string."""
    with running_azurite(reuse=False) as connection:
        yield connection


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
