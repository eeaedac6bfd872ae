# mypy: ignore-errors
"""Drive one old ``azure-ai-anomalydetector`` release (3.0.0b3, b4, b5) against ``serve``.

Run by :mod:`tests.integration.api.test_sdk_releases` with the Python of that release's venv
(``.venv-sdk/<release>``, made by ``scripts/sdk-venvs.sh``), so it imports nothing of meterwatch:
only the standard library and the SDK. It reads one JSON job from ``argv[1]``, makes the calls
the job names with the SDK's own models, and prints one JSON report on stdout for the test to
judge. The multivariate part is the Learn notebook's flow as its ``MultivariateSample`` class
wrote it (``cls=lambda *args: ...`` to read the ``Location`` header, ``split("/")[-1]`` for ids,
polling until READY or FAILED, ``list_multivariate_model(skip=0, top=10000)`` model counts,
``export_model`` read as a byte stream).
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
import zipfile
from datetime import UTC, datetime
from typing import Any

import azure.ai.anomalydetector as sdk
from azure.ai.anomalydetector import AnomalyDetectorClient
from azure.ai.anomalydetector.models import (
    ChangePointDetectRequest,
    DetectionRequest,
    DetectRequest,
    ModelInfo,
    TimeSeriesPoint,
)
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError


def tutorial_time(text: str) -> datetime:
    """A timestamp of the Learn samples (``12/16/2006 17:24``, month-first, UTC)."""
    return datetime.strptime(text.strip(), "%m/%d/%Y %H:%M").replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def read_csv(data: bytes) -> list[tuple[datetime, float]]:
    rows = csv.reader(io.StringIO(data.decode("utf-8-sig")))
    next(rows)
    return [(tutorial_time(stamp), float(value)) for stamp, value in rows if stamp]


def client_for(job: dict[str, Any]) -> AnomalyDetectorClient:
    return AnomalyDetectorClient(AzureKeyCredential(job["key"]), job["endpoint"], retry_total=0)


def univariate(client: AnomalyDetectorClient, job: dict[str, Any], **call: Any) -> dict[str, Any]:
    """The three univariate operations on the window of power.csv the job names.

    ``call`` goes to every operation: b4 and b5 take ``api_version`` per call (not per client).
    """
    with open(job["power_csv"], "rb") as handle:
        points = read_csv(handle.read())[: job["points"]]
    spike = job["spike_at"]
    series = [
        TimeSeriesPoint(timestamp=stamp, value=5.0 if i == spike else value)
        for i, (stamp, value) in enumerate(points)
    ]
    entire = client.detect_entire_series(
        DetectRequest(series=series, granularity="minutely"), **call
    )
    last = client.detect_last_point(
        DetectRequest(series=series[: spike + 1], granularity="minutely"), **call
    )
    change = client.detect_change_point(
        ChangePointDetectRequest(series=series, granularity="minutely", threshold=0.9), **call
    )
    return {
        "entire": entire.as_dict(keep_readonly=True),
        "last": last.as_dict(keep_readonly=True),
        "changepoint": change.as_dict(keep_readonly=True),
    }


def wait(get_status: Any, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    status = str(get_status())
    while status not in ("READY", "FAILED") and time.monotonic() < deadline:
        time.sleep(0.5)
        status = str(get_status())
    return status


def contributors(value: Any) -> list[dict[str, Any]]:
    """The top contributors of one anomaly: ``contributors`` (b3) or ``interpretation`` (b4+)."""
    listed = getattr(value, "contributors", None)
    if listed is None:
        listed = getattr(value, "interpretation", None) or []
    return [{"variable": c.variable, "score": c.contribution_score} for c in listed]


def notebook(client: AnomalyDetectorClient, job: dict[str, Any]) -> dict[str, Any]:
    """The Learn notebook's multivariate flow, call for call."""
    report: dict[str, Any] = {}
    start, end = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in job["train"])
    model_list = list(client.list_multivariate_model(skip=0, top=10000))
    report["models_before"] = len(model_list)

    request = ModelInfo(start_time=start, end_time=end, source=job["data_url"])
    if job.get("sliding_window"):
        request.sliding_window = job["sliding_window"]
    response_header = client.train_multivariate_model(
        request, cls=lambda *args: [args[i] for i in range(len(args))]
    )[-1]
    report["location"] = response_header["Location"]
    trained_model_id = response_header["Location"].split("/")[-1]
    report["model_id"] = trained_model_id
    report["status"] = wait(
        lambda: client.get_multivariate_model(trained_model_id).model_info.status
    )
    model = client.get_multivariate_model(trained_model_id)
    report["variables"] = sorted(
        s.variable for s in model.model_info.diagnostics_info.variable_states
    )
    report["source"] = model.model_info.source
    report["models_after_train"] = len(list(client.list_multivariate_model(skip=0, top=10000)))

    detect_start, detect_end = (
        datetime.fromisoformat(t.replace("Z", "+00:00")) for t in job["detect"]
    )
    detection = DetectionRequest(
        source=job["data_url"], start_time=detect_start, end_time=detect_end
    )
    response = client.detect_anomaly(
        trained_model_id, detection, cls=lambda *args: [args[i] for i in range(len(args))]
    )
    result_id = response[2]["Location"].split("/")[-1]
    report["result_status"] = wait(lambda: client.get_detection_result(result_id).summary.status)
    result = client.get_detection_result(result_id)
    report["result_source"] = result.summary.setup_info.source
    report["results"] = len(result.results)
    report["anomalies"] = [
        {
            "timestamp": iso(state.timestamp.astimezone(UTC)),
            "severity": state.value.severity,
            "contributors": contributors(state.value),
        }
        for state in result.results
        if state.value.is_anomaly
    ]

    if hasattr(client, "last_detect_anomaly"):  # v1.1-preview.1 (b4, b5): detect-last
        report["last"] = last_detection(client, trained_model_id, job)

    stream_generator = client.export_model(trained_model_id)
    exported = b"".join(stream_generator)
    with zipfile.ZipFile(io.BytesIO(exported)) as archive:
        report["exported"] = sorted(archive.namelist())

    client.delete_multivariate_model(trained_model_id)
    report["models_after_delete"] = len(list(client.list_multivariate_model(skip=0, top=10000)))
    try:
        client.get_multivariate_model(trained_model_id)
        report["after_delete"] = "found"
    except ResourceNotFoundError:
        report["after_delete"] = "ResourceNotFoundError"
    return report


