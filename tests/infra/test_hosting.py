"""Hosting: the app runs on Flex Consumption with Python 3.11, ``azure.yaml`` wires the service
and its hooks, and the post-provision hook writes identity-based local settings.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from shared.settings import Settings, setting_names
from tests.infra.bicep import (
    APP,
    INFRA,
    MAIN,
    REPO,
    SECRET_MARKERS,
    Runtime,
    api_scope,
    body,
    cloud_setting_exprs,
    dotted,
    function_app,
    is_host_setting,
    module_symbol,
    parse,
    the_resource,
)


def test_function_app_runs_on_flex_consumption_python_311() -> None:
    plan_name, plan = the_resource(api_scope().file, "Microsoft.Web/serverfarms")
    assert body(plan)["sku"]["name"] == "FC1"
    site = body(function_app())
    assert site["kind"] == "functionapp,linux"
    assert dotted(site["properties"]["serverFarmId"]) == f"{plan_name}.id"
    assert site["properties"]["functionAppConfig"]["runtime"] == {
        "name": "python",
        "version": "3.11",
    }
    assert site["properties"]["httpsOnly"] is True
    assert "'azd-service-name': serviceName" in (APP / "api.bicep").read_text(encoding="utf-8")


def test_azure_yaml_wires_the_service_and_the_hooks() -> None:
    text = (REPO / "azure.yaml").read_text(encoding="utf-8")
    assert re.search(r"^services:\n  api:\n(    .*\n)*?    host: function$", text, re.M)
    assert re.search(r"^    language: python$", text, re.M)
    for script in re.findall(r"run: \./(scripts/\S+)", text):
        assert (REPO / script).is_file(), f"azure.yaml runs missing {script}"
    assert "scripts/postprovision.sh" in text
    # postdeploy turns on the Event Grid subscription through the parameters file.
    parameters = (INFRA / "main.parameters.json").read_text(encoding="utf-8")
    assert "EVENTGRID_SUBSCRIPTION_ENABLED true" in text
    assert re.search(
        r'"blobTriggerSubscriptionEnabled".*\n.*EVENTGRID_SUBSCRIPTION_ENABLED', parameters
    )
    eventgrid_args = body(parse(MAIN).modules[module_symbol(APP / "eventgrid.bicep")])["params"]
    assert eventgrid_args["subscriptionEnabled"] == "blobTriggerSubscriptionEnabled"


def test_postprovision_writes_identity_based_local_settings(tmp_path: Path) -> None:
    cloud = {
        n: "https://example.blob.core.windows.net/" if isinstance(v, Runtime) else str(v)
        for n, v in cloud_setting_exprs().items()
    }
    env = {"MW_APP_SETTINGS_JSON": json.dumps(cloud), "EVENTHUB_LOCAL_DEBUG_CONSUMER_GROUP": "dbg"}
    fake_azd = tmp_path / "azd"
    fake_azd.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(env)}\nEOF\n", encoding="utf-8")
    fake_azd.chmod(0o755)
    out = tmp_path / "local.settings.json"
    out.write_text('{"Values": {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}}')
    backup = tmp_path / "previous" / "local.settings.json"
    run = subprocess.run(
        ["sh", str(REPO / "scripts" / "postprovision.sh")],
        env={**os.environ, "AZD": str(fake_azd), "MW_LOCAL_SETTINGS": str(out),
             "MW_LOCAL_SETTINGS_BACKUP": str(backup)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "UseDevelopmentStorage" in backup.read_text(), "the previous file is kept"
    values = json.loads(out.read_text())["Values"]
    local_exempt = {"AzureWebJobsStorage", "AzureWebJobsStorage__clientId"}
    missing = [n for n in setting_names() if n not in values and n not in local_exempt]
    assert not missing, f"local.settings.json lacks {missing}"
    assert not [n for n in values if n.endswith(("__credential", "__clientId"))]
    assert not SECRET_MARKERS.search(json.dumps(values))
    assert values["BLOB_TRIGGER_SOURCE"] == "LogsAndContainerScan"
    assert values["EVENTHUB_CONSUMER_GROUP"] == "dbg"
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert "@Microsoft.KeyVault" not in json.dumps(values), "func start cannot resolve them"
    assert len(values["METERWATCH_API_KEYS"]) >= 32, "a local API key of its own"
    again = subprocess.run(
        ["sh", str(REPO / "scripts" / "postprovision.sh")],
        env={**os.environ, "AZD": str(fake_azd), "MW_LOCAL_SETTINGS": str(out),
             "MW_LOCAL_SETTINGS_BACKUP": str(backup)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    rerun = json.loads(out.read_text())["Values"]
    assert rerun["METERWATCH_API_KEYS"] == values["METERWATCH_API_KEYS"], "local key is kept"
    local_only_prefix = "AzureFunctionsJobHost__"  # host.json overrides for the laptop only
    extra = [n for n in values if n not in setting_names() and not is_host_setting(n)]
    assert all(n.startswith(local_only_prefix) for n in extra), extra
    Settings.from_env(values)
