"""The univariate v1.1 routes in-process: same answers as the contract, coded 4xx for bad input."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2; httpx works the same here
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from shared.api.app import RoutePrefixStripper, create_app
from shared.settings import Settings
from shared.univariate.contract import detect_changepoint_v11, detect_entire_v11, detect_last_v11

KEY = "unit-test-key"
HEADERS = {"Ocp-Apim-Subscription-Key": KEY}
BASE = "/anomalydetector/v1.1"
START = datetime(2026, 11, 2, tzinfo=UTC)


def series_body(n: int = 300, spike_at: int | None = 250, **extra: Any) -> dict[str, Any]:
    rng = np.random.default_rng(3)
    values = 10 + np.sin(np.arange(n) * 2 * np.pi / 60) + 0.1 * rng.standard_normal(n)
    if spike_at is not None:
        values[spike_at] += 8
    return {
        "series": [
            {
                "timestamp": (START + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "value": float(v),
            }
            for i, v in enumerate(values)
        ],
        "granularity": "minutely",
        **extra,
    }


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings = Settings.from_env(
        {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "METERWATCH_API_KEYS": KEY}
    )
    with TestClient(create_app(settings, max_body_bytes=256 * 1024)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("route", "contract"),
    [
        ("entire", detect_entire_v11),
        ("last", detect_last_v11),
        ("changepoint", detect_changepoint_v11),
    ],
)
def test_routes_answer_as_the_contract(client: TestClient, route: str, contract: Any) -> None:
    body = series_body()
    response = client.post(f"{BASE}/timeseries/{route}/detect", json=body, headers=HEADERS)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == json.loads(json.dumps(contract(body)))


def test_entire_finds_the_spike_through_the_api(client: TestClient) -> None:
    response = client.post(f"{BASE}/timeseries/entire/detect", json=series_body(), headers=HEADERS)
    flagged = np.flatnonzero(response.json()["isAnomaly"])
    assert 250 in flagged
    assert len(response.json()["expectedValues"]) == 300


def test_last_detect_flags_a_final_spike(client: TestClient) -> None:
    response = client.post(
        f"{BASE}/timeseries/last/detect", json=series_body(spike_at=299), headers=HEADERS
    )
    assert response.status_code == 200
    assert response.json()["isAnomaly"] is True
    assert response.json()["isPositiveAnomaly"] is True


def test_preview_last_detect_route_is_served(client: TestClient) -> None:
    body = series_body(spike_at=299)
    preview = client.post(
        "/anomalydetector/v1.1-preview.1/timeseries/last/detect", json=body, headers=HEADERS
    )
    assert preview.status_code == 200
    assert (
        preview.json()
        == client.post(f"{BASE}/timeseries/last/detect", json=body, headers=HEADERS).json()
    )


def test_a_route_prefix_is_stripped_and_kept_as_root_path() -> None:
    settings = Settings.from_env(
        {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "METERWATCH_API_KEYS": KEY}
    )
    with TestClient(RoutePrefixStripper(create_app(settings))) as test_client:
        response = test_client.post(
            f"/api{BASE}/timeseries/entire/detect", json=series_body(), headers=HEADERS
        )
    assert response.status_code == 200
    assert len(response.json()["isAnomaly"]) == 300


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    document: dict[str, Any] = response.json()
    assert set(document) == {"code", "message"}
    assert document["code"] == code
    assert response.headers["x-ms-error-code"] == code
    assert document["message"]
    return document


def test_eleven_points_is_a_400_with_the_service_code(client: TestClient) -> None:
    body = series_body(n=11, spike_at=None)
    for route in ("entire", "last", "changepoint"):
        response = client.post(f"{BASE}/timeseries/{route}/detect", json=body, headers=HEADERS)
        error = assert_error(response, 400, "InvalidSeries")
        assert "12" in error["message"]


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{not json", "InvalidJsonFormat"),
        (b"", "InvalidJsonFormat"),
        (b"   ", "InvalidJsonFormat"),
        (b"[1, 2, 3]", "InvalidJsonFormat"),
        (b'"series"', "InvalidJsonFormat"),
        (b"null", "InvalidJsonFormat"),
        (b'{"series": [{"timestamp": "2026-01-01T00:00:00Z", "value": NaN}]}', "InvalidJsonFormat"),
        (b'{"series": Infinity}', "InvalidJsonFormat"),
        (b"\xff\xfe{}", "InvalidJsonFormat"),
        (b"[" * 100_000 + b"]" * 100_000, "InvalidJsonFormat"),
        (b'{"granularity": "minutely"}', "RequiredSeries"),
        (b'{"series": {}, "granularity": "minutely"}', "InvalidSeries"),
        (b'{"series": "abc", "granularity": "minutely"}', "InvalidSeries"),
        (b'{"series": [1,2,3,4,5,6,7,8,9,10,11,12], "granularity": "minutely"}', "InvalidSeries"),
    ],
)
def test_malformed_bodies_are_400s(client: TestClient, content: bytes, code: str) -> None:
    response = client.post(
        f"{BASE}/timeseries/entire/detect",
        content=content,
        headers={**HEADERS, "content-type": "application/json"},
    )
    assert_error(response, 400, code)


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("granularity", 5, "InvalidGranularity"),
        ("granularity", ["minutely"], "InvalidGranularity"),
        ("granularity", {"unit": "minute"}, "InvalidGranularity"),
        ("imputeFixedValue", "zero", "InvalidImputeValue"),
        ("imputeFixedValue", [1.0], "InvalidImputeValue"),
        ("sensitivity", "high", "InvalidSensitivity"),
        ("sensitivity", 1.5, "InvalidSensitivity"),
        ("sensitivity", True, "InvalidSensitivity"),
        ("maxAnomalyRatio", "0.1", "InvalidMaxAnomalyRatio"),
        ("period", {"value": 3}, "InvalidPeriod"),
        ("customInterval", -3, "InvalidCustomInterval"),
        ("customInterval", 3e306, "InvalidCustomInterval"),
        ("customInterval", 2**31, "InvalidCustomInterval"),
        ("imputeMode", 7, "InvalidImputeMode"),
        ("threshold", [0.5], "InvalidThreshold"),
        ("stableTrendWindow", "x", "InvalidStableTrendWindow"),
    ],
)
def test_wrong_parameter_types_are_400s(
    client: TestClient, field: str, value: Any, code: str
) -> None:
    route = "changepoint" if field in ("threshold", "stableTrendWindow") else "entire"
    body = series_body(**{field: value})
    response = client.post(f"{BASE}/timeseries/{route}/detect", json=body, headers=HEADERS)
    assert_error(response, 400, code)


@pytest.mark.parametrize(
    "point",
    [
        {"timestamp": "2026-11-02T00:05:00Z", "value": "twelve"},
        {"timestamp": "2026-11-02T00:05:00Z", "value": None},
        {"timestamp": "2026-11-02T00:05:00Z", "value": [1]},
        {"timestamp": "2026-11-02T00:05:00Z", "value": True},
        {"timestamp": 12345, "value": 1.0},
        {"timestamp": "yesterday", "value": 1.0},
        {"timestamp": ["2026"], "value": 1.0},
        "a string",
        7,
        None,
    ],
)
def test_wrong_point_types_are_400s(client: TestClient, point: Any) -> None:
    body = series_body()
    body["series"][5] = point
    response = client.post(f"{BASE}/timeseries/entire/detect", json=body, headers=HEADERS)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "InvalidSeries"


def test_an_overflowing_number_is_a_400(client: TestClient) -> None:
    body = json.dumps(series_body()).replace('"value": 10.', '"value": 1e400, "x": 10.', 1)
    response = client.post(
        f"{BASE}/timeseries/entire/detect", content=body.encode(), headers=HEADERS
    )
    assert_error(response, 400, "InvalidJsonFormat")  # it does not fit a double


def test_too_many_points_is_a_400(client: TestClient) -> None:
    body = series_body(n=8641, spike_at=None)
    # The unit app has a 256 KB limit; this body is larger, so use the default-limit app.
    settings = Settings.from_env(
        {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "METERWATCH_API_KEYS": KEY}
    )
    with TestClient(create_app(settings)) as default_client:
        response = default_client.post(
            f"{BASE}/timeseries/entire/detect", json=body, headers=HEADERS
        )
    error = assert_error(response, 400, "InvalidSeries")
    assert "8640" in error["message"].replace(",", "")


def test_a_body_over_the_limit_is_refused_before_it_is_read(client: TestClient) -> None:
    huge = b'{"series": [' + b'{"timestamp": "2026-11-02T00:00:00Z", "value": 1.0},' * 10_000
    response = client.post(f"{BASE}/timeseries/entire/detect", content=huge, headers=HEADERS)
    error = assert_error(response, 413, "PayloadTooLarge")
    assert "MB" in error["message"]


def test_a_streamed_body_over_the_limit_is_refused(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(1000):
            yield b" " * 1024

    response = client.post(f"{BASE}/timeseries/entire/detect", content=chunks(), headers=HEADERS)
    assert_error(response, 413, "PayloadTooLarge")


def test_a_lying_content_length_is_a_400(client: TestClient) -> None:
    response = client.post(
        f"{BASE}/timeseries/entire/detect",
        content=b"{}",
        headers={**HEADERS, "content-length": "two"},
    )
    assert response.status_code in (400, 413)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = (
    "series",
    "granularity",
    "customInterval",
    "period",
    "sensitivity",
    "maxAnomalyRatio",
    "imputeMode",
    "imputeFixedValue",
    "stableTrendWindow",
    "threshold",
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    field=st.sampled_from(FIELDS),
    value=json_values,
    route=st.sampled_from(("entire", "last", "changepoint")),
)
def test_no_field_value_gives_a_server_error(
    client: TestClient, field: str, value: Any, route: str
) -> None:
    body = series_body(n=40, spike_at=None, **{field: value})
    response = client.post(f"{BASE}/timeseries/{route}/detect", json=body, headers=HEADERS)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert response.headers["x-ms-error-code"] == response.json()["code"]


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(index=st.integers(0, 39), point=json_values)
def test_no_point_value_gives_a_server_error(client: TestClient, index: int, point: Any) -> None:
    body = series_body(n=40, spike_at=None)
    body["series"][index] = point
    response = client.post(f"{BASE}/timeseries/entire/detect", json=body, headers=HEADERS)
    assert response.status_code in (200, 400), response.text