def last_detection(client: Any, model_id: str, job: dict[str, Any]) -> dict[str, Any]:
    """``last_detect_anomaly`` on the detection window's final minutes, sent inline."""
    from azure.ai.anomalydetector.models import LastDetectionRequest, VariableValues

    end = datetime.fromisoformat(job["detect"][1].replace("Z", "+00:00"))
    variables = []
    with zipfile.ZipFile(job["energy_zip"]) as archive:
        for member in sorted(archive.namelist()):
            rows = [(t, v) for t, v in read_csv(archive.read(member)) if t <= end][-300:]
            variables.append(
                VariableValues(
                    name=member[: -len(".csv")],
                    timestamps=[iso(t) for t, _ in rows],
                    values=[v for _, v in rows],
                )
            )
    result = client.last_detect_anomaly(
        model_id, LastDetectionRequest(variables=variables, detecting_points=10)
    )
    return {
        "results": len(result.results),
        "last_timestamp": iso(result.results[-1].timestamp.astimezone(UTC)),
        "variables": sorted(s.variable for s in result.variable_states),
    }


def main() -> None:
    job = json.loads(sys.argv[1])
    report: dict[str, Any] = {"version": sdk.__version__}
    for step in job["steps"]:
        try:
            if step == "univariate":
                report[step] = univariate(client_for(job), job)
            elif step == "v1.0":  # b4 and later take api_version; v1.0 is univariate only
                report[step] = univariate(client_for(job), job, api_version="v1.0")
            elif step == "notebook":
                report[step] = notebook(client_for(job), job)
        except HttpResponseError as exc:
            report[step] = {"error": exc.status_code, "message": str(exc.message)[:500]}
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
