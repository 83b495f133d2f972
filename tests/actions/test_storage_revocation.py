"""storage.revoke_user_delegation_keys: idempotent through the Activity Log the simulator writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from irflow.actions.base import PermissionDenied, ResourceMissing
from irflow.actions.storage_revocation import REVOKE_USER_DELEGATION_KEYS, RevokeUserDelegationKeys
from irflow.sim.models import Tenant

QUERY_READ = "Microsoft.OperationalInsights/workspaces/query/read"


@pytest.fixture
def workspace(tenant: Tenant) -> str:
    """A workspace receiving the tenant's Activity Log (the demo scenario has none)."""
    # This action still verifies itself from the Activity Log (issue 8 moves it to Azure's 2xx answer): until
    # then its tests relax, by name, the simulator's Activity Log export and ingestion-delay rules.
    tenant.relax("activity_log_delay", "activity_log_export")
    with tenant.lock:
        return tenant.logs.add_workspace("law-ir-activity").workspace_id


def _revocations(tenant: Tenant) -> list:  # type: ignore[type-arg]
    return [w for w in tenant.journal.writes() if w.route == "storage.accounts.revoke_user_delegation_keys"]


def test_plan_apply_twice_verify(tenant: Tenant, workspace: str, make_context) -> None:  # type: ignore[no-untyped-def]
    account = tenant.storage_account("phipatientexports")
    ctx = make_context("storage.revoke_user_delegation_keys", account=account.id, workspace_id=workspace)
    action = RevokeUserDelegationKeys()
    plan = action.plan(ctx)
    assert [(c.field, c.after) for c in plan.changes] == [("userDelegationKeys", "revoked")]
    assert tenant.journal.writes() == []
    assert action.verify(ctx) is False

    first = action.apply(ctx)
    assert first.changed and first.prior_state["revocations_logged"] == 0
    assert account.user_delegation_keys_revoked_at is not None
    writes = tenant.journal.writes()
    assert [w.route for w in writes] == ["storage.accounts.revoke_user_delegation_keys"]

    second = action.apply(ctx)
    assert not second.changed and second.prior_state["revocations_logged"] == 1
    assert tenant.journal.writes() == writes
    assert action.verify(ctx) is True
    assert action.plan(ctx).is_noop


def test_a_revocation_before_the_epoch_does_not_count(tenant: Tenant, workspace: str, make_context) -> None:  # type: ignore[no-untyped-def]
    account = tenant.storage_account("phiimaging")
    ctx = make_context("storage.revoke_user_delegation_keys", account=account.id, workspace_id=workspace)
    RevokeUserDelegationKeys().apply(ctx)
    later = make_context(
        "storage.revoke_user_delegation_keys",
        account=account.id,
        workspace_id=workspace,
        revoked_since=datetime.now(UTC) + timedelta(minutes=5),
    )
    assert RevokeUserDelegationKeys().apply(later).changed
    assert len(_revocations(tenant)) == 2


def test_a_revocation_of_another_account_does_not_count(tenant: Tenant, workspace: str, make_context) -> None:  # type: ignore[no-untyped-def]
    imaging, claims = tenant.storage_account("phiimaging"), tenant.storage_account("phiclaimsarchive")
    RevokeUserDelegationKeys().apply(
        make_context("storage.revoke_user_delegation_keys", account=imaging.id, workspace_id=workspace)
    )
    ctx = make_context("storage.revoke_user_delegation_keys", account=claims.id, workspace_id=workspace)
    assert not RevokeUserDelegationKeys().plan(ctx).is_noop
    assert RevokeUserDelegationKeys().apply(ctx).changed
    assert len(_revocations(tenant)) == 2


def test_403_on_revoke_names_permission_and_scope(tenant: Tenant, workspace: str, make_context) -> None:  # type: ignore[no-untyped-def]
    account = tenant.storage_account("phiimaging")
    tenant.deny(REVOKE_USER_DELEGATION_KEYS, scope=account.id)
    ctx = make_context("storage.revoke_user_delegation_keys", account=account.id, workspace_id=workspace)
    with pytest.raises(PermissionDenied, match=f"{REVOKE_USER_DELEGATION_KEYS} on {account.id}"):
        RevokeUserDelegationKeys().apply(ctx)
    assert account.user_delegation_keys_revoked_at is None


def test_403_on_the_activity_log_names_the_query_permission(
    tenant: Tenant, workspace: str, make_context
) -> None:  # type: ignore[no-untyped-def]
    account = tenant.storage_account("phiimaging")
    tenant.deny(QUERY_READ)
    ctx = make_context("storage.revoke_user_delegation_keys", account=account.id, workspace_id=workspace)
    with pytest.raises(PermissionDenied, match=f"{QUERY_READ} on Log Analytics workspace {workspace}"):
        RevokeUserDelegationKeys().plan(ctx)
    assert tenant.journal.writes() == []


def test_missing_account_and_workspace_are_named(tenant: Tenant, workspace: str, make_context) -> None:  # type: ignore[no-untyped-def]
    missing = tenant.storage_account("phiimaging").id.replace("phiimaging", "phigone")
    ctx = make_context("storage.revoke_user_delegation_keys", account=missing, workspace_id=workspace)
    with pytest.raises(ResourceMissing, match="phigone"):
        RevokeUserDelegationKeys().plan(ctx)
    nowhere = "00000000-0000-4000-8000-000000000001"
    ctx = make_context(
        "storage.revoke_user_delegation_keys",
        account=tenant.storage_account("phiimaging").id,
        workspace_id=nowhere,
    )
    with pytest.raises(ResourceMissing, match=nowhere):
        RevokeUserDelegationKeys().apply(ctx)
    assert tenant.journal.writes() == []
