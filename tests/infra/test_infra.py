"""Offline checks of the deployment as code: Bicep, azure.yaml, local settings.

Nothing here reaches Azure. The Bicep files are parsed with ``pycep`` and the facts are read from
the parsed structure by a small evaluator (:class:`Scope`) that follows parameters, variables,
``union``/``items`` and module outputs across files, so the checks hold however a template is
refactored. ``checkov`` runs from its own virtual environment (``.venv-tools``, made by
``scripts/tools-venv.sh``): under CI its absence fails the suite, locally it skips.

Settings are compared with :func:`shared.settings.setting_names`, so a setting added to the code
fails these tests until the templates and ``local.settings.sample.json`` set it too.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

from shared.settings import Settings, setting_docs, setting_names

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MAIN = INFRA / "main.bicep"
APP = INFRA / "app"
TOOLS_CHECKOV = REPO / ".venv-tools" / "bin" / "checkov"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))

# The Functions name of the raw-batch blob trigger (its function_name), which Event Grid calls.
BLOB_TRIGGER_FUNCTION = "raw_blob_trigger"

# Host and platform settings: read by the Functions host or its extensions, not by shared.settings.
HOST_SETTING_PREFIXES = (
    "FUNCTIONS_",
    "APPLICATIONINSIGHTS_",
    "AzureWebJobs",
    "EventHubConnection__",
    "DEPLOYMENT_",
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
# App settings that Flex Consumption rejects (functionAppConfig replaces them).
FLEX_FORBIDDEN_SETTINGS = (
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "AzureWebJobsStorage",
)
# Text that would mean a secret travels in a setting, an output or a template.
SECRET_MARKERS = re.compile(
    r"AccountKey=|SharedAccessKey|SharedAccessSignature|listConnectionStrings|listAccountSas|"
    r"listServiceSas|primaryKey|secondaryKey",
    re.IGNORECASE,
)

# Built-in role definition ids and names.
ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "a638d3c7-ab3a-418d-83e6-5f17a39d4fde": "Azure Event Hubs Data Receiver",
    "2b629674-e913-4c01-ae53-ef4638d8f975": "Azure Event Hubs Data Sender",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
}
# The app identity's least-privilege roles, each with the resource type it must be scoped to.
APP_ROLE_SCOPES = {
    "Storage Blob Data Owner": "Microsoft.Storage/storageAccounts",
    "Storage Queue Data Contributor": "Microsoft.Storage/storageAccounts",
    "Storage Table Data Contributor": "Microsoft.Storage/storageAccounts",
    "Azure Event Hubs Data Receiver": "Microsoft.EventHub/namespaces/eventhubs",
    "Monitoring Metrics Publisher": "Microsoft.Insights/components",
    "Key Vault Secrets User": "Microsoft.KeyVault/vaults",
}
# rbac.bicep principal parameters, and the roles each may receive.
PRINCIPAL_ROLES = {
    "appPrincipalId": set(APP_ROLE_SCOPES),
    # The developer needs no secret: local runs use a local API key (scripts/postprovision.sh).
    "userPrincipalId": set(APP_ROLE_SCOPES) - {"Key Vault Secrets User"},
    "iotHubPrincipalId": {"Azure Event Hubs Data Sender"},
}

# Settings whose values are secrets: in the cloud only Key Vault references may carry them.
SECRET_SETTING = re.compile(r"(KEY|KEYS|SECRET|PASSWORD|TOKEN)$")
KEY_VAULT_REFERENCE = re.compile(r"@Microsoft\.KeyVault\(SecretUri=[^)]+\)")

CHECKOV_SKIP = re.compile(r"checkov:skip=([A-Za-z0-9_]+)(.*)$")
MIN_REASON_CHARS = 40


# --------------------------------------------------------------------------------------------
# A small evaluator over pycep's JSON.


@dataclass(frozen=True)
class Runtime:
    """A value known only at deployment time (a resource property, uniqueString, ...)."""

    text: str

    def __str__(self) -> str:
        return "${" + self.text + "}"


@dataclass
class BicepFile:
    """One parsed template."""

    path: Path
    doc: dict[str, Any]

    def section(self, name: str) -> dict[str, Any]:
        value = self.doc.get(name) or {}
        assert isinstance(value, dict)
        return value

    @property
    def params(self) -> dict[str, Any]:
        return self.section("parameters")

    @property
    def variables(self) -> dict[str, Any]:
        return self.section("variables")

    @property
    def resources(self) -> dict[str, Any]:
        return self.section("resources")

    @property
    def modules(self) -> dict[str, Any]:
        return self.section("modules")

    @property
    def outputs(self) -> dict[str, Any]:
        return self.section("outputs")

    def symbols(self) -> set[str]:
        return {*self.params, *self.variables, *self.resources, *self.modules}


@cache
def parse(path: Path) -> BicepFile:
    """Parse a template once per test session."""
    doc: dict[str, Any] = dict(BicepParser().parse(file_path=path))
    return BicepFile(path, doc)


def body(declaration: Mapping[str, Any]) -> dict[str, Any]:
    """The object of a resource or module, through ``if (...)`` and ``[for ...]`` wrappers."""
    config = declaration["config"]
    while isinstance(config, dict) and ("condition" in config or "loop_type" in config):
        if "config" not in config:
            break
        config = config["config"]
    assert isinstance(config, dict)
    return config


def condition(declaration: Mapping[str, Any]) -> Any:
    """The ``if (...)`` condition of a resource or module, or None."""
    config = declaration["config"]
    return config.get("condition") if isinstance(config, dict) else None


def accessor_path(expr: Any) -> list[Any] | None:
    """``a.b.c`` as ``["a", "b", "c"]`` (the first element may be an expression)."""
    if not (isinstance(expr, dict) and "operator" in expr):
        return None
    operator = expr["operator"]
    if operator.get("type") != "property_accessor":
        return None
    operands = operator["operands"]
    rest = accessor_path(operands["operand_2"])
    return [operands["operand_1"], *(rest if rest is not None else [operands["operand_2"]])]


def dotted(expr: Any) -> str:
    """A reference expression as text (``identity.outputs.appIdentityId``), for comparisons."""
    if isinstance(expr, str):
        return expr
    path = accessor_path(expr)
    if path is not None:
        return ".".join(dotted(part) for part in path)
    if isinstance(expr, dict) and "operator" in expr:
        operator = expr["operator"]
        if operator.get("type") == "function_accessor":
            operands = operator["operands"]
            return f"{dotted(operands['operand_1'])}.{operands['func_name']}()"
    return json.dumps(expr, sort_keys=True)


def module_file(caller: BicepFile, symbol: str) -> Path:
    relative = str(caller.modules[symbol]["detail"]["path"])
    return (caller.path.parent / relative).resolve()


@dataclass(frozen=True)
class Scope:
    """Where an expression is evaluated: a file, its caller's arguments, loop variables."""

    file: BicepFile
    arguments: Mapping[str, Any] = field(default_factory=dict)
    caller: Scope | None = None
    loop: Mapping[str, Any] = field(default_factory=dict)

    def callee(self, module_symbol: str) -> Scope:
        """The scope inside a module called from this file."""
        module = parse(module_file(self.file, module_symbol))
        params = body(self.file.modules[module_symbol]).get("params", {})
        return Scope(module, params, self)

    def symbol(self, name: str) -> Any:
        if name in self.loop:
            return self.loop[name]
        if name in self.file.variables:
            return self.eval(self.file.variables[name]["value"])
        if name in self.file.params:
            if name in self.arguments and self.caller is not None:
                return self.caller.eval(self.arguments[name])
            default = self.file.params[name].get("default")
            return Runtime(name) if default is None else self.eval(default)
        return Runtime(name)  # a resource or module reference

    def eval(self, expr: Any) -> Any:  # noqa: C901 - one branch per pycep node kind
        """Evaluate what can be known offline; the rest becomes :class:`Runtime`."""
        if expr is None or isinstance(expr, bool | int | float):
            return expr
        if isinstance(expr, str):
            if expr in self.loop or expr in self.file.symbols():
                return self.symbol(expr)
            return self.interpolate(expr) if "${" in expr else expr
        if isinstance(expr, list):
            return [self.eval(item) for item in expr]
        if "loop_type" in expr:
            detail = expr["loop_type"]["detail"]
            source = self.eval(detail["array_name"])
            if not isinstance(source, list):
                return Runtime(f"for {detail['item_name']} in {source}")
            return [
                Scope(
                    self.file, self.arguments, self.caller, {**self.loop, detail["item_name"]: x}
                ).eval(expr["config"])
                for x in source
            ]
        if "function" in expr and len(expr) == 1:
            return self.call(expr["function"])
        if "operator" in expr and len(expr) == 1:
            path = accessor_path(expr)
            if path is not None:
                return self.access(path)
            operator = expr["operator"]
            if operator["type"] == "conditional":
                test = self.eval(operator["operands"]["condition"])
                if isinstance(test, bool):
                    branch = "true_value" if test else "false_value"
                    return self.eval(operator["operands"][branch])
            return Runtime(dotted(expr))
        return {key: self.eval(value) for key, value in expr.items()}

    def call(self, function: Mapping[str, Any]) -> Any:
        kind = function["type"]
        args = [self.eval(arg) for arg in function.get("parameters", {}).values()]
        if kind == "union" and all(isinstance(arg, dict) for arg in args):
            merged: dict[str, Any] = {}
            for arg in args:
                merged.update(arg)
            return merged
        if kind == "items" and isinstance(args[0], dict):
            return [{"key": k, "value": v} for k, v in sorted(args[0].items(), key=lambda i: i[0])]
        if kind == "string" and isinstance(args[0], bool | int | float | str):
            return str(args[0]).lower() if isinstance(args[0], bool) else str(args[0])
        return Runtime(f"{kind}({', '.join(map(str, args))})")

    def access(self, path: list[Any]) -> Any:
        head, *rest = path
        if isinstance(head, str) and head in self.file.modules and rest[:1] == ["outputs"]:
            callee = self.callee(head)
            value = callee.eval(callee.file.outputs[rest[1]]["value"])
            rest = rest[2:]
        elif isinstance(head, str) and head in self.file.resources and rest == ["name"]:
            return self.eval(body(self.file.resources[head])["name"])
        else:
            value = self.eval(head) if not isinstance(head, str) else self.symbol(head)
        for key in rest:
            if isinstance(value, dict) and isinstance(key, str) and key in value:
                value = value[key]
            else:
                return Runtime(".".join(map(str, [value, *rest])))
        return value

    def interpolate(self, text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            inner = match.group(1)
            if re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", inner):
                head, *rest = inner.split(".")
                return str(self.access([head, *rest]) if rest else self.eval(head))
            return match.group(0)

        return re.sub(r"\$\{([^{}]*)\}", replace, text)


# --------------------------------------------------------------------------------------------
# Facts the tests share.


def main_scope() -> Scope:
    return Scope(parse(MAIN))


def module_symbol(path: Path) -> str:
    """The symbol under which main.bicep calls ``path``."""
    main = parse(MAIN)
    found = [s for s in main.modules if module_file(main, s) == path.resolve()]
    assert len(found) == 1, f"main.bicep must call {path.name} exactly once, found {found}"
    return found[0]


def resources_of(file: BicepFile, resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: declaration
        for name, declaration in file.resources.items()
        if declaration["type"] == resource_type and not declaration["existing"]
    }


def the_resource(file: BicepFile, resource_type: str) -> tuple[str, dict[str, Any]]:
    found = resources_of(file, resource_type)
    assert len(found) == 1, f"{file.path.name}: expected one {resource_type}, found {list(found)}"
    return next(iter(found.items()))


def api_scope() -> Scope:
    return main_scope().callee(module_symbol(APP / "api.bicep"))


def function_app() -> dict[str, Any]:
    sites = resources_of(api_scope().file, "Microsoft.Web/sites")
    assert len(sites) == 1, f"api.bicep must declare one function app, found {list(sites)}"
    return next(iter(sites.values()))


def cloud_setting_exprs() -> dict[str, Any]:
    """The function app's settings, ``{name: value}`` as evaluated offline."""
    scope = api_scope()
    site = body(function_app())
    entries = site["properties"]["siteConfig"]["appSettings"]
    settings = scope.eval(entries)
    assert isinstance(settings, list), f"appSettings is not a list offline: {settings}"
    result: dict[str, Any] = {}
    for entry in settings:
        assert isinstance(entry["name"], str), f"app setting name unknown offline: {entry}"
        assert entry["name"] not in result, f"app setting {entry['name']} set twice"
        result[entry["name"]] = entry["value"]
    return result


def sample_settings() -> dict[str, str]:
    values = json.loads((REPO / "local.settings.sample.json").read_text(encoding="utf-8"))
    assert isinstance(values.get("Values"), dict)
    return dict(values["Values"])


def decorators(declaration: Mapping[str, Any]) -> dict[str, Any]:
    return {d["type"]: d.get("argument") for d in declaration.get("decorators", [])}


def azd_generates(param: Mapping[str, Any]) -> bool:
    """Whether azd generates the parameter's value (``@metadata({azd: {type: 'generate'}})``)."""
    metadata = decorators(param).get("metadata") or {}
    return isinstance(metadata, dict) and metadata.get("azd", {}).get("type") == "generate"


def is_host_setting(name: str) -> bool:
    return name.startswith(HOST_SETTING_PREFIXES)


def walk(expr: Any) -> Iterator[Any]:
    """Every node of a pycep expression."""
    yield expr
    if isinstance(expr, dict):
        for value in expr.values():
            yield from walk(value)
    elif isinstance(expr, list):
        for value in expr:
            yield from walk(value)


def uses_list_function(expr: Any) -> bool:
    for node in walk(expr):
        if isinstance(node, dict):
            function = node.get("function")
            if isinstance(function, dict) and function.get("type") == "list_func":
                return True
            operator = node.get("operator")
            if isinstance(operator, dict) and operator.get("type") == "function_accessor":
                if str(operator["operands"].get("func_name", "")).lower().startswith("list"):
                    return True
        if isinstance(node, str) and re.search(r"\blist\w*\(", node, re.IGNORECASE):
            return True
    return False


# --------------------------------------------------------------------------------------------
# Layout and parsing.


def test_azd_layout_is_complete() -> None:
    expected = {"api", "storage", "eventhubs", "iothub", "eventgrid", "monitoring", "identity"}
    expected.add("keyvault")
    present = {p.stem for p in APP.glob("*.bicep")}
    assert expected <= present, f"missing infra/app modules: {sorted(expected - present)}"
    assert [p.relative_to(INFRA).as_posix() for p in INFRA.rglob("rbac*.bicep")] == [
        "app/rbac.bicep"
    ], "exactly one rbac.bicep, in infra/app"
    assert (REPO / "azure.yaml").is_file() and (INFRA / "main.parameters.json").is_file()
    main = parse(MAIN)
    assert main.section("globals")["scope"]["value"] == "subscription"
    called = {module_file(main, symbol) for symbol in main.modules}
    unused = [p.name for p in APP.glob("*.bicep") if p.resolve() not in called]
    assert not unused, f"modules main.bicep never calls: {unused}"


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_bicep_parses(path: Path) -> None:
    parsed = parse(path)
    assert parsed.resources or parsed.modules, f"{path.name} declares nothing"


def test_parameters_file_matches_main() -> None:
    document = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))
    given = document["parameters"]
    params = parse(MAIN).params
    unknown = sorted(set(given) - set(params))
    assert not unknown, f"main.parameters.json sets parameters main.bicep lacks: {unknown}"
    required = sorted(
        n for n, p in params.items() if p.get("default") is None and not azd_generates(p)
    )
    assert set(required) <= set(given), f"required parameters not given: {required}"
    for name, entry in given.items():
        match = re.fullmatch(r"\$\{[A-Z0-9_]+(?:=([^}]*))?\}", str(entry["value"]))
        assert match, f"{name} should come from the azd environment (${{VAR}} or ${{VAR=default}})"
        default = params[name].get("default")
        if match.group(1) is not None and isinstance(default, bool | int | str):
            expected = str(default).lower() if isinstance(default, bool) else str(default)
            assert match.group(1) == expected, (
                f"{name}: parameters file {match.group(1)!r} vs {default!r}"
            )


