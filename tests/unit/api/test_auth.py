"""Keys, unknown routes and the error shape of the API (no storage needed)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2; httpx works the same here
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from shared.api.app import create_app
from shared.api.auth import KeyRing
from shared.errors import ConfigurationError
from shared.settings import Settings

BASE = "/anomalydetector/v1.1"
BODY = {
    "series": [
        {"timestamp": f"2026-11-02T00:{i:02d}:00Z", "value": float(i % 5)} for i in range(30)
    ],
    "granularity": "minutely",
}


def settings_with(keys: str | None) -> Settings:
    env = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    if keys is not None:
        env["METERWATCH_API_KEYS"] = keys
    return Settings.from_env(env)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(settings_with("first-key, second-key"))) as test_client:
        yield test_client


@pytest.mark.parametrize("keys", [None, "", " , ,"])
def test_the_api_refuses_to_start_without_a_key(keys: str | None) -> None:
    with pytest.raises(ConfigurationError) as caught:
        create_app(settings_with(keys))
    assert "METERWATCH_API_KEYS" in caught.value.message


@pytest.mark.parametrize("headers", [{}, {"Ocp-Apim-Subscription-Key": "wrong"},
                                     {"Ocp-Apim-Subscription-Key": ""},
                                     {"Ocp-Apim-Subscription-Key": "first-key, second-key"},
                                     {"Ocp-Apim-Subscription-Key": "first-ke"},
                                     {"Ocp-Apim-Subscription-Key": "first-key "}])  # fmt: skip
def test_missing_or_wrong_keys_get_401(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post(f"{BASE}/timeseries/entire/detect", json=BODY, headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "Unauthorized"
    assert response.headers["x-ms-error-code"] == "Unauthorized"
    assert "Ocp-Apim-Subscription-Key" in response.json()["message"]


@pytest.mark.parametrize("key", ["first-key", "second-key"])
def test_every_configured_key_is_accepted(client: TestClient, key: str) -> None:
    response = client.post(
        f"{BASE}/timeseries/entire/detect", json=BODY, headers={"ocp-apim-subscription-key": key}
    )
    assert response.status_code == 200


def test_unknown_routes_need_a_key_too(client: TestClient) -> None:
    assert client.get(f"{BASE}/nothing-here").status_code == 401


def test_unknown_routes_are_coded_404s(client: TestClient) -> None:
    response = client.get(
        "/anomalydetector/v9/timeseries", headers={"Ocp-Apim-Subscription-Key": "first-key"}
    )
    assert response.status_code == 404
    assert response.headers["x-ms-error-code"] == "NotFound"
    assert "/anomalydetector/v1.1" in response.json()["message"]


def test_wrong_methods_are_coded_405s(client: TestClient) -> None:
    response = client.get(
        f"{BASE}/timeseries/entire/detect", headers={"Ocp-Apim-Subscription-Key": "first-key"}
    )
    assert response.status_code == 405
    assert response.json()["code"] == "MethodNotAllowed"


def test_key_ring_compares_whole_keys() -> None:
    ring = KeyRing(["abc", "def"])
    assert ring.accepts("abc") and ring.accepts(b"def")
    assert not ring.accepts("ab") and not ring.accepts("abcd") and not ring.accepts(None)
    assert not ring.accepts("ABC")
