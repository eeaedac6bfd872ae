"""The unchanged ``azure-ai-anomalydetector`` 3.0.0b6 client and raw ``requests`` vs ``serve``.

Every operation of the v1.1 table through the SDK, and the preview routes through raw
``requests`` calls shaped like the tutorial's, against one ``meterwatch serve`` over the
session's Azurite (the package's ``server`` fixture). The error paths (keys and unknown models
aside) are in ``test_sdk_errors.py``.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.ai.anomalydetector import AnomalyDetectorClient
from azure.ai.anomalydetector.models import (
    AlignMode,
    AlignPolicy,
    FillNAMethod,
    ModelInfo,
    MultivariateBatchDetectionOptions,
    MultivariateLastDetectionOptions,
    TimeGranularity,
    TimeSeriesPoint,
    UnivariateChangePointDetectionOptions,
    UnivariateDetectionOptions,
    VariableValues,
)
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)

from shared.cli.csvio import read_series_csv
from shared.multivariate.uploads import load_dataset
from shared.timefmt import format_timestamp
from shared.univariate.contract import detect_changepoint_v11, detect_entire_v11, detect_last_v11
from tests.integration.api.served import DETECT, KEY, TRAIN, WINDOW, wait_for


def power_points(
    power_csv: Path, count: int = WINDOW, spike_at: int | None = None
) -> list[TimeSeriesPoint]:
    """The first ``count`` readings of power.csv (0 to 0.72 kW), with an optional 5 kW spike."""
    series = read_series_csv(power_csv)
    values = series.values[:count].copy()
    if spike_at is not None:
        values[spike_at] = 5.0
    return [
        TimeSeriesPoint(timestamp=datetime.fromtimestamp(float(t), UTC), value=float(v))
        for t, v in zip(series.timestamps[:count], values, strict=True)
    ]


def sdk(model: object) -> Any:
    """An SDK model whose optional fields the server always fills (for attribute access)."""
    return model


def as_json(model: Any) -> Any:
    """An SDK model as the JSON the server sent (the models are mappings over it)."""
    if isinstance(model, dict) or hasattr(model, "keys"):
        return {key: as_json(model[key]) for key in model}
    if isinstance(model, list):
        return [as_json(item) for item in model]
    return model


def request_body(points: list[TimeSeriesPoint], **extra: Any) -> dict[str, Any]:
    series = []
    for point in points:
        assert point.timestamp is not None
        series.append(
            {"timestamp": format_timestamp(point.timestamp.timestamp()), "value": point.value}
        )
    return {
        "series": series,
        "granularity": "minutely",
        **extra,
    }


# ------------------------------------------------------------------------------ univariate


def test_univariate_entire_matches_the_embedded_engine(
    client: AnomalyDetectorClient, power_csv: Path
) -> None:
    points = power_points(power_csv, spike_at=1000)
    options = UnivariateDetectionOptions(
        series=points, granularity=TimeGranularity.PER_MINUTE, sensitivity=90
    )
    result: Any = client.detect_univariate_entire_series(options)
    assert len(result.is_anomaly) == WINDOW
    assert len(result.expected_values) == WINDOW
    assert result.is_anomaly[1000] and result.is_positive_anomaly[1000]
    assert sum(result.is_anomaly) < 0.25 * WINDOW
    assert as_json(result) == detect_entire_v11(request_body(points, sensitivity=90))


def test_univariate_last_matches_the_embedded_engine(
    client: AnomalyDetectorClient, power_csv: Path
) -> None:
    points = power_points(power_csv, 600, spike_at=599)
    result = client.detect_univariate_last_point(
        UnivariateDetectionOptions(series=points, granularity=TimeGranularity.PER_MINUTE)
    )
    assert result.is_anomaly is True
    assert result.suggested_window > 0
    assert as_json(result) == detect_last_v11(request_body(points))


def test_univariate_changepoint_matches_the_embedded_engine(
    client: AnomalyDetectorClient, power_csv: Path
) -> None:
    points = power_points(power_csv)
    result: Any = client.detect_univariate_change_point(
        UnivariateChangePointDetectionOptions(
            series=points, granularity=TimeGranularity.PER_MINUTE, threshold=0.9
        )
    )
    assert len(result.is_change_point) == WINDOW
    assert as_json(result) == detect_changepoint_v11(request_body(points, threshold=0.9))


def test_eleven_points_is_a_400_with_the_service_code(
    client: AnomalyDetectorClient, power_csv: Path
) -> None:
    options = UnivariateDetectionOptions(
        series=power_points(power_csv, 11), granularity=TimeGranularity.PER_MINUTE
    )
    with pytest.raises(HttpResponseError) as caught:
        client.detect_univariate_entire_series(options)
    assert caught.value.status_code == 400
    response: Any = caught.value.response
    assert response.headers["x-ms-error-code"] == "InvalidSeries"
    assert response.json()["code"] == "InvalidSeries"


def test_a_wrong_key_is_a_client_authentication_error(
    server: dict[str, str], power_csv: Path
) -> None:
    with AnomalyDetectorClient(
        server["endpoint"], AzureKeyCredential("not-the-key"), retry_total=0
    ) as wrong:
        with pytest.raises(ClientAuthenticationError):
            wrong.detect_univariate_last_point(
                UnivariateDetectionOptions(
                    series=power_points(power_csv, 100), granularity=TimeGranularity.PER_MINUTE
                )
            )
        with pytest.raises(ClientAuthenticationError):
            wrong.get_multivariate_model(str(uuid.uuid4()))


def test_an_unknown_model_is_resource_not_found(client: AnomalyDetectorClient) -> None:
    with pytest.raises(ResourceNotFoundError):
        client.get_multivariate_model(str(uuid.uuid4()))
    with pytest.raises(ResourceNotFoundError):
        client.delete_multivariate_model(str(uuid.uuid4()))
    with pytest.raises(ResourceNotFoundError):
        client.get_multivariate_batch_detection_result(str(uuid.uuid4()))


# ------------------------------------------------------------------------------ multivariate


def test_multivariate_train_detect_list_delete_with_the_sdk(
    client: AnomalyDetectorClient, energy_url: str, energy_zip: Path
) -> None:
    model: Any = client.train_multivariate_model(
        ModelInfo(
            data_source=energy_url,
            start_time=datetime.fromisoformat(TRAIN[0]),
            end_time=datetime.fromisoformat(TRAIN[1]),
            sliding_window=200,
            align_policy=AlignPolicy(
                align_mode=AlignMode.OUTER, fill_n_a_method=FillNAMethod.LINEAR, padding_value=0
            ),
            display_name="energy",
        )
    )
    model_id = model.model_id
    assert uuid.UUID(model_id)
    assert model.model_info.status in ("CREATED", "RUNNING", "READY")
    assert model.model_info.display_name == "energy"

    status = wait_for(lambda: sdk(client.get_multivariate_model(model_id)).model_info.status)
    assert status == "READY"
    trained: Any = client.get_multivariate_model(model_id)
    states = trained.model_info.diagnostics_info.variable_states
    assert sorted(s.variable for s in states) == ["kitchen", "laundryRoom", "power", "voltage"]

    accepted = client.detect_multivariate_batch_anomaly(
        model_id,
        MultivariateBatchDetectionOptions(
            data_source=energy_url,
            top_contributor_count=3,
            start_time=datetime.fromisoformat(DETECT[0]),
            end_time=datetime.fromisoformat(DETECT[1]),
        ),
    )
    result_id = accepted.result_id
    assert (
        wait_for(
            lambda: sdk(client.get_multivariate_batch_detection_result(result_id)).summary.status
        )
        == "READY"
    )
    result: Any = client.get_multivariate_batch_detection_result(result_id)
    assert len(result.results) == 1227  # 00:00 to 20:26, one per minute
    assert result.summary.setup_info.top_contributor_count == 3
    anomalies = [r for r in result.results if r.value.is_anomaly]
    assert anomalies
    for state in anomalies:
        contributors = state.value.interpretation
        assert 1 <= len(contributors) <= 3
        assert {c.variable for c in contributors} <= {"kitchen", "laundryRoom", "power", "voltage"}

    # Last detection on the window's final 300 minutes, sent inline.
    variables = last_detection_variables(energy_zip)
    last: Any = client.detect_multivariate_last_anomaly(
        model_id, MultivariateLastDetectionOptions(variables=variables, top_contributor_count=2)
    )
    assert len(last.results) == 1
    assert last.results[0].timestamp == datetime.fromisoformat(DETECT[1])
    assert sorted(s.variable for s in last.variable_states) == sorted(v.variable for v in variables)

    listed = [m.model_id for m in client.list_multivariate_models(skip=0, top=1)]
    assert model_id in listed

    client.delete_multivariate_model(model_id)
    with pytest.raises(ResourceNotFoundError):
        client.get_multivariate_model(model_id)
    with pytest.raises(ResourceNotFoundError):
        client.get_multivariate_batch_detection_result(result_id)


def last_detection_variables(energy_zip: Path, minutes: int = 300) -> list[VariableValues]:
    """The last ``minutes`` of the detection window, per variable, read from the zip."""
    end = datetime.fromisoformat(DETECT[1]).replace(tzinfo=None)
    variables = []
    for name, values in sorted(load_dataset(energy_zip.read_bytes(), energy_zip.name).items()):
        window = values.sort_index().loc[:end].iloc[-minutes:]
        variables.append(
            VariableValues(
                variable=name,
                timestamps=[f"{stamp.isoformat()}Z" for stamp in window.index],
                values=[float(v) for v in window.to_numpy()],
            )
        )
    return variables


def test_list_pages_follow_next_link(
    client: AnomalyDetectorClient, server: dict[str, str], energy_url: str
) -> None:
    ids = set()
    for window in (120, 150):
        model = client.train_multivariate_model(
            ModelInfo(
                data_source=energy_url,
                start_time=datetime.fromisoformat(TRAIN[0]),
                end_time=datetime.fromisoformat(TRAIN[1]),
                sliding_window=window,
            )
        )
        ids.add(model.model_id)
    page = requests.get(
        f"{server['endpoint']}/anomalydetector/v1.1/multivariate/models",
        params={"skip": 0, "top": 1},
        headers={"Ocp-Apim-Subscription-Key": KEY},
        timeout=10,
    ).json()
    assert len(page["models"]) == 1
    assert page["currentCount"] >= 2
    assert page["nextLink"].startswith(f"{server['endpoint']}/anomalydetector/v1.1/")
    assert "skip=1" in page["nextLink"] and "top=1" in page["nextLink"]
    listed = {m.model_id for m in client.list_multivariate_models(top=1)}
    assert ids <= listed
    # The notebook's call: top=10000 is served (in pages of at most 100, linked by nextLink).
    assert ids <= {m.model_id for m in client.list_multivariate_models(skip=0, top=10000)}
    for model_id in ids:
        wait_for(
            lambda model_id=model_id: sdk(client.get_multivariate_model(model_id)).model_info.status
        )
        client.delete_multivariate_model(model_id)


# ------------------------------------------------------------------------------ raw requests


def test_tutorial_shaped_requests_on_the_preview_routes(
    server: dict[str, str], energy_url: str
) -> None:
    endpoint = server["endpoint"]
    headers = {"Content-Type": "application/json", "Ocp-Apim-Subscription-Key": KEY}
    base = f"{endpoint}/anomalydetector/v1.1-preview.1"
    body = {
        "source": energy_url,
        "startTime": TRAIN[0],
        "endTime": TRAIN[1],
        "slidingWindow": 240,
        "alignPolicy": {"alignMode": "Outer", "fillNAMethod": "Linear", "paddingValue": 0},
    }
    response = requests.post(f"{base}/multivariate/models", data=json.dumps(body),
                             headers=headers, timeout=30)  # fmt: skip
    assert response.status_code == 201
    location = response.headers["Location"]
    assert location.startswith(f"{base}/multivariate/models/")
    model_id = location.rsplit("/", 1)[-1]

    def model_status() -> str:
        model = requests.get(location, headers=headers, timeout=10).json()
        assert model["modelInfo"]["source"] == energy_url.split("?")[0]
        return str(model["modelInfo"]["status"])

    assert wait_for(model_status) == "READY"

    detect = {"source": energy_url, "startTime": DETECT[0], "endTime": DETECT[1]}
    response = requests.post(f"{base}/multivariate/models/{model_id}/detect",
                             data=json.dumps(detect), headers=headers, timeout=60)  # fmt: skip
    assert response.status_code == 201
    result_url = response.headers["Location"]
    assert result_url.startswith(f"{base}/multivariate/results/")

    def result_status() -> str:
        return str(
            requests.get(result_url, headers=headers, timeout=10).json()["summary"]["status"]
        )

    assert wait_for(result_status) == "READY"
    result = requests.get(result_url, headers=headers, timeout=10).json()
    assert result["summary"]["setupInfo"]["source"] == energy_url
    assert len(result["results"]) == 1227

    exported = requests.get(f"{base}/multivariate/models/{model_id}/export",
                            headers=headers, timeout=30)  # fmt: skip
    assert exported.status_code == 200
    assert exported.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
        assert {"model.json", "model.mvm"} <= set(archive.namelist())

    listed = requests.get(f"{base}/multivariate/models", params={"$top": 100},
                          headers=headers, timeout=10).json()  # fmt: skip
    snapshot = next(m for m in listed["models"] if m["modelId"] == model_id)
    assert snapshot["status"] == "READY" and snapshot["variablesCount"] == 4

    last = requests.post(
        f"{base}/timeseries/last/detect",
        data=json.dumps(
            {
                "series": [
                    {"timestamp": f"2026-11-02T00:{i:02d}:00Z", "value": 10.0 + (i % 3)}
                    for i in range(59)
                ]
                + [{"timestamp": "2026-11-02T00:59:00Z", "value": 40.0}],
                "granularity": "minutely",
            }
        ),
        headers=headers,
        timeout=30,
    )
    assert last.status_code == 200
    assert last.json()["isAnomaly"] is True

    assert requests.delete(f"{base}/multivariate/models/{model_id}", headers=headers,
                           timeout=10).status_code == 204  # fmt: skip
