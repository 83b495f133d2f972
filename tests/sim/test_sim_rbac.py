"""RBAC denials (``tenant.deny``) and revokeUserDelegationKeys, through the official client in both mounts."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from sim_helpers import NOW, PHI_RG, Sim

from irflow.sim import Tenant
from irflow.sim.rbac import DenyRule
from irflow.sim.storage import urls as storage_urls

REGENERATE = "Microsoft.Storage/storageAccounts/regeneratekey/action"


def account_id(sim: Sim, name: str, group: str = PHI_RG) -> str:
    return (
        f"/subscriptions/{sim.subscription_id}/resourceGroups/{group}"
        f"/providers/Microsoft.Storage/storageAccounts/{name}"
    )


def test_denied_regenerate_key_is_403_authorization_failed_and_changes_nothing(sim: Sim) -> None:
    sim.tenant.deny(REGENERATE)
    before = sim.tenant.storage_account("phiimaging").key_value("key1")
    client = sim.client()

    with pytest.raises(HttpResponseError) as caught:
        client.storage_accounts.regenerate_key(PHI_RG, "phiimaging", {"keyName": "key1"})

    error = caught.value
    assert error.status_code == 403
    assert error.error.code == "AuthorizationFailed"
    principal = sim.tenant.principal_id
    scope = account_id(sim, "phiimaging")
    assert error.error.message == (
        f"The client '{principal}' with object id '{principal}' does not have authorization to perform "
        f"action '{REGENERATE}' over scope '{scope}' or the scope is invalid. "
        "If access was recently granted, please refresh your credentials."
    )
    assert sim.tenant.storage_account("phiimaging").key_value("key1") == before
    [entry] = sim.tenant.journal.entries()
    assert (entry.status, entry.route, entry.is_write) == (403, "storage.accounts.regenerate_key", True)
    assert entry.response["error"]["code"] == "AuthorizationFailed"
    # Other operations are still granted.
    assert client.storage_accounts.list_keys(PHI_RG, "phiimaging").keys_property


def test_scope_is_a_case_insensitive_prefix_on_segment_boundaries(sim: Sim) -> None:
    sim.tenant.deny("microsoft.storage/storageaccounts/WRITE", account_id(sim, "PHIIMAGING").upper())
    client = sim.client()
    patch = {"properties": {"allowBlobPublicAccess": False}}

    with pytest.raises(HttpResponseError) as caught:
        client.storage_accounts.update(PHI_RG, "phiimaging", patch)
    assert caught.value.status_code == 403
    assert "Microsoft.Storage/storageAccounts/write" in caught.value.error.message
    assert sim.tenant.storage_account("phiimaging").allows_blob_public_access is True

    # Another account in the same group, and reads of the denied one, are not covered.
    assert (
        client.storage_accounts.update(PHI_RG, "phipatientexports", patch).allow_blob_public_access is False
    )
    assert client.storage_accounts.get_properties(PHI_RG, "phiimaging").name == "phiimaging"

    sim.tenant.allow_all()
    assert client.storage_accounts.update(PHI_RG, "phiimaging", patch).allow_blob_public_access is False


def test_group_scope_and_wildcards(sim: Sim) -> None:
    group = f"/subscriptions/{sim.subscription_id}/resourceGroups/{PHI_RG}"
    sim.tenant.deny("Microsoft.Storage/storageAccounts/blobServices/containers/*", group)
    client = sim.client()

    with pytest.raises(HttpResponseError) as caught:
        client.blob_containers.set_legal_hold(PHI_RG, "phiimaging", "dicom-studies", {"tags": ["case2026"]})
    assert caught.value.status_code == 403
    assert (
        "'Microsoft.Storage/storageAccounts/blobServices/containers/setLegalHold/action' over scope "
        f"'{account_id(sim, 'phiimaging')}/blobServices/default/containers/dicom-studies'"
    ) in caught.value.error.message
    assert sim.tenant.storage_account("phiimaging").container("dicom-studies").has_legal_hold is False
    with pytest.raises(HttpResponseError):
        list(client.blob_containers.list(PHI_RG, "phiimaging"))
    # Outside the group, and the blob service itself, still allowed.
    assert [c.name for c in client.blob_containers.list("rg-web-prod", "webassetscdn")] == ["site-assets"]
    assert client.blob_services.get_service_properties(PHI_RG, "phiimaging").name == "default"


@pytest.mark.parametrize(
    ("operation", "call"),
    [
        (storage_urls.ACCOUNT_READ, lambda c: c.storage_accounts.get_properties(PHI_RG, "phiimaging")),
        (storage_urls.LIST_KEYS, lambda c: c.storage_accounts.list_keys(PHI_RG, "phiimaging")),
        (
            storage_urls.REVOKE_USER_DELEGATION_KEYS,
            lambda c: c.storage_accounts.revoke_user_delegation_keys(PHI_RG, "phiimaging"),
        ),
        (
            storage_urls.BLOB_SERVICE_WRITE,
            lambda c: c.blob_services.set_service_properties(
                PHI_RG, "phiimaging", {"delete_retention_policy": {"enabled": True, "days": 7}}
            ),
        ),
        (
            storage_urls.CONTAINER_WRITE,
            lambda c: c.blob_containers.update(
                PHI_RG, "phiimaging", "dicom-studies", {"properties": {"publicAccess": "None"}}
            ),
        ),
        (
            storage_urls.CLEAR_LEGAL_HOLD,
            lambda c: c.blob_containers.clear_legal_hold(
                PHI_RG, "phiimaging", "dicom-studies", {"tags": ["x12"]}
            ),
        ),
        (
            storage_urls.IMMUTABILITY_POLICY_WRITE,
            lambda c: c.blob_containers.create_or_update_immutability_policy(
                PHI_RG,
                "phiimaging",
                "dicom-studies",
                parameters={"immutability_period_since_creation_in_days": 30},
            ),
        ),
    ],
)
def test_every_route_checks_its_operation(sim: Sim, operation: str, call) -> None:  # type: ignore[no-untyped-def]
    sim.tenant.deny(operation)
    with pytest.raises(HttpResponseError) as caught:
        call(sim.client())
    assert caught.value.status_code == 403
    assert caught.value.error.code == "AuthorizationFailed"
    assert f"action '{operation}'" in caught.value.error.message


def test_every_azure_route_names_its_operation() -> None:
    from irflow.sim.urls import ROUTES

    assert all(route.operation for route in ROUTES), [r.name for r in ROUTES if not r.operation]


def test_deny_rules_from_a_scenario_survive_reset_and_show_in_state(clock) -> None:  # type: ignore[no-untyped-def]
    from irflow.sim.scenario import read_scenario

    document = read_scenario("demo")
    document["rbac"] = {"deny": [{"permission": REGENERATE, "scope": "/subscriptions"}]}
    tenant = Tenant.from_scenario(document, clock=clock)
    assert tenant.rbac.rules == [DenyRule(REGENERATE, "/subscriptions")]
    tenant.reset()
    assert tenant.state()["rbac"] == {"deny": [{"permission": REGENERATE, "scope": "/subscriptions"}]}
    with pytest.raises(ValueError, match="invalid scenario"):
        Tenant.from_scenario({**document, "rbac": {"deny": [{"permission": REGENERATE, "scope": "rg"}]}})


def test_rule_matching_units() -> None:
    rule = DenyRule("Microsoft.Storage/*", "/subscriptions/S/resourceGroups/rg-phi")
    assert rule.matches("microsoft.storage/storageAccounts/read", "/subscriptions/s/resourcegroups/RG-PHI")
    assert rule.matches("Microsoft.Storage/storageAccounts/read", "/subscriptions/S/resourceGroups/rg-phi/x")
    assert not rule.matches(
        "Microsoft.Storage/storageAccounts/read", "/subscriptions/S/resourceGroups/rg-phi2"
    )
    assert not rule.matches("Microsoft.KeyVault/vaults/read", "/subscriptions/S/resourceGroups/rg-phi")
    assert DenyRule("x/read").matches("X/READ", "/anything")
    with pytest.raises(ValueError):
        DenyRule("", "/")


def test_admin_rbac_routes(sim: Sim) -> None:
    client = sim.client()
    body = {"permission": REGENERATE, "scope": "/"}
    answer = client.send_request(HttpRequest("POST", "/_sim/rbac/deny", json=body))
    assert answer.status_code == 200 and answer.json() == {"deny": [body]}
    assert client.send_request(HttpRequest("GET", "/_sim/rbac")).json() == {"deny": [body]}
    with pytest.raises(HttpResponseError):
        client.storage_accounts.regenerate_key(PHI_RG, "phiimaging", {"keyName": "key1"})
    bad = client.send_request(HttpRequest("POST", "/_sim/rbac/deny", json={"scope": "/"}))
    assert bad.status_code == 400
    assert client.send_request(HttpRequest("POST", "/_sim/rbac/allow-all")).json() == {"deny": []}
    client.storage_accounts.regenerate_key(PHI_RG, "phiimaging", {"keyName": "key1"})


# ------------------------------------------------------------------------------ revokeUserDelegationKeys
def test_revoke_user_delegation_keys_answers_200_empty_and_is_recorded(sim: Sim) -> None:
    client = sim.client()
    assert sim.tenant.storage_account("phipatientexports").user_delegation_keys_revoked_at is None

    def raw(pipeline_response, deserialized, headers):  # type: ignore[no-untyped-def]
        return pipeline_response.http_response

    response = client.storage_accounts.revoke_user_delegation_keys(PHI_RG, "phipatientexports", cls=raw)
    assert response.status_code == 200
    assert response.body() == b""

    account = sim.tenant.storage_account("phipatientexports")
    assert account.user_delegation_keys_revoked_at == NOW
    assert account.summary()["user_delegation_keys_revoked_at"] == "2026-03-02T09:30:00.0000000Z"
    [entry] = sim.tenant.journal.writes()
    assert entry.route == "storage.accounts.revoke_user_delegation_keys"
    assert entry.method == "POST" and entry.status == 200 and entry.response is None
    assert sim.tenant.storage_account("phiimaging").summary()["user_delegation_keys_revoked_at"] is None


def test_revoke_user_delegation_keys_of_a_missing_account_is_404(sim: Sim) -> None:
    from azure.core.exceptions import ResourceNotFoundError

    with pytest.raises(ResourceNotFoundError):
        sim.client().storage_accounts.revoke_user_delegation_keys(PHI_RG, "nosuchaccount")


# ------------------------------------------------------------------ role assignments as resources
# Wire format and rules: azure-rest-api-specs, specification/authorization/resource-manager/
# Microsoft.Authorization/stable/2022-04-01/authorization-RoleAssignmentsCalls.json (x-ms-examples), and
# https://learn.microsoft.com/azure/role-based-access-control/role-assignments-list-rest (filters).
CRYPTO_USER = "12338af0-0e69-4776-bea7-57ae8d297424"
SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
GROUP = "8e3f1a52-7c4d-4b9e-a6f0-2d1c5b7e9a43"


def authorization_client(sim: Sim):  # type: ignore[no-untyped-def]
    from azure.mgmt.authorization import AuthorizationManagementClient

    from irflow.azure.clients import StaticTokenCredential

    return AuthorizationManagementClient(
        StaticTokenCredential(sim.tenant.token),
        sim.subscription_id,
        base_url=sim.endpoint,
        credential_scopes=[sim.endpoint + "/.default"],
        connection_verify=sim.verify,
    )


def _vault_scope(sim: Sim) -> str:
    return sim.tenant.key_vault("kv-phi-prod").id


def _definition(sim: Sim, role: str) -> str:
    return f"/subscriptions/{sim.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role}"


def test_role_assignment_put_get_list_delete_round_trip(sim: Sim) -> None:
    client = authorization_client(sim)
    vault = _vault_scope(sim)
    name = "3f2b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
    created = client.role_assignments.create(
        vault,
        name,
        {
            "properties": {
                "roleDefinitionId": _definition(sim, CRYPTO_USER),
                "principalId": GROUP,
                "principalType": "Group",
            }
        },
    )
    assert created.id == f"{vault}/providers/Microsoft.Authorization/roleAssignments/{name}"
    assert (created.scope, created.principal_id, created.principal_type) == (vault, GROUP, "Group")
    assert created.role_definition_id.endswith(CRYPTO_USER)
    assert client.role_assignments.get(vault, name).principal_id == GROUP
    assert [a.name for a in client.role_assignments.list_for_scope(vault)] == [name]

    deleted = client.role_assignments.delete(vault, name)
    assert deleted is not None and deleted.name == name
    assert client.role_assignments.delete(vault, name) is None  # 204: nothing to delete
    from azure.core.exceptions import ResourceNotFoundError

    with pytest.raises(ResourceNotFoundError) as caught:
        client.role_assignments.get(vault, name)
    assert caught.value.error.code == "RoleAssignmentNotFound"
    assert [e.status for e in sim.tenant.journal.writes()] == [201, 200, 204]


def test_list_filters_at_scope_and_principal(sim: Sim) -> None:
    """No filter: at, above and below the scope; atScope(): at or above; principalId eq: that principal's
    at, above and below."""
    tenant = sim.tenant
    vault = _vault_scope(sim)
    group_scope = vault.split("/providers/")[0]
    subscription = f"/subscriptions/{sim.subscription_id}"
    above = tenant.assign_role("Key Vault Reader", subscription, GROUP, "Group")
    at = tenant.assign_role("Key Vault Crypto User", vault, GROUP, "Group")
    below = tenant.assign_role("Key Vault Secrets User", f"{vault}/secrets/etl-db", ETL_PRINCIPAL)
    other_group = tenant.assign_role("Reader", f"{subscription}/resourceGroups/rg-web-prod", ETL_PRINCIPAL)
    client = authorization_client(sim)

    def names(scope: str, text: str | None = None) -> set[str]:
        return {a.name for a in client.role_assignments.list_for_scope(scope, filter=text)}

    assert names(vault) == {above.name, at.name, below.name}
    assert names(vault, "atScope()") == {above.name, at.name}
    assert names(group_scope, f"principalId eq '{ETL_PRINCIPAL}'") == {below.name}
    assert names(subscription, f"principalId eq '{ETL_PRINCIPAL}'") == {below.name, other_group.name}
    from azure.core.exceptions import HttpResponseError as Error

    with pytest.raises(Error) as caught:
        names(vault, "roleName eq 'x'")
    assert caught.value.status_code == 400


ETL_PRINCIPAL = "4b7d2e19-3a6c-4f8e-9d15-7c2a0e6b8f31"


@pytest.mark.parametrize(
    ("name", "properties", "status", "code"),
    [
        (
            "not-a-guid",
            {"roleDefinitionId": CRYPTO_USER, "principalId": GROUP},
            400,
            "InvalidRoleAssignmentId",
        ),
        (
            "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d",
            {"roleDefinitionId": "00000000-0000-4000-8000-000000000000", "principalId": GROUP},
            400,
            "RoleDefinitionDoesNotExist",
        ),
        (
            "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d",
            {"roleDefinitionId": CRYPTO_USER, "principalId": "x"},
            400,
            "InvalidPrincipalId",
        ),
    ],
)
def test_invalid_role_assignment_is_400_and_writes_nothing(
    sim: Sim,
    name: str,
    properties: dict,
    status: int,
    code: str,  # type: ignore[type-arg]
) -> None:
    client = authorization_client(sim)
    with pytest.raises(HttpResponseError) as caught:
        client.role_assignments.create(_vault_scope(sim), name, {"properties": properties})
    assert (caught.value.status_code, caught.value.error.code) == (status, code)
    assert sim.tenant.role_assignments.all() == []


def test_duplicate_assignment_is_409_and_an_assignment_cannot_change(sim: Sim) -> None:
    client = authorization_client(sim)
    vault = _vault_scope(sim)
    first = sim.tenant.assign_role("Key Vault Crypto User", vault, GROUP, "Group")
    body = {"properties": {"roleDefinitionId": _definition(sim, CRYPTO_USER), "principalId": GROUP}}
    with pytest.raises(HttpResponseError) as caught:
        client.role_assignments.create(vault, "7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f", body)
    assert (caught.value.status_code, caught.value.error.code) == (409, "RoleAssignmentExists")
    changed = {"properties": {"roleDefinitionId": _definition(sim, SECRETS_USER), "principalId": GROUP}}
    with pytest.raises(HttpResponseError) as caught:
        client.role_assignments.create(vault, first.name, changed)
    assert (caught.value.status_code, caught.value.error.code) == (400, "RoleAssignmentUpdateNotPermitted")
    assert [a.role.id for a in sim.tenant.role_assignments.all()] == [CRYPTO_USER]


def test_role_definitions_are_azures_built_in_ones(sim: Sim) -> None:
    """Ids and data actions from https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/
    security (Key Vault section)."""
    client = authorization_client(sim)
    crypto_user = client.role_definitions.get_by_id(_definition(sim, CRYPTO_USER))
    assert crypto_user.role_name == "Key Vault Crypto User" and crypto_user.role_type == "BuiltInRole"
    assert "Microsoft.KeyVault/vaults/keys/unwrap/action" in crypto_user.permissions[0].data_actions
    [officer] = client.role_definitions.list(
        _vault_scope(sim), filter="roleName eq 'Key Vault Crypto Officer'"
    )
    assert officer.name == "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"
    assert officer.permissions[0].data_actions == [
        "Microsoft.KeyVault/vaults/keys/*",
        "Microsoft.KeyVault/vaults/keyrotationpolicies/*",
    ]


def test_role_assignment_writes_follow_deny_rules_and_reset(sim: Sim) -> None:
    """Deny rules apply to Microsoft.Authorization operations like any other; reset restores the scenario's
    assignments (none in the demo)."""
    vault = _vault_scope(sim)
    sim.tenant.deny("Microsoft.Authorization/roleAssignments/write", vault)
    client = authorization_client(sim)
    body = {"properties": {"roleDefinitionId": _definition(sim, CRYPTO_USER), "principalId": GROUP}}
    with pytest.raises(HttpResponseError) as caught:
        client.role_assignments.create(vault, "9e0f1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2b", body)
    assert caught.value.error.code == "AuthorizationFailed"
    sim.tenant.allow_all()
    client.role_assignments.create(vault, "9e0f1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2b", body)
    assert len(sim.tenant.role_assignments.all()) == 1
    sim.tenant.reset()
    assert sim.tenant.role_assignments.all() == []


# ---------------------------------------------------------------------------------- permissions list
# "Permissions - List For Resource Group / List For Resource" (Microsoft.Authorization, 2022-04-01): one entry
# per role the caller holds at the scope or above, each the role definition's actions / notActions /
# dataActions / notDataActions (https://learn.microsoft.com/rest/api/authorization/permissions).
KEYS_ROTATE = "Microsoft.KeyVault/vaults/keys/rotate/action"
CRYPTO_OFFICER = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"


def _entries(sim: Sim, *, scope: str | None = None) -> list[dict]:  # type: ignore[type-arg]
    if scope is None:
        return [p.as_dict() for p in authorization_client(sim).permissions.list_for_resource_group(PHI_RG)]
    # the raw answer, as irflow doctor reads it (for a resource the SDK's empty parentResourcePath would
    # double a slash; its 2022-04-01 model has no condition, which later API versions carry)
    url = f"{scope}/providers/Microsoft.Authorization/permissions?api-version=2022-04-01"
    response = sim.client().send_request(HttpRequest("GET", url))  # any ARM client carries the pipeline
    response.raise_for_status()
    snake = {
        "notActions": "not_actions",
        "dataActions": "data_actions",
        "notDataActions": "not_data_actions",
        "conditionVersion": "condition_version",
    }
    return [{snake.get(k, k): v for k, v in entry.items()} for entry in response.json()["value"]]


def test_the_permission_list_has_one_entry_per_role_assignment_from_its_definition(sim: Sim) -> None:
    [standing] = _entries(sim)  # no assignment yet: only what the simulated principal holds anyway
    assert standing["actions"] == ["*"] and standing["not_actions"] == []
    assert standing["data_actions"] == ["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*"]
    assert not any("KeyVault" in a for a in standing["data_actions"])  # key use needs a role

    subscription = f"/subscriptions/{sim.subscription_id}"
    sim.tenant.assign_role("Key Vault Crypto Officer", subscription)
    sim.tenant.assign_role("Key Vault Secrets User", subscription, "6f1c2b3a-0d4e-4f5a-8b9c-1d2e3f4a5b6c")
    standing, officer = _entries(sim)  # another principal's assignment is not the caller's
    definition = authorization_client(sim).role_definitions.get_by_id(f"{subscription}{_definition_path()}")
    [permission] = definition.permissions
    assert officer["actions"] == permission.actions and officer["data_actions"] == permission.data_actions
    assert "Microsoft.KeyVault/vaults/keys/*" in officer["data_actions"]


def _definition_path() -> str:
    return f"/providers/Microsoft.Authorization/roleDefinitions/{CRYPTO_OFFICER}"


def test_an_assignment_below_the_scope_is_only_in_the_resources_answer(sim: Sim) -> None:
    vault = _vault_scope(sim)
    sim.tenant.assign_role("Key Vault Crypto Officer", vault)
    assert len(_entries(sim)) == 1  # the group's answer: assigned below it, so not listed
    at_vault = _entries(sim, scope=vault)
    assert len(at_vault) == 2 and "Microsoft.KeyVault/vaults/keys/*" in at_vault[1]["data_actions"]


def test_deny_rules_are_in_every_entry_and_conditions_are_carried(sim: Sim) -> None:
    subscription = f"/subscriptions/{sim.subscription_id}"
    assignment = sim.tenant.assign_role("Key Vault Crypto Officer", subscription)
    assignment.condition = "@Resource[Microsoft.KeyVault/vaults/keys:name] StringEquals 'x'"
    assignment.condition_version = "2.0"
    sim.tenant.deny(KEYS_ROTATE, subscription)
    sim.tenant.deny(REGENERATE, subscription)
    standing, officer = _entries(sim, scope=f"{subscription}/resourceGroups/{PHI_RG}")
    for entry in (standing, officer):
        assert REGENERATE in entry["not_actions"] and KEYS_ROTATE in entry["not_data_actions"]
    assert officer["condition"].startswith("@Resource") and officer["condition_version"] == "2.0"
