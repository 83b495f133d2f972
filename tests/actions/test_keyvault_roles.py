"""Key Vault role-assignment revocation and restore (Azure RBAC vaults) through ``azure-mgmt-authorization``
against the simulated tenant (in-process mount), on the Tailspin scenario: kv-phi-tailspin uses access
policies, kv-phi-tailspin-rbac the Azure RBAC permission model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from azure.keyvault.keys._shared import http_challenge_cache
from pydantic import ValidationError

from irflow.actions.base import PermissionDenied
from irflow.actions.keyvault import RotateKey
from irflow.actions.keyvault_roles import RestoreRoleAssignments, RevokeRoleAssignments
from irflow.sim.mock import mount
from irflow.sim.models import Tenant

RBAC_VAULT = "kv-phi-tailspin-rbac"
POLICY_VAULT = "kv-phi-tailspin"
DEVELOPERS = "8e3f1a52-7c4d-4b9e-a6f0-2d1c5b7e9a43"  # Key Vault Crypto User at the vault
AVERY = "7f2a4c6e-8b0d-4e2f-a4c6-e8b0d2f4a6c8"  # Key Vault Secrets User at the vault (the phished user)
SQL_IDENTITY = "4b7d2e19-3a6c-4f8e-9d15-7c2a0e6b8f31"  # Key Vault Crypto Service Encryption User
AUDITORS = "2e4f6a8c-0b1d-4e3f-a5b7-c9d1e3f5a7b9"  # Key Vault Reader at the subscription (not dangerous)
PLATFORM = "6d8f0a2c-4e6a-4c8e-a0b2-d4f6a8c0e2b4"


@pytest.fixture
def tenant() -> Iterator[Tenant]:
    tenant = Tenant.from_scenario("keyvault-overbroad-access")
    with mount(tenant):
        yield tenant


@pytest.fixture(autouse=True)
def _clear_key_vault_challenges() -> Iterator[None]:
    http_challenge_cache.clear()
    yield
    http_challenge_cache.clear()


def _writes(tenant: Tenant) -> list[tuple[str, str | None, int]]:
    return [(w.method, w.route, w.status) for w in tenant.journal.writes()]


def _holders(tenant: Tenant) -> set[tuple[str, str]]:
    return {(a.role.name, a.principal_id) for a in tenant.role_assignments.all()}


class TestRevokeRoleAssignments:
    def test_plan_names_each_assignment_and_writes_nothing(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        vault = tenant.key_vault(RBAC_VAULT)
        group = vault.id.split("/providers/")[0]
        tenant.assign_role("Key Vault Secrets Officer", group, PLATFORM, "Group")  # inherited from the group
        plan = RevokeRoleAssignments().plan(make_context("keyvault.revoke_role_assignments", vault=vault.id))
        assert sorted((c.before["role"], c.before["principalId"], c.after) for c in plan.changes) == [
            ("Key Vault Crypto Service Encryption User", SQL_IDENTITY, None),
            ("Key Vault Crypto User", DEVELOPERS, None),
            ("Key Vault Secrets User", AVERY, None),
        ]
        assert all(c.before["scope"] == vault.id for c in plan.changes)
        [note] = plan.notes
        assert "Key Vault Secrets Officer" in note and PLATFORM in note and "wider than the vault" in note
        assert _writes(tenant) == []

    def test_apply_twice_removes_once_keeping_irflow_and_the_keep_list(
        self, tenant: Tenant, make_context
    ) -> None:  # type: ignore[no-untyped-def]
        vault = tenant.key_vault(RBAC_VAULT)
        ctx = make_context(
            "keyvault.revoke_role_assignments", vault=vault.id, keep_principal_ids=[SQL_IDENTITY]
        )
        action = RevokeRoleAssignments()
        assert not action.verify(ctx)
        first = action.apply(ctx)
        assert first.changed and len(first.changes) == 2
        recorded = first.prior_state["roleAssignments"]
        assert {(r["roleName"], r["principalId"], r["principalType"]) for r in recorded} == {
            ("Key Vault Crypto User", DEVELOPERS, "Group"),
            ("Key Vault Secrets User", AVERY, "User"),
        }
        assert first.prior_state["enableRbacAuthorization"] is True
        writes = _writes(tenant)
        assert writes == [("DELETE", "authorization.roleAssignments.delete", 200)] * 2
        again = action.apply(ctx)
        assert not again.changed and _writes(tenant) == writes
        assert action.verify(ctx)
        assert _holders(tenant) == {
            ("Key Vault Crypto Service Encryption User", SQL_IDENTITY),
            ("Key Vault Crypto Officer", tenant.principal_id),
            ("Key Vault Reader", AUDITORS),
        }
        # irflow kept its Crypto Officer role: the rotation that follows still works
        rotate = make_context("keyvault.rotate_key", vault=vault.id, key="claims-cek")
        assert RotateKey().apply(rotate).changed

    def test_irflows_own_assignment_at_the_vault_is_never_removed(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        vault = tenant.key_vault(RBAC_VAULT)
        mine = tenant.assign_role("Key Vault Administrator", vault.id)
        ctx = make_context("keyvault.revoke_role_assignments", vault=vault.id)
        assert all(mine.name not in c.field for c in RevokeRoleAssignments().plan(ctx).changes)
        RevokeRoleAssignments().apply(ctx)
        assert ("Key Vault Administrator", tenant.principal_id) in _holders(tenant)

    def test_on_an_access_policy_vault_it_changes_nothing_and_says_so(
        self, tenant: Tenant, make_context
    ) -> None:  # type: ignore[no-untyped-def]
        """Key Vault data roles "only work for key vaults that use the 'Azure role-based access control'
        permission model" (their built-in descriptions): on an access-policy vault nothing is revoked."""
        vault = tenant.key_vault(POLICY_VAULT)
        tenant.assign_role("Key Vault Crypto User", vault.id, DEVELOPERS, "Group")
        ctx = make_context("keyvault.revoke_role_assignments", vault=vault.id)
        action = RevokeRoleAssignments()
        assert action.plan(ctx).changes == []
        result = action.apply(ctx)
        assert not result.changed and "ignores data-plane role assignments" in result.notes[0]
        assert result.prior_state["roleAssignments"] == []
        assert action.verify(ctx) and _writes(tenant) == []

    def test_an_assignment_of_a_vanished_role_is_named_not_removed(
        self, tenant: Tenant, make_context
    ) -> None:  # type: ignore[no-untyped-def]
        from irflow.sim.authorization.models import RoleAssignment
        from irflow.sim.authorization.roles import RoleDefinition

        vault = tenant.key_vault(RBAC_VAULT)
        gone = RoleDefinition("0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", "deleted custom role", "")
        orphan = RoleAssignment(
            "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e", vault.id, gone, PLATFORM, "Group", tenant.now(), "test"
        )
        tenant.role_assignments._items[orphan.name] = orphan
        ctx = make_context(
            "keyvault.revoke_role_assignments", vault=vault.id, keep_principal_ids=[SQL_IDENTITY]
        )
        plan = RevokeRoleAssignments().plan(ctx)
        assert len(plan.changes) == 2 and all(orphan.name not in c.field for c in plan.changes)
        assert any(gone.id in note and "left alone" in note for note in plan.notes)

    def test_missing_delete_permission_is_named(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        vault = tenant.key_vault(RBAC_VAULT)
        tenant.deny("Microsoft.Authorization/roleAssignments/delete", vault.id)
        ctx = make_context("keyvault.revoke_role_assignments", vault=vault.id)
        with pytest.raises(PermissionDenied, match="roleAssignments/delete") as caught:
            RevokeRoleAssignments().apply(ctx)
        assert "AuthorizationFailed" in str(caught.value)
        assert [w[2] for w in _writes(tenant)] == [403]

    def test_only_key_vault_data_actions_are_accepted(self, tenant: Tenant) -> None:
        from irflow.actions.keyvault_roles import RevokeRoleAssignmentsParams

        vault = tenant.key_vault(RBAC_VAULT).id
        with pytest.raises(ValidationError, match="not a Key Vault data action"):
            RevokeRoleAssignmentsParams(vault=vault, data_actions=["Microsoft.Storage/*"])
        with pytest.raises(ValidationError, match="object id"):
            RevokeRoleAssignmentsParams(vault=vault, keep_principal_ids=["developers"])


class TestRestoreRoleAssignments:
    def test_restores_exactly_what_was_recorded_once(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        vault = tenant.key_vault(RBAC_VAULT)
        before = {a.name: a.to_arm() for a in tenant.role_assignments.all()}
        revoke = make_context(
            "keyvault.revoke_role_assignments", vault=vault.id, keep_principal_ids=[SQL_IDENTITY]
        )
        prior = RevokeRoleAssignments().apply(revoke).prior_state
        # removed later by someone else: not part of what this incident revoked, so not restored
        sql = next(a for a in tenant.role_assignments.all() if a.principal_id == SQL_IDENTITY)
        tenant.role_assignments.delete(sql.scope, sql.name)
        tenant.journal.clear()

        ctx = make_context("keyvault.restore_role_assignments", vault=vault.id, prior=prior)
        action = RestoreRoleAssignments()
        plan = action.plan(ctx)
        assert {c.after["principalId"] for c in plan.changes} == {DEVELOPERS, AVERY}
        assert _writes(tenant) == [] and not action.verify(ctx)
        assert action.apply(ctx).changed
        writes = _writes(tenant)
        assert writes == [("PUT", "authorization.roleAssignments.create", 201)] * 2
        assert not action.apply(ctx).changed and _writes(tenant) == writes
        assert action.verify(ctx)
        restored = {a.name: a.to_arm() for a in tenant.role_assignments.all()}
        for name in (r["name"] for r in prior["roleAssignments"]):
            assert (
                restored[name]["properties"]["roleDefinitionId"]
                == before[name]["properties"]["roleDefinitionId"]
            )
            assert (
                restored[name]["properties"]["principalType"] == before[name]["properties"]["principalType"]
            )
        assert sql.name not in restored

    def test_recorded_assignments_must_lie_at_the_vault(self, tenant: Tenant) -> None:
        from irflow.actions.keyvault_roles import RestoreRoleAssignmentsParams

        vault = tenant.key_vault(RBAC_VAULT).id
        elsewhere = {
            "name": "1e319726-27d3-586c-95b5-c50eacd956fc",
            "scope": vault.split("/resourceGroups/")[0],
            "roleDefinitionId": "12338af0-0e69-4776-bea7-57ae8d297424",
            "principalId": DEVELOPERS,
        }
        with pytest.raises(ValidationError, match="not at the vault"):
            RestoreRoleAssignmentsParams(vault=vault, prior={"roleAssignments": [elsewhere]})


def test_rotation_without_a_data_role_is_refused_by_rbac_and_named(tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
    """On an RBAC vault irflow needs a role granting keys/read and keys/rotate/action
    (https://learn.microsoft.com/azure/key-vault/general/rbac-guide): without one, Key Vault answers 403
    ForbiddenByRbac and the action names the missing permission."""
    mine = next(a for a in tenant.role_assignments.all() if a.principal_id == tenant.principal_id)
    tenant.role_assignments.delete(mine.scope, mine.name)
    vault = tenant.key_vault(RBAC_VAULT)
    with pytest.raises(PermissionDenied, match="ForbiddenByRbac|Caller is not authorized") as caught:
        RotateKey().plan(make_context("keyvault.rotate_key", vault=vault.id, key="claims-cek"))
    assert "Microsoft.KeyVault/vaults/keys/read" in str(caught.value)
