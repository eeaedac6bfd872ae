"""Each old ``azure-ai-anomalydetector`` release, unchanged, against ``meterwatch serve``.

3.0.0b3 calls ``/anomalydetector/v1.1-preview``, 3.0.0b4 and b5 ``/anomalydetector/
v1.1-preview.1`` (and, with ``api_version="v1.0"``, the v1.0 univariate routes); 3.0.0b6 is
tested from the app's own venv in :mod:`tests.integration.api.test_sdk`. Each release runs in
its own venv (``.venv-sdk/<release>``, ``make test`` creates them with ``scripts/sdk-venvs.sh``)
through :mod:`tests.integration.api.sdk_driver`, over loopback HTTP: the three univariate
operations (answers compared with the embedded engine, in the version's shape), and the Learn
notebook's multivariate flow verbatim (train → poll READY → detect → result with 08:39 flagged
and kitchen first → export → list with ``top=10000`` → delete, with the model counts the
notebook prints changing as it expects).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

from shared.cli.csvio import read_series_csv
from shared.cli.serve import serve_in_subprocess
from shared.storage.client import DEV_ACCOUNT, DEV_KEY
from shared.timefmt import format_timestamp
from shared.univariate.contract import detect_changepoint_v11, detect_entire_v11, detect_last_v11
from tests.sample_data import sample_path

REPO = Path(__file__).resolve().parents[3]
DRIVER = Path(__file__).with_name("sdk_driver.py")
KEY = "sdk-release-key"
#: Release → the API version its client calls.
RELEASES = {"3.0.0b3": "v1.1-preview", "3.0.0b4": "v1.1-preview.1", "3.0.0b5": "v1.1-preview.1"}
TRAIN = ("2006-12-16T17:24:00Z", "2006-12-18T02:43:00Z")
DETECT = ("2006-12-19T00:00:00Z", "2006-12-19T20:26:00Z")
POINTS, SPIKE = 1440, 1000


def sdk_python(release: str) -> Path:
    """The Python of ``release``'s venv, creating the venvs when missing (a bare ``pytest``)."""
    python = REPO / ".venv-sdk" / release / "bin" / "python"
    if not python.exists():
        subprocess.run([str(REPO / "scripts" / "sdk-venvs.sh")], check=True, cwd=REPO)
    return python


