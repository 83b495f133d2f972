"""Key Vault data-plane authorization, strict as Azure: access policies on access-policy vaults, role
assignments on Azure RBAC vaults, each ignored on the other model. Official SDK clients, both mounts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from azure.core.exceptions import HttpResponseError
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys._shared import http_challenge_cache
from sim_helpers import NOW, PHI_RG, Sim, keyvault_client

from irflow.azure.clients import StaticTokenCredential
from irflow.sim.authorization import roles
from irflow.sim.keyvault.data_models import vault_data

VAULT = "kv-phi-prod"  # demo: the access-policy permission model
KEK = "phi-records-kek"


@pytest.fixture(autouse=True)
def _clear_challenge_cache() -> Iterator[None]:
    http_challenge_cache.clear()
    yield
    http_challenge_cache.clear()


def key_client(sim: Sim) -> KeyClient:
    vault = sim.tenant.key_vault(VAULT)
    return KeyClient(
        f"{sim.endpoint}/_data/{vault.name}/vault/",
        StaticTokenCredential(sim.tenant.token),
        connection_verify=sim.verify,
        verify_challenge_resource=False,
    )


def _refusal(call) -> HttpResponseError:  # type: ignore[no-untyped-def]
    with pytest.raises(HttpResponseError) as caught:
        call()
    assert caught.value.status_code == 403 and caught.value.error.code == "Forbidden"
    return caught.value


def _inner(error: HttpResponseError) -> str:
    return error.error.innererror["code"]


def _to_rbac(sim: Sim) -> None:
    keyvault_client(sim).vaults.update(PHI_RG, VAULT, {"properties": {"enableRbacAuthorization": True}})


def test_access_policy_without_the_permission_is_forbidden_by_policy(sim: Sim) -> None:
    """An access-policy vault admits an operation only when the caller's entry lists its permission; the
    refusal names the permission ("does not have keys rotate permission on key vault", inner error
    ForbiddenByPolicy: https://learn.microsoft.com/azure/key-vault/general/troubleshooting-access-issues)."""
    client = key_client(sim)
    assert client.get_key(KEK).name == KEK  # irflow's entry: keys get, list, rotate
    vault = sim.tenant.key_vault(VAULT)
    vault.update_access_policies(
        "replace",
        [
            {
                "tenantId": vault.tenant_id,
                "objectId": sim.tenant.principal_id,
                "permissions": {"keys": ["get"]},
            }
        ],
        when=NOW,
    )
    before = len(vault_data(vault).keys[KEK].versions)
    error = _refusal(lambda: client.rotate_key(KEK))
    assert _inner(error) == "ForbiddenByPolicy"
    assert f"oid={sim.tenant.principal_id}" in error.error.message
    assert (
        "does not have keys rotate permission on key vault 'kv-phi-prod;location=eastus'"
        in error.error.message
    )
    assert len(vault_data(vault).keys[KEK].versions) == before
    [entry] = [e for e in sim.tenant.journal.entries() if e.route == "keyvault.data.rotate_key" and e.status]
    assert entry.status == 403


def test_access_policy_of_another_principal_grants_nothing(sim: Sim) -> None:
    vault = sim.tenant.key_vault(VAULT)
    vault.update_access_policies(
        "remove",
        [
            {
                "tenantId": vault.tenant_id,
                "objectId": sim.tenant.principal_id,
                "permissions": {"keys": ["get", "list", "rotate"]},
            }
        ],
        when=NOW,
    )
    assert vault.access_policy(sim.tenant.principal_id) is None
    # the developers' group holds keys get, but the caller is not that principal
    assert _inner(_refusal(lambda: key_client(sim).get_key(KEK))) == "ForbiddenByPolicy"


def test_role_assignments_grant_nothing_on_an_access_policy_vault(sim: Sim) -> None:
    """Key Vault data roles "only work for key vaults that use the 'Azure role-based access control'
    permission model" (built-in role descriptions, https://learn.microsoft.com/azure/role-based-access-
    control/built-in-roles/security)."""
    vault = sim.tenant.key_vault(VAULT)
    sim.tenant.assign_role("Key Vault Administrator", vault.id)
    vault.access_policies = []
    assert _inner(_refusal(lambda: key_client(sim).get_key(KEK))) == "ForbiddenByPolicy"


def test_rbac_vault_ignores_access_policies(sim: Sim) -> None:
    """With enableRbacAuthorization "all access policies permissions become invalid"
    (https://learn.microsoft.com/azure/key-vault/general/rbac-migration): irflow's policy entry no longer
    admits it, and the refusal is ForbiddenByRbac naming the data action."""
    _to_rbac(sim)
    assert sim.tenant.key_vault(VAULT).access_policy(sim.tenant.principal_id) is not None
    error = _refusal(lambda: key_client(sim).get_key(KEK))
    assert _inner(error) == "ForbiddenByRbac"
    assert "Action: 'Microsoft.KeyVault/vaults/keys/read'" in error.error.message
    assert "Assignment: (not found)" in error.error.message


@pytest.mark.parametrize(
    ("role", "at", "allowed"),
    [
        ("Key Vault Crypto Officer", "vault", True),
        ("Key Vault Crypto Officer", "group", True),  # assignments above the vault are inherited
        ("Key Vault Crypto Officer", "subscription", True),
        ("Key Vault Crypto Officer", "key", True),  # a key-scoped assignment covers that key
        ("Key Vault Crypto Officer", "other-key", False),
        ("Key Vault Crypto User", "vault", False),  # no keys/rotate/action in its dataActions
        ("Key Vault Reader", "vault", False),
        ("Key Vault Secrets Officer", "vault", False),
        ("Key Vault Administrator", "vault", True),  # Microsoft.KeyVault/vaults/*
        ("Owner", "vault", False),  # actions only: no data actions
    ],
)
def test_rbac_vault_rotation_needs_a_role_granting_the_data_action(
    sim: Sim, role: str, at: str, allowed: bool
) -> None:
    """The role's dataActions (wildcards included) must cover keys/rotate/action, at the vault scope or
    above, or on the key itself (https://learn.microsoft.com/azure/key-vault/general/rbac-guide)."""
    _to_rbac(sim)
    vault = sim.tenant.key_vault(VAULT)
    group = vault.id.split("/providers/")[0]
    scope = {
        "vault": vault.id,
        "group": group,
        "subscription": group.split("/resourceGroups/")[0],
        "key": f"{vault.id}/keys/{KEK}",
        "other-key": f"{vault.id}/keys/another-key",
    }[at]
    sim.tenant.assign_role(role, scope)
    sim.tenant.assign_role("Key Vault Reader", vault.id)  # keys/read, so only rotate is in question
    client = key_client(sim)
    if allowed:
        assert client.rotate_key(KEK).properties.version
    else:
        error = _refusal(lambda: client.rotate_key(KEK))
        assert _inner(error) == "ForbiddenByRbac"
        assert "Microsoft.KeyVault/vaults/keys/rotate/action" in error.error.message


def test_not_data_actions_and_conditions_do_not_grant(sim: Sim) -> None:
    """notDataActions subtract from dataActions; an assignment with an ABAC condition grants nothing here
    (the simulator does not evaluate conditions: the stricter reading)."""
    _to_rbac(sim)
    vault = sim.tenant.key_vault(VAULT)
    narrowed = roles.RoleDefinition(
        "00000000-0000-4000-8000-000000000001",
        "test: keys without rotate",
        "",
        data_actions=("Microsoft.KeyVault/vaults/keys/*",),
        not_data_actions=("Microsoft.KeyVault/vaults/keys/rotate/action",),
    )
    assert narrowed.grants_data_action("Microsoft.KeyVault/vaults/keys/read")
    assert not narrowed.grants_data_action("Microsoft.KeyVault/vaults/keys/rotate/action")
    assignment = sim.tenant.assign_role("Key Vault Crypto Officer", vault.id)
    assignment.condition = "@Resource[Microsoft.KeyVault/vaults/keys:name] StringEquals 'x'"
    assert _inner(_refusal(lambda: key_client(sim).get_key(KEK))) == "ForbiddenByRbac"


def test_deny_rules_refuse_on_both_models(sim: Sim) -> None:
    sim.tenant.deny("Microsoft.KeyVault/vaults/keys/read")
    assert _inner(_refusal(lambda: key_client(sim).get_key(KEK))) == "ForbiddenByRbac"


def test_new_vaults_default_to_rbac(tenant) -> None:  # type: ignore[no-untyped-def]
    """New vaults use the Azure RBAC permission model by default (from API 2026-02-01,
    https://learn.microsoft.com/azure/key-vault/general/rbac-access-policy); scenarios say which they use."""
    vault = tenant.add_key_vault(tenant.default_subscription_id, PHI_RG, "kv-new-default", location="eastus")
    assert vault.properties["enableRbacAuthorization"] is True
    assert tenant.key_vault(VAULT).properties["enableRbacAuthorization"] is False


def test_scenarios_name_irflows_principal_and_its_roles() -> None:
    """A scenario names the token holder's object id (irflow) and grants roles; the token carries it as its
    ``oid``, which is how irflow learns its own identity (irflow.azure.principal)."""
    from irflow.azure.principal import object_id_from_token
    from irflow.sim import Tenant

    tenant = Tenant.from_scenario("keyvault-overbroad-access")
    assert tenant.principal_id == "0c9d8e7f-6a5b-4c3d-9e2f-1a0b9c8d7e6f"
    assert object_id_from_token(tenant.token) == tenant.principal_id
    [mine] = [a for a in tenant.role_assignments.all() if a.principal_id == tenant.principal_id]
    assert mine.role.name == "Key Vault Crypto Officer" and mine.scope.endswith(
        "/resourceGroups/rg-tailspin-phi"
    )
    assert tenant.key_vault("kv-phi-tailspin-rbac").properties["enableRbacAuthorization"] is True
    assert tenant.key_vault("kv-phi-tailspin").properties["enableRbacAuthorization"] is False
    with pytest.raises(
        ValueError, match="role assignment Key Vault Wizard at /subscriptions/x: unknown role"
    ):
        Tenant.from_scenario(
            {"role_assignments": [{"role": "Key Vault Wizard", "scope": "/subscriptions/x"}]}
        )
