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
