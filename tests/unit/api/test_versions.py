"""Every published API version's univariate routes, and numeric-string values."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2; httpx works the same here
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from shared.api.app import create_app
from shared.errors import DatasetError
from shared.multivariate.detection import parse_variables
from shared.settings import Settings
from shared.univariate.contract import detect_entire_v11
from tests.unit.api.test_univariate import HEADERS, KEY, series_body

ROOT = "/anomalydetector"
ROUTES = ("entire", "last", "changepoint")


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    env = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "METERWATCH_API_KEYS": KEY}
    with TestClient(create_app(Settings.from_env(env))) as test_client:
        yield test_client


def post(client: TestClient, version: str, route: str, body: Any) -> Any:
    return client.post(f"{ROOT}/{version}/timeseries/{route}/detect", json=body, headers=HEADERS)


def as_strings(body: dict[str, Any]) -> dict[str, Any]:
    """The Learn univariate unit's shape: every value sent as text."""
    series = [{**point, "value": repr(point["value"])} for point in body["series"]]
    return {**body, "series": series}


@pytest.mark.parametrize("route", ROUTES)
def test_numeric_string_values_give_the_answer_of_numbers(client: TestClient, route: str) -> None:
    body = series_body()
    numbers = post(client, "v1.1", route, body)
    strings = post(client, "v1.1", route, as_strings(body))
    assert strings.status_code == 200, strings.text
    assert strings.json() == numbers.json()


def test_the_learn_unit_request_shape_is_accepted(client: TestClient) -> None:
    series = [
        {"timestamp": f"2006-12-16T{17 + (24 + i) // 60:02d}:{(24 + i) % 60:02d}:00Z",
         "value": f"{0.418 + 0.01 * (i % 5):.3f}"}
        for i in range(30)
    ]  # fmt: skip
    series[20]["value"] = "4.216"
    response = post(client, "v1.1", "entire", {"series": series, "granularity": "minutely"})
    assert response.status_code == 200, response.text
    assert response.json()["isAnomaly"][20] is True


@pytest.mark.parametrize(
    "value", ["nan", "NaN", "inf", "-Infinity", "1e400", "0x10", "1_000", "12abc", "", " ", "1,5"]
)
def test_text_that_is_not_a_finite_decimal_stays_an_error(client: TestClient, value: str) -> None:
    body = series_body()
    body["series"][7]["value"] = value
    response = post(client, "v1.1", "entire", body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "InvalidSeries"
    assert "series[7].value" in response.json()["message"]


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.text(max_size=30))
def test_any_text_value_is_a_result_or_a_coded_400(client: TestClient, text: str) -> None:
    body = series_body(n=40, spike_at=None)
    body["series"][3]["value"] = text
    response = post(client, "v1.1", "last", body)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert response.json()["code"] == "InvalidSeries"


def test_v10_answers_in_the_v10_shape(client: TestClient) -> None:
    body = series_body()
    entire = post(client, "v1.0", "entire", body)
    assert entire.status_code == 200, entire.text
    reference = json.loads(json.dumps(detect_entire_v11(body)))
    assert "severity" not in entire.json()
    assert entire.json() == {k: v for k, v in reference.items() if k != "severity"}
    last = post(client, "v1.0", "last", body).json()
    assert set(last) == {
        "period", "suggestedWindow", "expectedValue", "upperMargin", "lowerMargin",
        "isAnomaly", "isNegativeAnomaly", "isPositiveAnomaly",
    }  # fmt: skip
    change = post(client, "v1.0", "changepoint", body)
    assert set(change.json()) == {"period", "isChangePoint", "confidenceScores"}


def test_v10_requires_granularity_and_timestamps(client: TestClient) -> None:
    body = series_body()
    del body["granularity"]
    response = post(client, "v1.0", "entire", body)
    assert response.status_code == 400
    assert response.json()["code"] == "RequiredGranularity"
    untimed = {"series": [{"value": p["value"]} for p in series_body()["series"]]}
    assert post(client, "v1.1", "entire", untimed).status_code == 200  # v1.1: granularity none
    assert post(client, "v1.0", "entire", untimed).json()["code"] == "RequiredGranularity"
    none = post(client, "v1.0", "entire", {**untimed, "granularity": "none"})
    assert none.status_code == 400 and none.json()["code"] == "InvalidGranularity"


def test_v10_ignores_fields_it_did_not_have(client: TestClient) -> None:
    body = series_body()
    del body["series"][100]  # a gap: imputation decides its value
    plain = post(client, "v1.0", "entire", body).json()
    fixed = post(client, "v1.0", "entire", {**body, "imputeMode": "fixed", "imputeFixedValue": 90})
    assert fixed.status_code == 200
    assert fixed.json() == plain


def test_v11_preview_takes_the_nested_impute_strategy(client: TestClient) -> None:
    body = series_body()
    del body["series"][100]
    flat = post(client, "v1.1", "entire", {**body, "imputeMode": "fixed", "imputeFixedValue": 90})
    nested = post(
        client,
        "v1.1-preview",
        "entire",
        {**body, "imputeStrategy": {"imputeMode": "fixed", "imputeValue": 90}},
    )
    assert nested.status_code == 200, nested.text
    assert "severity" not in nested.json()
    assert nested.json() == {k: v for k, v in flat.json().items() if k != "severity"}
    bad = post(client, "v1.1-preview", "entire", {**body, "imputeStrategy": "fixed"})
    assert bad.status_code == 400 and bad.json()["code"] == "InvalidImputeValue"


@pytest.mark.parametrize("route", ROUTES)
def test_v11_preview_1_is_the_v11_shape(client: TestClient, route: str) -> None:
    body = series_body()
    assert (
        post(client, "v1.1-preview.1", route, body).json()
        == post(client, "v1.1", route, body).json()
    )


def test_v10_has_no_multivariate_routes(client: TestClient) -> None:
    response = client.get(f"{ROOT}/v1.0/multivariate/models", headers=HEADERS)
    assert response.status_code == 404
    assert "v1.0" in response.json()["message"]


def test_multivariate_variable_values_take_numeric_text_too() -> None:
    stamps = [f"2006-12-19T08:{m:02d}:00Z" for m in range(3)]
    as_text = parse_variables([{"variable": "kitchen", "timestamps": stamps,
                                "values": ["1", " 0.5 ", "-2e1"]}])  # fmt: skip
    assert as_text["kitchen"].tolist() == [1.0, 0.5, -20.0]
    for bad in ("NaN", "0x1", "", True, None):
        with pytest.raises(DatasetError) as caught:
            parse_variables([{"variable": "kitchen", "timestamps": stamps,
                              "values": [1.0, bad, 2.0]}])  # fmt: skip
        assert caught.value.code == "InvalidVariables"
