"""Restoring container public access and stored access policies against the simulated tenant."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from irflow.actions.base import ActionError, PermissionDenied, ResourceMissing
from irflow.actions.storage import (
    BlockPublicContainers,
    IsolateAccount,
    RemoveStoredAccessPolicies,
    RestoreAccountNetwork,
)
from irflow.actions.storage_restore import (
    RestorePublicContainers,
    RestorePublicContainersParams,
    RestoreStoredAccessPolicies,
)
from irflow.sim.models import Tenant

ACCOUNT = "phipatientexports"
CONTAINER = "patient-exports"
CONTAINERS_WRITE = "Microsoft.Storage/storageAccounts/blobServices/containers/write"
SET_ACL = "Microsoft.Storage/storageAccounts/blobServices/containers/setAcl/action"


def _writes(tenant: Tenant) -> list:  # type: ignore[type-arg]
    return tenant.journal.writes()


def _successful_writes(tenant: Tenant) -> list:  # type: ignore[type-arg]
    return [w for w in tenant.journal.writes() if w.status < 400]


def _blocked(tenant: Tenant, make_context) -> dict:  # type: ignore[no-untyped-def, type-arg]
    account = tenant.storage_account(ACCOUNT)
    result = BlockPublicContainers().apply(
        make_context("storage.block_public_containers", account=account.id)
    )
    return result.prior_state


def _removed(tenant: Tenant, make_context) -> dict:  # type: ignore[no-untyped-def, type-arg]
    account = tenant.storage_account(ACCOUNT)
    ctx = make_context("storage.remove_stored_access_policies", account=account.id)
    return RemoveStoredAccessPolicies().apply(ctx).prior_state


class TestRestorePublicContainers:
    def test_plan_is_exact_and_writes_nothing(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        account = tenant.storage_account(ACCOUNT)
        prior = _blocked(tenant, make_context)
        writes = _writes(tenant)
        ctx = make_context("storage.restore_public_containers", account=account.id, prior=prior)
        plan = RestorePublicContainers().plan(ctx)
        assert [(c.field, c.before, c.after) for c in plan.changes] == [
            (f"containers.{CONTAINER}.publicAccess", "None", "Container")
        ]
        assert plan.notes == []
        assert _writes(tenant) == writes

    def test_apply_twice_restores_once_and_verifies(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        account = tenant.storage_account(ACCOUNT)
        prior = _blocked(tenant, make_context)
        assert account.container(CONTAINER).public_access == "None"
        before = len(_writes(tenant))
        ctx = make_context("storage.restore_public_containers", account=account.id, prior=prior)
        action = RestorePublicContainers()
        assert action.verify(ctx) is False
        first = action.apply(ctx)
        assert first.changed and first.prior_state["publicAccess"][CONTAINER] == "None"
        writes = _writes(tenant)
        assert len(writes) == before + 1
        assert writes[-1].method == "PATCH" and writes[-1].path.endswith(f"/containers/{CONTAINER}")
        assert not action.apply(ctx).changed
        assert _writes(tenant) == writes
        assert action.verify(ctx)
        assert account.container(CONTAINER).public_access == "Container"

    def test_refuses_while_the_account_forbids_public_access(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        account = tenant.storage_account(ACCOUNT)
        prior = _blocked(tenant, make_context)
        isolated = IsolateAccount().apply(make_context("storage.isolate_account", account=account.id))
        before = _writes(tenant)
        ctx = make_context("storage.restore_public_containers", account=account.id, prior=prior)
        plan = RestorePublicContainers().plan(ctx)
        assert any("storage.restore_account_network" in note for note in plan.notes)
        with pytest.raises(ActionError, match="storage.restore_account_network") as caught:
            RestorePublicContainers().apply(ctx)
        assert "allowBlobPublicAccess" in str(caught.value) and account.id in str(caught.value)
        assert _writes(tenant) == before
        # once the account network is back, the restore goes through
        RestoreAccountNetwork().apply(
            make_context("storage.restore_account_network", account=account.id, prior=isolated.prior_state)
        )
        assert RestorePublicContainers().apply(ctx).changed
        assert account.container(CONTAINER).public_access == "Container"

    def test_permission_denied_names_permission_and_scope(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        account = tenant.storage_account(ACCOUNT)
        prior = _blocked(tenant, make_context)
        before = len(_successful_writes(tenant))
        tenant.deny(CONTAINERS_WRITE, scope=account.id)
        ctx = make_context("storage.restore_public_containers", account=account.id, prior=prior)
        with pytest.raises(PermissionDenied) as caught:
            RestorePublicContainers().apply(ctx)
        message = str(caught.value)
        assert (
            CONTAINERS_WRITE in message
            and f"{account.id}/blobServices/default/containers/{CONTAINER}" in (message)
        )
        assert len(_successful_writes(tenant)) == before
        assert account.container(CONTAINER).public_access == "None"

    def test_missing_account_and_container_are_named(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        account = tenant.storage_account(ACCOUNT)
        gone = account.id.replace(ACCOUNT, "phigone")
        prior = {"publicAccess": {CONTAINER: "Container"}}
        with pytest.raises(ResourceMissing, match="phigone"):
            RestorePublicContainers().plan(
                make_context("storage.restore_public_containers", account=gone, prior=prior)
            )
        ctx = make_context(
            "storage.restore_public_containers",
            account=account.id,
            prior={"publicAccess": {"no-such": "Blob"}},
        )
        with pytest.raises(ResourceMissing, match="no-such"):
            RestorePublicContainers().apply(ctx)
        assert _writes(tenant) == []

    def test_prior_state_is_validated(self, tenant: Tenant) -> None:
        account = tenant.storage_account(ACCOUNT).id
        with pytest.raises(ValidationError, match="publicAccess"):
            RestorePublicContainersParams(account=account, prior={})
        with pytest.raises(ValidationError):
            RestorePublicContainersParams(account=account, prior={"publicAccess": {CONTAINER: "Everyone"}})


class TestRestoreStoredAccessPolicies:
    def test_plan_is_exact_and_writes_nothing(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        account = tenant.storage_account(ACCOUNT)
        prior = _removed(tenant, make_context)
        writes = _writes(tenant)
        ctx = make_context("storage.restore_stored_access_policies", account=account.id, prior=prior)
        plan = RestoreStoredAccessPolicies().plan(ctx)
        assert [c.field for c in plan.changes] == [
            f"containers.{CONTAINER}.storedAccessPolicies.partner-export"
        ]
        assert plan.changes[0].before is None and plan.changes[0].after["permission"] == "rl"
        assert _writes(tenant) == writes

    def test_apply_twice_recreates_once_keeping_public_access(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        account = tenant.storage_account(ACCOUNT)
        original = [p.to_dict() for p in account.container(CONTAINER).access_policies]
        prior = _removed(tenant, make_context)
        assert account.container(CONTAINER).access_policies == []
        before = len(_writes(tenant))
        ctx = make_context("storage.restore_stored_access_policies", account=account.id, prior=prior)
        action = RestoreStoredAccessPolicies()
        assert action.verify(ctx) is False
        assert action.apply(ctx).changed
        writes = _writes(tenant)
        assert len(writes) == before + 1 and writes[-1].query.get("comp") == "acl"
        assert not action.apply(ctx).changed
        assert _writes(tenant) == writes
        assert action.verify(ctx)
        assert [p.to_dict() for p in account.container(CONTAINER).access_policies] == original
        assert account.container(CONTAINER).public_access == "Container"  # kept as it was

    def test_permission_denied_names_permission_and_scope(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        account = tenant.storage_account(ACCOUNT)
        prior = _removed(tenant, make_context)
        before = len(_successful_writes(tenant))
        tenant.deny(SET_ACL, scope=account.id)
        ctx = make_context("storage.restore_stored_access_policies", account=account.id, prior=prior)
        with pytest.raises(PermissionDenied) as caught:
            RestoreStoredAccessPolicies().apply(ctx)
        message = str(caught.value)
        assert SET_ACL in message and f"{account.id}/blobServices/default/containers/{CONTAINER}" in message
        assert len(_successful_writes(tenant)) == before
        assert account.container(CONTAINER).access_policies == []

    def test_missing_account_and_container_are_named(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        account = tenant.storage_account(ACCOUNT)
        policy = {"permission": "r", "start": None, "expiry": "2031-01-01T00:00:00Z"}
        prior = {"storedAccessPolicies": {"no-such": {"p1": policy}}}
        gone = account.id.replace(ACCOUNT, "phigone")
        with pytest.raises(ResourceMissing, match="phigone"):
            RestoreStoredAccessPolicies().plan(
                make_context("storage.restore_stored_access_policies", account=gone, prior=prior)
            )
        ctx = make_context("storage.restore_stored_access_policies", account=account.id, prior=prior)
        with pytest.raises(ResourceMissing, match="no-such"):
            RestoreStoredAccessPolicies().apply(ctx)
        assert _writes(tenant) == []
