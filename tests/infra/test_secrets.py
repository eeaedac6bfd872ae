"""No keys, no connection strings: storage and Event Hubs are reached by identity, secrets reach
the app only as Key Vault references, local authentication is off everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from shared.settings import setting_names
from tests.infra.bicep import (
    APP,
    BICEP_FILES,
    MAIN,
    SECRET_MARKERS,
    api_scope,
    body,
    cloud_setting_exprs,
    decorators,
    dotted,
    function_app,
    main_scope,
    module_symbol,
    parse,
    sample_settings,
    the_resource,
    uses_list_function,
    walk,
)

# App settings that Flex Consumption rejects (functionAppConfig replaces them).
FLEX_FORBIDDEN_SETTINGS = (
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "AzureWebJobsStorage",
)

# Settings whose values are secrets: in the cloud only Key Vault references may carry them.
SECRET_SETTING = re.compile(r"(KEY|KEYS|SECRET|PASSWORD|TOKEN)$")

KEY_VAULT_REFERENCE = re.compile(r"@Microsoft\.KeyVault\(SecretUri=[^)]+\)")


def test_storage_and_event_hubs_are_identity_based() -> None:
    cloud = cloud_setting_exprs()
    for forbidden in FLEX_FORBIDDEN_SETTINGS:
        assert forbidden not in cloud, f"{forbidden} must not be an app setting on Flex Consumption"
    for service in ("blobServiceUri", "queueServiceUri", "tableServiceUri"):
        assert f"AzureWebJobsStorage__{service}" in cloud, f"AzureWebJobsStorage__{service} missing"
    assert "EventHubConnection__fullyQualifiedNamespace" in cloud
    identity_client = api_scope().symbol("identityClientId")
    for connection in ("AzureWebJobsStorage", "EventHubConnection"):
        assert cloud[f"{connection}__credential"] == "managedidentity"
        assert cloud[f"{connection}__clientId"] == identity_client
    auth = str(cloud["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"])
    assert auth == f"ClientId={identity_client};Authorization=AAD"


def test_no_keys_in_app_settings() -> None:
    # The literal expressions of api.bicep's settings, to look for list*() calls in them.
    raw = {
        k: v for var in api_scope().file.variables.values() for k, v in _object_items(var["value"])
    }
    for name, value in cloud_setting_exprs().items():
        text = str(value)
        assert not SECRET_MARKERS.search(text), f"app setting {name} carries a secret: {text}"
        assert not re.search(r"\blist\w*\(", text, re.I), f"{name} is computed with list*()"
        is_connection_string = "connectionstring" in name.lower().replace("_", "")
        assert not is_connection_string or name == "APPLICATIONINSIGHTS_CONNECTION_STRING", (
            f"{name}: no connection strings in the cloud"
        )
        assert not uses_list_function(raw.get(name)), f"{name} is computed with a list*() function"
    # The Application Insights connection string only names the component: with local auth
    # disabled, ingestion needs the Entra ID token that the authentication string asks for.
    ai = dotted(raw["APPLICATIONINSIGHTS_CONNECTION_STRING"])
    assert ai == "applicationInsights.properties.ConnectionString", ai
    monitoring = parse(APP / "monitoring.bicep")
    _, component = the_resource(monitoring, "Microsoft.Insights/components")
    assert body(component)["properties"]["DisableLocalAuth"] is True


def _object_items(expr: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(expr, dict) and not ({"function", "operator", "loop_type"} & set(expr)):
        yield from expr.items()


def test_secrets_reach_the_app_only_as_key_vault_references() -> None:
    main = parse(MAIN)
    secure = {n for n, p in main.params.items() if "secure" in decorators(p)}
    secrets = [n for n in setting_names() if SECRET_SETTING.search(n)]
    assert secrets, "expected the API keys among the settings"
    app_settings = main.variables["appSettings"]["value"]
    literal = dict(
        item for arg in walk(app_settings) if isinstance(arg, dict) for item in _object_items(arg)
    )
    for name in setting_names():
        expr = literal.get(name)
        leaked = {leaf for leaf in _leaves_outside_empty(expr) if leaf in secure}
        assert not leaked, f"{name} takes the secure parameter(s) {leaked} as its value"
    for name in secrets:
        assert name in literal, f"secret {name} must be set in main.bicep's appSettings"
        texts = [t for t in _leaves_outside_empty(literal[name]) if t and t not in secure]
        assert texts and all(KEY_VAULT_REFERENCE.fullmatch(t) for t in texts), (
            f"{name} must be a Key Vault reference (or empty), got {texts}"
        )
    keyvault = main_scope().callee(module_symbol(APP / "keyvault.bicep"))
    _, vault = the_resource(keyvault.file, "Microsoft.KeyVault/vaults")
    assert body(vault)["properties"]["enableRbacAuthorization"] is True
    assert "accessPolicies" not in body(vault)["properties"]
    site = body(function_app())["properties"]
    assert site["keyVaultReferenceIdentity"] == "identityId"
    inner_secure = {n for n, p in keyvault.file.params.items() if "secure" in decorators(p)}
    for name, declaration in keyvault.file.resources.items():
        used = {leaf for leaf in _leaves_outside_empty(body(declaration)) if leaf in inner_secure}
        if used:
            assert declaration["type"] == "Microsoft.KeyVault/vaults/secrets", name
            assert body(declaration)["properties"]["value"] in inner_secure, name
    for name, output in keyvault.file.outputs.items():
        leaked = {leaf for leaf in _leaves_outside_empty(output["value"]) if leaf in inner_secure}
        assert not leaked, f"keyvault.bicep output {name} returns a secret"


def _leaves_outside_empty(expr: Any) -> Iterator[str]:
    """String leaves of an expression, not counting those only tested with ``empty()``."""
    if isinstance(expr, str):
        yield from [expr, *re.findall(r"\$\{([A-Za-z_]\w*)\}", expr)]
    elif isinstance(expr, list):
        for item in expr:
            yield from _leaves_outside_empty(item)
    elif isinstance(expr, dict):
        if isinstance(expr.get("function"), dict) and len(expr) == 1:
            if expr["function"]["type"] != "empty":
                yield from _leaves_outside_empty(list(expr["function"]["parameters"].values()))
        elif isinstance(expr.get("operator"), dict) and len(expr) == 1:
            yield from _leaves_outside_empty(list(expr["operator"]["operands"].values()))
        else:
            yield from _leaves_outside_empty(list(expr.values()))


def test_local_authentication_is_disabled_everywhere() -> None:
    _, storage = the_resource(parse(APP / "storage.bicep"), "Microsoft.Storage/storageAccounts")
    props = body(storage)["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    _, namespace = the_resource(parse(APP / "eventhubs.bicep"), "Microsoft.EventHub/namespaces")
    assert body(namespace)["properties"]["disableLocalAuth"] is True
    _, hub = the_resource(parse(APP / "iothub.bicep"), "Microsoft.Devices/IotHubs")
    assert body(hub)["properties"]["disableLocalAuth"] is True


def test_list_functions_only_feed_the_event_grid_webhook() -> None:
    for path in BICEP_FILES:
        text = path.read_text(encoding="utf-8")
        assert not SECRET_MARKERS.search(text), f"{path.name} mentions a key or SAS"
        parsed = parse(path)
        for name, output in parsed.outputs.items():
            assert not uses_list_function(output["value"]), (
                f"{path.name}: output {name} leaks a key"
            )
        for section in ("variables", "modules", "parameters"):
            for name, declaration in parsed.section(section).items():
                assert not uses_list_function(declaration), f"{path.name}: {name} calls list*()"
        for name, declaration in parsed.resources.items():
            if not uses_list_function(declaration["config"]):
                continue
            assert path.name == "eventgrid.bicep", f"{path.name}:{name} calls a list*() function"
            destination = body(declaration)["properties"]["destination"]
            assert uses_list_function(destination["properties"]["endpointUrl"])
            rest = {k: v for k, v in body(declaration).items() if k != "properties"}
            props = {k: v for k, v in body(declaration)["properties"].items() if k != "destination"}
            assert not uses_list_function([rest, props]), "list*() only in the webhook URL"


def test_sample_has_no_keys() -> None:
    for name, value in sample_settings().items():
        if name == "AzureWebJobsStorage":
            assert value == "UseDevelopmentStorage=true", "only the Azurite shortcut, no key"
            continue
        assert not SECRET_MARKERS.search(value), f"local.settings.sample.json {name} has a key"
        assert not re.search(r"\b\w+=[^;]*;", value), f"{name} looks like a connection string"
    committed = {n: v for n, v in sample_settings().items() if SECRET_SETTING.search(n) and v}
    assert not committed, f"secrets must stay empty in the committed sample: {sorted(committed)}"
