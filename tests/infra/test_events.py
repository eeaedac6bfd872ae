"""Event Hubs, Event Grid, IoT Hub: the hub the app reads is the one its settings name, Event
Grid calls every blob trigger of the code, IoT Hub routes to the hub with its own identity.
"""

from __future__ import annotations

import ast
import re
from typing import Any

import pytest

from tests.infra.bicep import (
    APP,
    MAIN,
    REPO,
    Scope,
    body,
    cloud_setting_exprs,
    condition,
    dotted,
    main_scope,
    module_symbol,
    parse,
    resources_of,
    the_resource,
)

# The Functions name of the raw-batch blob trigger (its function_name), which Event Grid calls.
BLOB_TRIGGER_FUNCTION = "raw_blob_trigger"


def test_event_hub_matches_the_app_settings() -> None:
    cloud = cloud_setting_exprs()
    eventhubs = main_scope().callee(module_symbol(APP / "eventhubs.bicep"))
    hubs = {
        eventhubs.eval(body(declaration)["name"]): declaration
        for declaration in resources_of(
            eventhubs.file, "Microsoft.EventHub/namespaces/eventhubs"
        ).values()
    }
    # The telemetry hub the ingest reads, and the hub the alerts are published to.
    assert set(hubs) == {cloud["EVENTHUB_NAME"], cloud["ANOMALIES_EVENTHUB_NAME"]}
    for hub in hubs.values():
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