# --------------------------------------------------------------------------------------------
# Settings: the templates and the sample set exactly what the code reads.


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


# --------------------------------------------------------------------------------------------
# No keys, no connection strings.


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


# --------------------------------------------------------------------------------------------
# Event Hubs, Event Grid, IoT Hub.


def test_event_hub_matches_the_app_settings() -> None:
    cloud = cloud_setting_exprs()
    eventhubs = main_scope().callee(module_symbol(APP / "eventhubs.bicep"))
    _, hub = the_resource(eventhubs.file, "Microsoft.EventHub/namespaces/eventhubs")
    assert eventhubs.eval(body(hub)["name"]) == cloud["EVENTHUB_NAME"]
    partitions = body(hub)["properties"]["partitionCount"]
    assert partitions in eventhubs.file.params, "partition count must be a parameter"
    assert "eventHubPartitionCount" in parse(MAIN).params
    groups = resources_of(eventhubs.file, "Microsoft.EventHub/namespaces/eventhubs/consumergroups")
    names = {eventhubs.eval(body(g)["name"]) for g in groups.values()}
    assert cloud["EVENTHUB_CONSUMER_GROUP"] in names, f"consumer group not created: {names}"


def event_grid_subscriptions() -> dict[str, str]:
    """``{function name: container}`` that the Event Grid subscriptions deliver to, offline."""
    scope = main_scope().callee(module_symbol(APP / "eventgrid.bicep"))
    _, topic = the_resource(scope.file, "Microsoft.EventGrid/systemTopics")
    assert body(topic)["properties"]["topicType"] == "Microsoft.Storage.StorageAccounts"
    source = dotted(body(topic)["properties"]["source"])
    assert source.endswith(".id") and scope.file.resources[source[:-3]]["type"] == (
        "Microsoft.Storage/storageAccounts"
    )
    host = scope.file.resources["functionHost"]
    assert host["type"] == "Microsoft.Web/sites/host" and host["existing"] is True
    assert body(host)["name"] == "default"
    site = scope.file.resources[body(host)["parent"]]
    assert site["type"] == "Microsoft.Web/sites" and dotted(body(site)["name"]) == "functionAppName"
    app_name = dotted(scope.arguments["functionAppName"])
    assert app_name == f"{module_symbol(APP / 'api.bicep')}.outputs.functionAppName"

    _, subscription = the_resource(
        scope.file, "Microsoft.EventGrid/systemTopics/eventSubscriptions"
    )
    loop = subscription["config"]["loop_type"]["detail"]
    gate = scope.file.variables[loop["array_name"]]["value"]["operator"]
    assert gate["type"] == "conditional", "subscriptions must wait for the deployed code"
    assert gate["operands"]["condition"] == "subscriptionEnabled"
    assert (
        gate["operands"]["true_value"] == "blobTriggers" and gate["operands"]["false_value"] == []
    )
    triggers = scope.symbol("blobTriggers")
    assert isinstance(triggers, list) and triggers, "no blob trigger is subscribed"
    webhook = re.compile(
        r"https://.+/runtime/webhooks/blobs\?functionName=Host\.Functions\.(\w+)&code="
        r"\$\{functionHost\.listKeys\(\)\.systemKeys\.blobs_extension\}"
    )
    delivered: dict[str, str] = {}
    for trigger in triggers:
        item = Scope(scope.file, scope.arguments, scope.caller, {loop["item_name"]: trigger})
        props = item.eval(body(subscription)["properties"])
        assert props["filter"]["includedEventTypes"] == ["Microsoft.Storage.BlobCreated"]
        assert props["destination"]["endpointType"] == "WebHook"
        match = webhook.fullmatch(str(props["destination"]["properties"]["endpointUrl"]))
        assert match, props["destination"]["properties"]["endpointUrl"]
        subject = re.fullmatch(
            r"/blobServices/default/containers/([a-z0-9-]+)/", props["filter"]["subjectBeginsWith"]
        )
        assert subject, props["filter"]["subjectBeginsWith"]
        assert match.group(1) not in delivered, f"{match.group(1)} subscribed twice"
        delivered[match.group(1)] = subject.group(1)
    return delivered


