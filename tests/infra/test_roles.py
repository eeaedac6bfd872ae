"""Role assignments: least privilege, scoped to the resource that needs them, named with
``guid()``, and given only to the identities that use them.
"""

from __future__ import annotations

from typing import Any

from tests.infra.bicep import (
    APP,
    BICEP_FILES,
    MAIN,
    Scope,
    body,
    dotted,
    function_app,
    module_symbol,
    parse,
)

# The app identity's least-privilege roles, each with the resource type it must be scoped to.
APP_ROLE_SCOPES = {
    "Storage Blob Data Owner": "Microsoft.Storage/storageAccounts",
    "Storage Queue Data Contributor": "Microsoft.Storage/storageAccounts",
    "Storage Table Data Contributor": "Microsoft.Storage/storageAccounts",
    "Azure Event Hubs Data Receiver": "Microsoft.EventHub/namespaces/eventhubs",
    "Azure Event Hubs Data Sender": "Microsoft.EventHub/namespaces/eventhubs",
    "Monitoring Metrics Publisher": "Microsoft.Insights/components",
    "Key Vault Secrets User": "Microsoft.KeyVault/vaults",
}
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

# rbac.bicep principal parameters, and the roles each may receive.
PRINCIPAL_ROLES = {
    "appPrincipalId": set(APP_ROLE_SCOPES),
    # The developer needs no secret: local runs use a local API key (scripts/postprovision.sh).
    "userPrincipalId": set(APP_ROLE_SCOPES) - {"Key Vault Secrets User"},
    "iotHubPrincipalId": {"Azure Event Hubs Data Sender"},
}


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