@pytest.fixture(scope="module")
def server(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``serve`` over Azurite with containers of its own, and energy-data.zip uploaded."""
    energy_zip = sample_path("energy-data.zip")
    suffix = uuid.uuid4().hex[:8]
    env = {
        "AzureWebJobsStorage": azurite,
        "METERWATCH_API_KEYS": KEY,
        "TRAINING_CONTAINER": f"training-{suffix}",
        "MODELS_CONTAINER": f"models-{suffix}",
        "RESULTS_CONTAINER": f"results-{suffix}",
        "MV_POLL_INTERVAL_SECONDS": "1",
    }
    container = BlobServiceClient.from_connection_string(azurite).get_container_client(
        f"data-{suffix}"
    )
    container.create_container()
    blob = container.upload_blob("energy-data.zip", energy_zip.read_bytes())
    # As the notebook does: a SAS URL to the caller's own container, read with that SAS.
    sas = generate_blob_sas(
        DEV_ACCOUNT, container.container_name, "energy-data.zip", account_key=DEV_KEY,
        permission=BlobSasPermissions(read=True), expiry=datetime.now(UTC) + timedelta(hours=2),
    )  # fmt: skip
    url = f"{blob.url}?{sas}"
    with serve_in_subprocess(env, cwd=tmp_path_factory.mktemp("serve")) as endpoint:
        yield {"endpoint": endpoint, "data_url": url, "energy_zip": str(energy_zip)}


def drive(release: str, server: dict[str, str], power_csv: Path, *steps: str) -> dict[str, Any]:
    """Run the driver under ``release``; its JSON report."""
    job = {
        **server,
        "key": KEY,
        "power_csv": str(power_csv),
        "points": POINTS,
        "spike_at": SPIKE,
        "train": TRAIN,
        "detect": DETECT,
        "steps": list(steps),
    }
    done = subprocess.run(
        [str(sdk_python(release)), str(DRIVER), json.dumps(job)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout)
    assert report["version"] == release
    return report


def embedded(power_csv: Path, mode: str) -> Mapping[str, object]:
    """The embedded engine's v1.1 answer to the request the driver sends for ``mode``."""
    series = read_series_csv(power_csv)
    values = series.values[:POINTS].copy()
    values[SPIKE] = 5.0
    count = SPIKE + 1 if mode == "last" else POINTS
    body: dict[str, Any] = {
        "series": [
            {"timestamp": format_timestamp(float(t)), "value": float(v)}
            for t, v in zip(series.timestamps[:count], values[:count], strict=True)
        ],
        "granularity": "minutely",
    }
    if mode == "changepoint":
        return detect_changepoint_v11({**body, "threshold": 0.9})
    return (detect_entire_v11 if mode == "entire" else detect_last_v11)(body)


#: The SDK models' attribute names → the v1.1 fields.
FIELDS = {
    "entire": {
        "period": "period", "expected_values": "expectedValues", "upper_margins": "upperMargins",
        "lower_margins": "lowerMargins", "is_anomaly": "isAnomaly",
        "is_negative_anomaly": "isNegativeAnomaly", "is_positive_anomaly": "isPositiveAnomaly",
        "severity": "severity",
    },
    "last": {
        "period": "period", "suggested_window": "suggestedWindow",
        "expected_value": "expectedValue", "upper_margin": "upperMargin",
        "lower_margin": "lowerMargin", "is_anomaly": "isAnomaly",
        "is_negative_anomaly": "isNegativeAnomaly", "is_positive_anomaly": "isPositiveAnomaly",
        "severity": "severity",
    },
    "changepoint": {
        "period": "period", "is_change_point": "isChangePoint",
        "confidence_scores": "confidenceScores",
    },
}  # fmt: skip


def assert_univariate(report: dict[str, Any], power_csv: Path, with_severity: bool) -> None:
    for mode, names in FIELDS.items():
        expected = embedded(power_csv, mode)
        got = report[mode]
        for attribute, field in names.items():
            if field == "severity" and not with_severity:
                assert got.get(attribute) is None, f"{mode}: this version has no severity"
                continue
            assert got[attribute] == pytest.approx(expected[field]), (mode, field)
    assert report["entire"]["is_anomaly"][SPIKE] and report["last"]["is_anomaly"]


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_univariate_through_each_release(
    release: str, server: dict[str, str], power_csv: Path
) -> None:
    report = drive(release, server, power_csv, "univariate")
    # 3.0.0b3's models have no severity; b4 and b5 read it (v1.1-preview.1 sends it).
    assert_univariate(report["univariate"], power_csv, with_severity=release != "3.0.0b3")


def test_v10_through_3_0_0b4(server: dict[str, str], power_csv: Path) -> None:
    report = drive("3.0.0b4", server, power_csv, "v1.0")
    # b4's models read severity, but the v1.0 answer has none, as the v1.0 service sent.
    assert_univariate(report["v1.0"], power_csv, with_severity=False)


@pytest.mark.parametrize("version", ["v1.0", "v1.1-preview", "v1.1-preview.1", "v1.1"])
def test_the_learn_units_string_values_on_every_version(
    version: str, server: dict[str, str], power_csv: Path
) -> None:
    """The univariate unit's requests: ``{"timestamp": "...", "value": "0.418"}``."""
    series = read_series_csv(power_csv)
    body: dict[str, Any] = {
        "series": [
            {"timestamp": format_timestamp(float(t)), "value": f"{v:.3f}"}
            for t, v in zip(series.timestamps[:600], series.values[:600], strict=True)
        ],
        "granularity": "minutely",
    }
    response = requests.post(
        f"{server['endpoint']}/anomalydetector/{version}/timeseries/entire/detect",
        json=body,
        headers={"Ocp-Apim-Subscription-Key": KEY},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    numbers = {**body, "series": [{**p, "value": float(p["value"])} for p in body["series"]]}
    expected: dict[str, object] = dict(detect_entire_v11(numbers))
    if version in ("v1.0", "v1.1-preview"):
        expected.pop("severity")
    assert response.json() == pytest.approx(expected)


def learn_anomaly(report: dict[str, Any]) -> dict[str, Any]:
    at = next((a for a in report["anomalies"] if a["timestamp"] == "2006-12-19T08:39:00Z"), None)
    assert at is not None, [a["timestamp"] for a in report["anomalies"]]
    return at


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_the_learn_notebook_flow_through_each_release(
    release: str, server: dict[str, str], power_csv: Path
) -> None:
    report = drive(release, server, power_csv, "notebook")["notebook"]
    assert "error" not in report, report
    assert report["status"] == "READY"
    assert report["variables"] == ["kitchen", "laundryRoom", "power", "voltage"]
    # The notebook prints the model count before and after training, and after the delete.
    assert report["models_after_train"] == report["models_before"] + 1
    assert report["models_after_delete"] == report["models_before"]
    assert report["after_delete"] == "ResourceNotFoundError"
    base = f"{server['endpoint']}/anomalydetector/{RELEASES[release]}/multivariate/models/"
    assert report["location"] == base + report["model_id"]
    assert report["result_status"] == "READY"
    # The SAS was used to read, and is kept nowhere: not in the model, not in the result.
    assert "sig=" not in json.dumps(report)
    assert report["result_source"] == server["data_url"].split("?")[0]
    assert report["results"] == 1227  # 00:00 to 20:26, one per minute
    anomaly = learn_anomaly(report)
    assert anomaly["contributors"][0]["variable"] == "kitchen"
    scores = [c["score"] for c in anomaly["contributors"]]
    assert scores == sorted(scores, reverse=True)
    assert {"model.json", "model.mvm"} <= set(report["exported"])
    if release != "3.0.0b3":
        assert report["last"]["results"] == 10
        assert report["last"]["last_timestamp"] == DETECT[1]
