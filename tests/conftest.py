"""Shared fixtures and the tier markers.

Every test gets the marker of its tier folder (``tests/unit`` → ``unit``, ``tests/integration``
→ ``integration``, ``tests/functions`` → ``functions``, ``tests/infra`` → ``infra``), so test
files do not repeat it. Fixtures: a real Azurite per test session, settings pointing at it, and
the sample data paths (missing sample data fails the test, see :mod:`tests.sample_data`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.demo.azurite import running_azurite
from tests.sample_data import sample_path

TESTS = Path(__file__).resolve().parent
#: Tier folders and their markers.
TIERS = ("unit", "integration", "functions", "infra")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its tier, from the first folder under ``tests/``."""
    for item in items:
        try:
            tier = item.path.relative_to(TESTS).parts[0]
        except ValueError:
            continue
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))


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
        "HISTORY_CONTAINER": f"history-{unique}",
    }


@pytest.fixture
def power_csv() -> Path:
    """The tutorial's univariate sample (read from the team folder, never copied)."""
    return sample_path("power.csv")


@pytest.fixture
def energy_zip() -> Path:
    """The tutorial's multivariate sample zip (read from the team folder, never copied)."""
    return sample_path("energy-data.zip")


os.environ.setdefault("MPLBACKEND", "Agg")