def test_event_grid_subscription_targets_the_raw_blob_trigger() -> None:
    cloud = cloud_setting_exprs()
    delivered = event_grid_subscriptions()
    assert delivered.get(BLOB_TRIGGER_FUNCTION) == cloud["RAW_CONTAINER"], delivered


def blob_trigger_functions() -> dict[str, str]:
    """``{function name: path}`` of every blob trigger in the code, read from the source.

    The Functions name is the ``function_name`` decorator's argument (a literal or a module
    constant) or else the decorated function's name, as the Python v2 model does.
    """

    def string_constants(tree: ast.Module) -> dict[str, str]:
        return {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            for target in node.targets
            if isinstance(target, ast.Name)
        }

    # The Durable names of the multivariate family live in one module, imported by functions/.
    workflow = REPO / "shared" / "multivariate" / "workflow.py"
    durable_names = string_constants(ast.parse(workflow.read_text(encoding="utf-8")))
    found: dict[str, str] = {}
    for source in [REPO / "function_app.py", *sorted((REPO / "functions").glob("*.py"))]:
        if not source.exists():
            continue
        tree = ast.parse(source.read_text(encoding="utf-8"))
        constants = {**durable_names, **string_constants(tree)}

        def text(expr: ast.expr, constants: dict[str, Any] = constants) -> str | None:
            if isinstance(expr, ast.Name):
                return str(constants[expr.id]) if expr.id in constants else None
            return str(ast.literal_eval(expr))

        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            name: str | None = node.name
            path: str | None = None
            for decorator in node.decorator_list:
                if not (
                    isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)
                ):
                    continue
                if decorator.func.attr == "function_name" and decorator.args:
                    name = text(decorator.args[0])
                if decorator.func.attr == "blob_trigger":
                    keywords = {k.arg: k.value for k in decorator.keywords}
                    path = text(keywords["path"])
                    assert path, f"{source.name}:{node.name}: blob path must be a literal"
            if path is not None:
                assert name, f"{source.name}:{node.name}: function name must be a literal/constant"
                found[name] = path
    return found


