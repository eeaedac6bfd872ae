"""The history and anomaly-log routes through the function app's HTTP function, in-process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import azure.functions as func
import pytest

from functions import api as api_functions
from shared.alerts import read_anomalies
from shared.history.compaction import compact
from shared.history.detection import run_scheduled_detection
from shared.settings import Settings, get_settings
from shared.storage.client import BlobStore
from shared.timefmt import format_timestamp
from tests.history_fleet import STEP, write_archive

KEY = "history-test-key"


@pytest.fixture
def api_env(function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("METERWATCH_API_KEYS", KEY)
    get_settings.cache_clear()
    api_functions._cache.clear()
    yield Settings.from_env({**function_env, "METERWATCH_API_KEYS": KEY})
    api_functions._cache.clear()


def request(path: str, query: dict[str, str], key: str | None = KEY) -> func.HttpRequest:
    headers = {} if key is None else {"Ocp-Apim-Subscription-Key": key}
    return func.HttpRequest(
        method="GET",
        url=f"http://localhost:7071/api/meterwatch/{path}?{urlencode(query)}",
        headers=headers,
        params=query,
        route_params={"path": path},
        body=b"",
    )


def call(app_functions: dict[str, Any], req: func.HttpRequest) -> tuple[int, Any]:
    function = app_functions["meterwatch_api"].get_user_function()
    response: func.HttpResponse = asyncio.run(function(req))
    return response.status_code, json.loads(response.get_body() or b"null")


def test_route_metadata(app_functions: dict[str, Any]) -> None:
    bindings = {
        b["type"]: b
        for b in json.loads(app_functions["meterwatch_api"].get_function_json())["bindings"]
    }
    assert bindings["httpTrigger"]["route"] == "meterwatch/{*path}"
    assert bindings["httpTrigger"]["methods"] == ["GET"]
    assert bindings["httpTrigger"]["authLevel"] == "ANONYMOUS"  # the app checks its keys


def test_history_and_anomalies_routes(api_env: Settings, app_functions: dict[str, Any]) -> None:
    store = BlobStore.from_settings(api_env)
    now = datetime.now(UTC)
    last = (now - timedelta(minutes=5)).timestamp() // STEP * STEP
    spike = last - 3600
    write_archive(
        store, api_env, now - timedelta(minutes=4), devices=1, spikes={("m0", spike): 50.0}
    )
    compact(store, api_env, now)
    start, end = format_timestamp(last - 6 * 3600), format_timestamp(last)
    status, body = call(app_functions, request("v1/history/m0/power", {"start": start, "end": end}))
    assert status == 200, body
    assert body["granularity"] == "minutely" and body["customInterval"] == 5
    assert len(body["series"]) == 6 * 12 + 1
    status, body = call(
        app_functions,
        request(
            "v1/history/m0/power", {"start": start, "end": end, "mode": "entire", "tail": "false"}
        ),
    )
    assert status == 200 and format_timestamp(spike) in [
        t for t, hit in zip(body["timestamps"], body["isAnomaly"], strict=True) if hit
    ]
    run_scheduled_detection(store, api_env, now)
    logged = read_anomalies(store, last - 86_400, settings=api_env)
    assert logged
    status, body = call(
        app_functions,
        request("v1/anomalies", {"since": format_timestamp(last - 86_400), "deviceId": "m0"}),
    )
    assert status == 200
    assert body["count"] == len(logged) and [a["id"] for a in body["anomalies"]] == [
        a.id for a in logged
    ]


@pytest.mark.parametrize(
    ("path", "query", "key", "status", "code"),
    [
        ("v1/anomalies", {"since": "2026-11-01T00:00:00Z"}, None, 401, None),
        ("v1/anomalies", {"since": "2026-11-01T00:00:00Z"}, "wrong", 401, None),
        ("v1/anomalies", {}, KEY, 400, "MissingParameter"),
        ("v1/anomalies", {"since": "soon"}, KEY, 400, None),
        (
            "v1/history/m0/power",
            {"start": "2026-11-02T00:00:00Z", "end": "2026-11-01T00:00:00Z"},
            KEY,
            400,
            "InvalidHistoryRange",
        ),
        (
            "v1/history/m0/power",
            {"start": "2026-11-01T00:00:00Z", "end": "2026-11-01T01:00:00Z", "mode": "last"},
            KEY,
            400,
            "InvalidMode",
        ),
        (  # a path that leaves the route never reaches storage
            "v1/history/..%2F..%2Fetc/power",
            {"start": "2026-11-01T00:00:00Z", "end": "2026-11-01T01:00:00Z"},
            KEY,
            404,
            "NotFound",
        ),
        (  # an id outside the name alphabet is refused before any blob name is built
            "v1/history/m0%20x/power",
            {"start": "2026-11-01T00:00:00Z", "end": "2026-11-01T01:00:00Z"},
            KEY,
            400,
            None,
        ),
        (
            "v1/history/m0/power",
            {"start": "2026-11-01T00:00:00Z", "end": "2026-11-01T01:00:00Z"},
            KEY,
            400,
            "InvalidSeries",
        ),
        ("v1/nothing", {}, KEY, 404, "NotFound"),
    ],
)
def test_bad_requests_are_coded(
    api_env: Settings,
    app_functions: dict[str, Any],
    path: str,
    query: dict[str, str],
    key: str | None,
    status: int,
    code: str | None,
) -> None:
    got, body = call(app_functions, request(path, query, key))
    assert got == status, body
    assert set(body) == {"code", "message"}
    if code is not None:
        assert body["code"] == code
