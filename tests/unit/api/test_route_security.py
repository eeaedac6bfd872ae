"""Every route of every version: no key or a wrong key is a 401, hostile ids never a 5xx.

The routes are read from the application itself, so a route added later is covered without
editing this file. Storage is never reached: a 401 is decided before the route runs, and the
hostile ids are refused by the id check (404) before the service is built.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator

import pytest
from starlette.exceptions import StarletteDeprecationWarning
from starlette.routing import Mount, Route

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2; httpx works the same here
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from shared.api.app import create_app
from shared.settings import Settings

KEY = "route-security-key"
#: Ids that must never reach storage or a path: traversal, encodings, control characters.
HOSTILE_IDS = [
    "..", "..%2F..%2Fsecrets", "%2e%2e", "a" * 300, "x%00y", "x%0Ay", "x%0D%0AHost:evil",
    "%C0%AE%C0%AE", "model id", "id'--", "$(reboot)", "<script>",
]  # fmt: skip


def app_routes() -> list[tuple[str, str]]:
    """``(method, path)`` of every route, path parameters filled with a placeholder."""
    app = create_app(
        Settings.from_env(
            {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "METERWATCH_API_KEYS": KEY}
        )
    )
    found = []
    for mount in app.routes:
        assert isinstance(mount, Mount)
        for route in mount.routes:
            assert isinstance(route, Route)
            for method in sorted(route.methods or ()):
                if method != "HEAD":
                    found.append((method, mount.path + route.path))
    return found


ROUTES = app_routes()


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    env = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "METERWATCH_API_KEYS": KEY}
    with TestClient(create_app(Settings.from_env(env))) as test_client:
        yield test_client


def test_every_published_version_is_served() -> None:
    roots = {"/".join(path.split("/")[1:3]) for _, path in ROUTES}
    assert roots == {
        "anomalydetector/v1.0",
        "anomalydetector/v1.1-preview",
        "anomalydetector/v1.1-preview.1",
        "anomalydetector/v1.1",
        "meterwatch/v1",
    }


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("key", [None, "", "wrong", KEY + " ", KEY[:-1], KEY.upper()])
def test_every_route_needs_the_key(
    client: TestClient, method: str, path: str, key: str | None
) -> None:
    url = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path)
    headers = {} if key is None else {"Ocp-Apim-Subscription-Key": key}
    response = client.request(method, url, headers=headers, json={})
    assert response.status_code == 401, (method, url, response.text)
    assert response.headers["x-ms-error-code"] == "Unauthorized"


ID_ROUTES = [(m, p) for m, p in ROUTES if "{modelId}" in p or "{resultId}" in p]


@pytest.mark.parametrize(("method", "path"), ID_ROUTES)
@pytest.mark.parametrize("hostile", HOSTILE_IDS)
def test_hostile_ids_are_a_coded_4xx(
    client: TestClient, method: str, path: str, hostile: str
) -> None:
    url = re.sub(r"\{[^}]+\}", hostile, path)
    response = client.request(method, url, headers={"Ocp-Apim-Subscription-Key": KEY}, json={})
    assert 400 <= response.status_code < 500, (method, url, response.status_code)
    assert response.headers["x-ms-error-code"] == response.json()["code"]