def test_every_blob_trigger_in_the_code_gets_its_events() -> None:
    """Cross-check with the code, read statically: each blob trigger has its subscription."""
    triggers = blob_trigger_functions()
    if not triggers:
        pytest.skip("no blob trigger in function_app.py or functions/ yet: nothing to cross-check")
    assert BLOB_TRIGGER_FUNCTION in triggers, (
        f"Event Grid calls {BLOB_TRIGGER_FUNCTION}: {triggers}"
    )
    cloud = cloud_setting_exprs()
    expected = {}
    for name, path in triggers.items():
        container = path.split("/")[0]
        setting = re.fullmatch(r"%(\w+)%", container)
        expected[name] = cloud[setting.group(1)] if setting else container
    assert event_grid_subscriptions() == expected, (
        "one subscription per blob trigger, same container"
    )


def test_iot_hub_routes_to_the_event_hub_with_its_own_identity() -> None:
    main = parse(MAIN)
    symbol = module_symbol(APP / "iothub.bicep")
    assert condition(main.modules[symbol]) == "deployIotHub"
    assert "rbac" in body(main.modules[symbol]).get("dependsOn", []), "role before the route"
    scope = main_scope().callee(symbol)
    _, hub = the_resource(scope.file, "Microsoft.Devices/IotHubs")
    routing = body(hub)["properties"]["routing"]
    endpoints = routing["endpoints"]["eventHubs"]
    assert len(endpoints) == 1
    endpoint = endpoints[0]
    assert endpoint["authenticationType"] == "identityBased"
    assert "connectionString" not in endpoint
    assert scope.eval(endpoint["entityPath"]) == cloud_setting_exprs()["EVENTHUB_NAME"]
    identity = dotted(scope.arguments[endpoint["identity"]["userAssignedIdentity"]])
    assert identity == f"{module_symbol(APP / 'identity.bicep')}.outputs.iotHubIdentityId"
    routes = [r for r in routing["routes"] if r["isEnabled"]]
    assert [r["endpointNames"] for r in routes] == [[endpoint["name"]]]
    assert routes[0]["source"] == "DeviceMessages"


