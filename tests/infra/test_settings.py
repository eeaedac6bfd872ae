"""Settings: the templates and ``local.settings.sample.json`` set exactly what the code reads.

Settings are compared with :func:`shared.settings.setting_names`, so a setting added to the code
fails these tests until the templates and ``local.settings.sample.json`` set it too.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from shared.settings import Settings, setting_docs, setting_names
from tests.infra.bicep import (
    APP,
    Runtime,
    api_scope,
    body,
    cloud_setting_exprs,
    function_app,
    is_host_setting,
    main_scope,
    module_symbol,
    resources_of,
    sample_settings,
)

# Settings that shared.settings reads in one environment only (storage is reached in two ways).
LOCAL_ONLY = {
    "AzureWebJobsStorage": "a connection string (UseDevelopmentStorage=true for Azurite); the "
    "cloud is identity based and must never carry one",
}

CLOUD_ONLY = {
    "AzureWebJobsStorage__blobServiceUri": "identity-based storage endpoint; locally the "
    "Azurite connection string replaces it",
    "AzureWebJobsStorage__clientId": "client id of the user-assigned managed identity, which "
    "exists only in Azure",
}

# Cloud values that differ from the code's defaults on purpose.
CLOUD_OVERRIDES = {
    "BLOB_TRIGGER_SOURCE": "Flex Consumption supports only the Event Grid blob trigger",
    "EVENTHUB_CONSUMER_GROUP": "the app reads through a consumer group of its own, not $Default",
}


def test_templates_set_every_setting_the_code_reads() -> None:
    cloud = cloud_setting_exprs()
    assert set(LOCAL_ONLY) | set(CLOUD_ONLY) <= set(setting_names()), "stale exemption"
    missing = [n for n in setting_names() if n not in cloud and n not in LOCAL_ONLY]
    assert not missing, f"settings the code reads but the templates do not set: {missing}"
    for name in LOCAL_ONLY:
        assert name not in cloud, f"{name} must not be set in the cloud: {LOCAL_ONLY[name]}"


def test_templates_set_nothing_unused() -> None:
    names = set(setting_names())
    unused = sorted(n for n in cloud_setting_exprs() if n not in names and not is_host_setting(n))
    assert not unused, f"app settings nothing reads (not in shared.settings, not host): {unused}"


def test_sample_sets_every_setting_the_code_reads() -> None:
    sample = sample_settings()
    missing = [n for n in setting_names() if n not in sample and n not in CLOUD_ONLY]
    assert not missing, f"local.settings.sample.json lacks settings the code reads: {missing}"
    unused = sorted(n for n in sample if n not in setting_names() and not is_host_setting(n))
    assert not unused, f"local.settings.sample.json sets what nothing reads: {unused}"


def test_cloud_values_agree_with_the_code() -> None:
    cloud = cloud_setting_exprs()
    attribute = {spec.metadata["env"]: spec.name for spec in fields(Settings)}
    base = {"AzureWebJobsStorage__blobServiceUri": "https://placeholder.invalid/"}
    for name, (default, _doc) in setting_docs().items():
        value = cloud.get(name)
        if default is None or name in CLOUD_OVERRIDES or isinstance(value, Runtime) or not value:
            continue
        parsed = getattr(Settings.from_env({**base, name: str(value)}), attribute[name])
        assert parsed == default, (
            f"{name}: templates set {value!r}, the code's default is {default!r}"
        )
    assert cloud["BLOB_TRIGGER_SOURCE"] == "EventGrid"
    assert set(CLOUD_OVERRIDES) <= set(setting_names())


def test_cloud_settings_pass_the_settings_validation() -> None:
    placeholders = {
        n: "https://placeholder.invalid/" if isinstance(v, Runtime) else str(v)
        for n, v in cloud_setting_exprs().items()
    }
    settings = Settings.from_env(placeholders)
    assert settings.storage_connection_string is None
    assert settings.blob_trigger_source == "EventGrid"


def test_containers_exist_for_every_container_setting() -> None:
    cloud = cloud_setting_exprs()
    containers = {n: v for n, v in cloud.items() if n.endswith("_CONTAINER")}
    assert containers == {n: cloud[n] for n in setting_names() if n.endswith("_CONTAINER")}
    storage = main_scope().callee(module_symbol(APP / "storage.bicep"))
    created: list[Any] = []
    for declaration in resources_of(
        storage.file, "Microsoft.Storage/storageAccounts/blobServices/containers"
    ).values():
        config = declaration["config"]
        if "loop_type" in config:
            created.extend(storage.eval({"loop_type": config["loop_type"], "config": body(config)}))
        else:
            created.append(storage.eval(body(declaration)))
    names = [c["name"] for c in created]
    assert all(isinstance(n, str) for n in names), f"container names unknown offline: {names}"
    deployment = api_scope().symbol("deploymentContainerName")
    assert sorted(names) == sorted([*containers.values(), deployment]), (
        "storage.bicep must create one container per *_CONTAINER setting plus the deployment one"
    )
    site = body(function_app())
    package = site["properties"]["functionAppConfig"]["deployment"]["storage"]
    assert package["type"] == "blobContainer"
    assert str(api_scope().eval(package["value"])).endswith(str(deployment))
    assert package["authentication"]["type"] == "UserAssignedIdentity"
