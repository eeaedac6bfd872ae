"""Binding metadata, as the host indexes it from app.get_functions()."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def function_json(app_functions: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(json.loads(app_functions[name].get_function_json()))


def test_event_hub_trigger_binding(app_functions: dict[str, Any]) -> None:
    (trigger,) = function_json(app_functions, "eventhub_ingest")["bindings"]
    assert trigger["type"] == "eventHubTrigger"
    assert trigger["direction"] == "IN"
    assert trigger["cardinality"].lower() == "many"  # the library writes the enum name
    assert trigger["connection"] == "EventHubConnection"
    assert trigger["eventHubName"] == "%EVENTHUB_NAME%"
    assert trigger["consumerGroup"] == "%EVENTHUB_CONSUMER_GROUP%"


def test_event_hub_trigger_has_a_retry_policy(app_functions: dict[str, Any]) -> None:
    retry = app_functions["eventhub_ingest"].get_settings_dict("retry_policy")
    assert retry["strategy"] == "exponential_backoff"
    assert int(retry["max_retry_count"]) >= 3


def test_raw_blob_trigger_binding(app_functions: dict[str, Any]) -> None:
    bindings = function_json(app_functions, "raw_blob_trigger")["bindings"]
    (trigger,) = [b for b in bindings if b["type"] == "blobTrigger"]  # beside the alerts output
    assert trigger["type"] == "blobTrigger"
    assert trigger["path"] == "%RAW_CONTAINER%/{name}"
    assert trigger["connection"] == "AzureWebJobsStorage"
    assert trigger["source"] == "LogsAndContainerScan"


def test_blob_trigger_source_follows_the_setting() -> None:
    code = (
        "import json, function_app\n"
        "f = {f.get_function_name(): f for f in function_app.app.get_functions()}\n"
        "bindings = json.loads(f['raw_blob_trigger'].get_function_json())['bindings']\n"
        "print([b for b in bindings if b['type'] == 'blobTrigger'][0]['source'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={"BLOB_TRIGGER_SOURCE": "EventGrid", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "EventGrid"


def test_function_app_imports_without_settings_or_heavy_modules() -> None:
    code = (
        "import sys, function_app\n"
        "names = ('torch', 'matplotlib', 'anomaly_detector', 'mlflow', 'pandas', 'scipy')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == ""