# --------------------------------------------------------------------------------------------
# Role assignments: least privilege, named with guid().


def role_assignments() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in BICEP_FILES:
        for name, declaration in parse(path).resources.items():
            if declaration["type"] == "Microsoft.Authorization/roleAssignments":
                assert path == APP / "rbac.bicep", f"{path.name}:{name}: roles belong in rbac.bicep"
                found.append((name, declaration))
    return found


def test_roles_are_least_privilege_and_named_with_guid() -> None:
    rbac = parse(APP / "rbac.bicep")
    scope = Scope(rbac)
    granted: dict[str, set[str]] = {principal: set() for principal in PRINCIPAL_ROLES}
    for name, declaration in role_assignments():
        config = body(declaration)
        props = config["properties"]
        principal = props["principalId"]
        assert principal in PRINCIPAL_ROLES, f"{name}: unexpected principal {principal}"
        role_function = props["roleDefinitionId"]["function"]
        assert role_function["type"] == "subscription_resource_id", f"{name}: built-in roles only"
        role_args = role_function["parameters"]
        assert role_args["resource_type"] == "Microsoft.Authorization/roleDefinitions"
        role_guid = scope.eval(role_args["resource_name_1"])
        assert role_guid in ROLES, f"{name}: unknown role {role_guid}"
        role = ROLES[role_guid]
        assert role in PRINCIPAL_ROLES[principal], f"{name}: {principal} may not get {role}"
        assert role not in granted[principal], f"{name}: {role} granted twice to {principal}"
        granted[principal].add(role)
        target = rbac.resources[config["scope"]]["type"]
        if role in APP_ROLE_SCOPES:
            assert target == APP_ROLE_SCOPES[role], f"{name}: {role} scoped to {target}"
        else:
            assert target == "Microsoft.EventHub/namespaces/eventhubs", f"{name}: too wide"
        guid = config["name"].get("function", {}) if isinstance(config["name"], dict) else {}
        assert guid.get("type") == "guid", f"{name}: name must be guid(...)"
        args = [dotted(a) for a in guid["parameters"].values()]
        assert f"{config['scope']}.id" in args and principal in args, f"{name}: guid args {args}"
        assert dotted(role_args["resource_name_1"]) in args, f"{name}: guid lacks the role id"
    assert granted["appPrincipalId"] == set(APP_ROLE_SCOPES), granted
    assert granted["iotHubPrincipalId"] == {"Azure Event Hubs Data Sender"}


