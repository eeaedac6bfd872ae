"""Function-tier fixtures: app settings in the process environment, settings cache reset."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from shared.settings import get_settings


@pytest.fixture
def function_env(
    app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """Put one test's app settings in the environment, as the Functions host does."""
    for name, value in app_env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield app_env
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def app_functions() -> dict[str, Any]:
    """The real function app's functions, by name (as the host indexes them)."""
    import function_app

    return {f.get_function_name(): f for f in function_app.app.get_functions()}
