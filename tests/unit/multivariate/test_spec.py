"""Training spec parsing and defaults, window resolution, data sources and deterministic ids."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from azure.storage.blob import BlobServiceClient

from shared.errors import DatasetError, PayloadError
from shared.multivariate.datasets import AlignPolicy
from shared.multivariate.datasource import DataSourcePolicy
from shared.multivariate.detection import result_csv, top_anomalies
from shared.multivariate.documents import DetectionResult, SetupInfo
from shared.multivariate.ids import (
    content_hash,
    is_dataset_name,
    model_id_for,
    training_instance_id,
)
from shared.multivariate.payloads import TrainingRequest
from shared.multivariate.spec import (
    TrainingSpec,
    merge_specs,
    parse_training_spec,
    resolve_windows,
    sidecar_names,
    spec_from_metadata,
)
from shared.multivariate.workflow import should_start
from shared.storage.client import BlobStore

ACCOUNT = "http://127.0.0.1:10000/devstoreaccount1"


def minutes(start: str, count: int) -> np.ndarray:
    return np.datetime64(start, "s") + np.arange(count) * np.timedelta64(60, "s")


def code_of(document: Any) -> str:
    with pytest.raises(DatasetError) as caught:
        parse_training_spec(document)
    return caught.value.code


# ------------------------------------------------------------------ spec


def test_no_spec_gives_the_defaults() -> None:
    spec = parse_training_spec(None)
    assert spec == TrainingSpec()
    assert spec.sliding_window == 300
    assert spec.top_contributor_count == 10
    assert spec.align_policy == AlignPolicy("Outer", "Linear", 0.0)
    assert spec.start_time is None and spec.detect_end_time is None


def test_full_spec_is_read_with_v11_names_case_insensitively() -> None:
    spec = parse_training_spec(
        {
            "StartTime": "2006-12-16T17:24:00Z",
            "endtime": "2006-12-18T02:43:00+01:00",
            "slidingWindow": 200,
            "alignPolicy": {"alignMode": "inner", "fillNAMethod": "Fixed", "paddingValue": 2.5},
            "detectStartTime": "2006-12-19 00:00:00",
            "detectEndTime": "2006-12-19T20:26:00Z",
            "topContributorCount": 3,
            "displayName": "energy",
            "dataSource": "ignored: the upload is the data",
        }
    )
    assert spec.start_time == datetime(2006, 12, 16, 17, 24, tzinfo=UTC)
    assert spec.end_time == datetime(2006, 12, 18, 1, 43, tzinfo=UTC)  # offset converted
    assert spec.detect_start_time == datetime(2006, 12, 19, tzinfo=UTC)  # naive means UTC
    assert spec.sliding_window == 200
    assert spec.align_policy == AlignPolicy("Inner", "Fixed", 2.5)
    assert spec.top_contributor_count == 3
    assert spec.display_name == "energy"
    assert spec.to_dict()["endTime"] == "2006-12-18T01:43:00Z"
    assert parse_training_spec(spec.to_dict()) == spec  # round trip


@pytest.mark.parametrize(
    ("document", "code"),
    [
        ([1, 2], "InvalidSpec"),
        ({"slidingwindows": 100}, "InvalidSpec"),
        ({"slidingWindow": 27}, "InvalidSlidingWindow"),
        ({"slidingWindow": 2881}, "InvalidSlidingWindow"),
        ({"slidingWindow": 100.5}, "InvalidSlidingWindow"),
        ({"slidingWindow": "100"}, "InvalidSlidingWindow"),
        ({"slidingWindow": True}, "InvalidSlidingWindow"),
        ({"startTime": "yesterday-ish"}, "InvalidStartTime"),
        ({"endTime": 1234}, "InvalidEndTime"),
        (
            {"startTime": "2006-12-18T00:00:00Z", "endTime": "2006-12-17T00:00:00Z"},
            "InvalidEndTime",
        ),
        (
            {"detectStartTime": "2006-12-19T01:00:00Z", "detectEndTime": "2006-12-19T00:00:00Z"},
            "InvalidEndTime",
        ),
        ({"alignPolicy": {"alignMode": "Left"}}, "InvalidAlignPolicy"),
        ({"alignPolicy": {"fillNAMethod": "Mean"}}, "InvalidAlignPolicy"),
        ({"alignPolicy": {"padding": 1}}, "InvalidAlignPolicy"),
        ({"topContributorCount": 0}, "InvalidTopContributorCount"),
        ({"displayName": "x" * 25}, "InvalidDisplayName"),
        ({"dataSchema": "TwoTables"}, "InvalidDataSchema"),
    ],
)
def test_bad_spec_fields_are_refused_with_a_code(document: Any, code: str) -> None:
    assert code_of(document) == code


def test_error_messages_say_what_to_fix() -> None:
    with pytest.raises(DatasetError) as caught:
        parse_training_spec({"slidingWindow": 10})
    assert "28" in caught.value.message and "2880" in caught.value.message
    with pytest.raises(DatasetError) as caught:
        parse_training_spec({"slidingwindows": 10})
    assert "slidingwindows" in caught.value.message and "slidingWindow" in caught.value.message


def test_blob_metadata_becomes_a_spec_and_the_sidecar_wins() -> None:
    metadata = {
        "slidingwindow": "120",
        "AlignMode": "Inner",
        "fillnamethod": "Previous",
        "paddingValue": "1.5",
        "detectStartTime": "2026-11-03T00:00:00Z",
        "uploadedBy": "a tool's own metadata",
    }
    from_metadata = spec_from_metadata(metadata)
    assert from_metadata == {
        "slidingWindow": 120,
        "alignPolicy": {"alignMode": "Inner", "fillNAMethod": "Previous", "paddingValue": 1.5},
        "detectStartTime": "2026-11-03T00:00:00Z",
    }
    merged = merge_specs(from_metadata, {"SlidingWindow": 60, "displayName": "sidecar"})
    spec = parse_training_spec(merged)
    assert spec.sliding_window == 60
    assert spec.display_name == "sidecar"
    assert spec.align_policy.align_mode == "Inner"
    assert merge_specs(None, None) is None
    with pytest.raises(DatasetError) as caught:
        spec_from_metadata({"slidingWindow": "many"})
    assert caught.value.code == "InvalidSlidingWindow"


def test_sidecar_names_and_dataset_names() -> None:
    assert sidecar_names("site/energy.zip") == ["site/energy.json", "site/energy.zip.json"]
    assert is_dataset_name("energy.ZIP") and is_dataset_name("meters.csv")
    assert not is_dataset_name("energy.json") and not is_dataset_name("notes.txt")


# ------------------------------------------------------------------ windows


def test_windows_default_to_all_data_then_detect_on_the_training_window() -> None:
    stamps = minutes("2026-11-02T00:00:00", 100)
    windows = resolve_windows(TrainingSpec(), stamps)
    assert windows.train_start == stamps[0] and windows.train_end == stamps[-1]
    assert windows.detect_start == stamps[0] and windows.detect_end == stamps[-1]


def test_windows_detect_after_the_training_end_by_default() -> None:
    stamps = minutes("2026-11-02T00:00:00", 100)
    spec = parse_training_spec({"endTime": "2026-11-02T00:59:00Z"})
    windows = resolve_windows(spec, stamps)
    assert windows.train_end == np.datetime64("2026-11-02T00:59:00")
    assert windows.detect_start == np.datetime64("2026-11-02T01:00:00")
    assert windows.detect_end == stamps[-1]


def test_windows_train_before_the_detection_start_by_default() -> None:
    stamps = minutes("2026-11-02T00:00:00", 100)
    spec = parse_training_spec({"detectStartTime": "2026-11-02T01:00:30Z"})
    windows = resolve_windows(spec, stamps)
    assert windows.train_start == stamps[0]
    assert windows.train_end == np.datetime64("2026-11-02T01:00:00")
    assert windows.to_dict()["detectStart"] == "2026-11-02T01:00:30Z"


def test_windows_outside_the_data_are_refused() -> None:
    stamps = minutes("2026-11-02T00:00:00", 100)
    with pytest.raises(DatasetError) as caught:
        resolve_windows(parse_training_spec({"detectStartTime": "2026-11-01T00:00:00Z"}), stamps)
    assert caught.value.code == "NotEnoughData"
    with pytest.raises(DatasetError) as caught:
        resolve_windows(
            parse_training_spec(
                {"detectStartTime": "2026-12-01T00:00:00Z", "endTime": "2026-11-02T00:30:00Z"}
            ),
            stamps,
        )
    assert caught.value.code == "NotEnoughData"
    assert "2026-11-02T00:00:00Z" in caught.value.message  # says what the data covers


# ------------------------------------------------------------------ data sources


def store() -> BlobStore:
    connection = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        f"BlobEndpoint={ACCOUNT};"
    )
    return BlobStore(BlobServiceClient.from_connection_string(connection))


def starter_policy(blobs: BlobStore) -> DataSourcePolicy:
    """The policy as the HTTP starter of the function app uses it (plain names: training)."""
    return DataSourcePolicy(str(blobs.service.url), default_container="mv-training")


def test_data_source_is_a_name_in_the_training_container_or_a_url_of_this_account() -> None:
    policy = starter_policy(store())
    plain = policy.dataset_blob("site/energy.zip")
    assert (plain.container, plain.name) == ("mv-training", "site/energy.zip")
    url = policy.dataset_blob(f"{ACCOUNT}/mv-training/site%20a/energy.csv")
    assert (url.container, url.name) == ("mv-training", "site a/energy.csv")
    # The starter reads the training container with the app's identity, nothing else: another
    # container is refused, with or without a SAS (the SAS would go unused).
    for other in (f"{ACCOUNT}/other/energy.csv", f"{ACCOUNT}/other/energy.csv?sv=x&sig=y"):
        with pytest.raises(DatasetError) as caught:
            policy.dataset_blob(other)
        assert caught.value.code == "InvalidDataSource" and "sig=y" not in caught.value.message


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("", "InvalidDataSource"),
        (None, "InvalidDataSource"),
        ("https://evil.example.com/devstoreaccount1/c/energy.zip", "InvalidDataSource"),
        ("http://169.254.169.254/devstoreaccount1/c/energy.zip", "InvalidDataSource"),
        ("file:///etc/passwd.zip", "InvalidDataSource"),
        (f"{ACCOUNT}/c/../../x.zip", "InvalidDataSource"),
        ("energy.parquet", "UnsupportedFormat"),
    ],
)
def test_other_data_sources_are_refused(value: Any, code: str) -> None:
    with pytest.raises(DatasetError) as caught:
        starter_policy(store()).dataset_blob(value)
    assert caught.value.code == code


# ------------------------------------------------------------------ ids and the trigger rule


def test_instance_ids_depend_on_path_content_and_inline_spec_only() -> None:
    sha = content_hash(b"timestamp,value\n")
    first = training_instance_id("mv-training", "a.zip", sha)
    assert first == training_instance_id("mv-training", "a.zip", sha.upper())
    assert first.startswith("mvtrain-") and len(first) == len("mvtrain-") + 32
    assert first != training_instance_id("mv-training", "b.zip", sha)
    assert first != training_instance_id("mv-training", "a.zip", content_hash(b"other"))
    assert first != training_instance_id("other", "a.zip", sha)
    with_spec = training_instance_id("mv-training", "a.zip", sha, {"b": 1, "a": 2})
    assert with_spec != first
    assert with_spec == training_instance_id("mv-training", "a.zip", sha, {"a": 2, "b": 1})
    assert model_id_for(first) == model_id_for(first) != model_id_for(with_spec)


def test_training_request_round_trips_through_json() -> None:
    request = TrainingRequest.create(
        "mv-training", "a.zip", "ab" * 32, spec={"slidingWindow": 60}, poll_interval_seconds=5
    )
    assert TrainingRequest.from_dict(request.to_dict()) == request
    assert request.model_id == model_id_for(request.instance_id)
    with pytest.raises(PayloadError) as caught:
        TrainingRequest.from_dict({"dataSource": {}})
    assert caught.value.code == "InvalidPayload"


@pytest.mark.parametrize(
    ("runtime_status", "start"),
    [
        (None, True),
        ("Pending", False),
        ("Running", False),
        ("Completed", False),
        ("ContinuedAsNew", False),
        ("Suspended", False),
        ("Failed", True),
        ("Terminated", True),
        ("Canceled", True),
    ],
)
def test_a_duplicate_trigger_starts_nothing(runtime_status: str | None, start: bool) -> None:
    assert should_start(runtime_status) is start


@pytest.mark.parametrize(
    ("runtime_status", "start"),
    [("Completed", True), ("ContinuedAsNew", True), ("Running", False), ("Pending", False)],
)
def test_a_deleted_model_is_trained_again_once_its_run_is_over(
    runtime_status: str, start: bool
) -> None:
    assert should_start(runtime_status, model_deleted=True) is start


# ------------------------------------------------------------------ result formats


SETUP: SetupInfo = {
    "dataSource": "energy.zip",
    "topContributorCount": 10,
    "startTime": "2026-11-02T00:00:00Z",
    "endTime": "2026-11-02T00:02:00Z",
}
RESULT: DetectionResult = {
    "resultId": "r",
    "summary": {"status": "READY", "errors": [], "variableStates": [], "setupInfo": SETUP},
    "results": [
        {
            "timestamp": "2026-11-02T00:00:00Z",
            "value": {"isAnomaly": False, "severity": 0.0, "score": 0.2, "interpretation": []},
            "errors": [],
        },
        {
            "timestamp": "2026-11-02T00:01:00Z",
            "value": {
                "isAnomaly": True,
                "severity": 0.4,
                "score": 9.5,
                "interpretation": [
                    {
                        "variable": "kitchen",
                        "contributionScore": 0.7,
                        "correlationChanges": {"changedVariables": ["laundry"]},
                    },
                    {
                        "variable": "power",
                        "contributionScore": 0.3,
                        "correlationChanges": {"changedVariables": []},
                    },
                ],
            },
            "errors": [],
        },
        {
            "timestamp": "2026-11-02T00:02:00Z",
            "value": {
                "isAnomaly": True,
                "severity": 0.9,
                "score": 20.0,
                "interpretation": [
                    {
                        "variable": "power",
                        "contributionScore": 1.0,
                        "correlationChanges": {"changedVariables": []},
                    }
                ],
            },
            "errors": [],
        },
    ],
}


def test_result_csv_has_one_row_per_timestamp() -> None:
    lines = result_csv(RESULT).splitlines()
    assert lines == [
        "timestamp,isAnomaly,severity,score,topContributors,changedVariables",
        "2026-11-02T00:00:00Z,false,0,0.2,,",
        "2026-11-02T00:01:00Z,true,0.4,9.5,kitchen:0.7;power:0.3,laundry",
        "2026-11-02T00:02:00Z,true,0.9,20,power:1,",
    ]


def test_top_anomalies_are_the_most_severe_first() -> None:
    top = top_anomalies(RESULT, 5)
    assert [item["timestamp"] for item in top] == ["2026-11-02T00:02:00Z", "2026-11-02T00:01:00Z"]
    assert top[1]["topContributors"][0] == {"variable": "kitchen", "contributionScore": 0.7}