def test_role_principals_are_the_identities_that_use_them() -> None:
    main = parse(MAIN)
    rbac_args = body(main.modules[module_symbol(APP / "rbac.bicep")])["params"]
    api_args = body(main.modules[module_symbol(APP / "api.bicep")])["params"]
    identity = module_symbol(APP / "identity.bicep")
    assert dotted(rbac_args["appPrincipalId"]) == f"{identity}.outputs.appIdentityPrincipalId"
    assert dotted(api_args["identityId"]) == f"{identity}.outputs.appIdentityId"
    assert dotted(api_args["identityClientId"]) == f"{identity}.outputs.appIdentityClientId"
    assert dotted(rbac_args["iotHubPrincipalId"]) == f"{identity}.outputs.iotHubIdentityPrincipalId"
    outputs = parse(APP / "identity.bicep").outputs
    owners = {
        name: dotted(outputs[name]["value"]).split(".")[0]
        for name in ("appIdentityId", "appIdentityPrincipalId", "appIdentityClientId")
    }
    assert len(set(owners.values())) == 1, (
        f"app identity outputs from different resources: {owners}"
    )
    site_identity = body(function_app())["identity"]
    assert site_identity["type"] == "UserAssigned"
    assert list(site_identity["userAssignedIdentities"]) == ["'${identityId}'"]


# --------------------------------------------------------------------------------------------
# Flex Consumption, azure.yaml, the post-provision hook.


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


# --------------------------------------------------------------------------------------------
# checkov.


def skip_comments() -> list[tuple[str, int, str, str]]:
    """Every ``checkov:skip`` comment: (file, line, check id, reason)."""
    found = []
    for path in BICEP_FILES:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            match = CHECKOV_SKIP.search(line)
            if match:
                reason = match.group(2).removeprefix(":").strip()
                found.append((path.name, number, match.group(1), reason))
    return found


def test_every_checkov_skip_has_a_reason() -> None:
    for file, line, check, reason in skip_comments():
        assert line > 0 and file.endswith(".bicep")
        assert re.fullmatch(r"CKV2?_AZURE_\d+", check), f"{file}:{line}: bad check id {check}"
        assert len(reason) >= MIN_REASON_CHARS, f"{file}:{line}: {check} needs a real reason"


def test_checkov_passes() -> None:
    if not TOOLS_CHECKOV.exists():
        message = f"checkov not installed at {TOOLS_CHECKOV}: run scripts/tools-venv.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    run = subprocess.run(
        [str(TOOLS_CHECKOV), "--directory", str(INFRA), "--framework", "bicep",
         "--output", "json", "--skip-download", "--compact"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    report = json.loads(run.stdout)
    summary, results = report["summary"], report["results"]
    assert summary["parsing_errors"] == 0, results.get("parsing_errors")
    assert summary["passed"] > 0 and summary["resource_count"] > 0, summary
    failed = [(r["check_id"], r["resource"], r["file_path"]) for r in results["failed_checks"]]
    assert not failed, f"checkov failures (fix, or skip in place with a reason): {failed}"
    skipped = {(r["check_id"], r["resource"]) for r in results["skipped_checks"]}
    for record in results["skipped_checks"]:
        reason = record["check_result"].get("suppress_comment", "").strip().lstrip(":").strip()
        assert len(reason) >= MIN_REASON_CHARS, f"{record['check_id']} skipped without a reason"
    declared = [c[2] for c in skip_comments()]
    assert sorted(declared) == sorted(c for c, _ in skipped), "stale or unmatched skip comments"
    assert run.returncode == 0, run.stderr[-2000:]
