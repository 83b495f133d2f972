"""storage.revoke_user_delegation_keys: verified from Azure's 2xx answer (recorded as a tag on the account);
the Activity Log is only a best-effort hint (it arrives minutes late, or never)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from irflow.actions.base import PermissionDenied, ResourceMissing
from irflow.actions.storage_revocation import (
    MARKER_TAG,
    REVOKE_USER_DELEGATION_KEYS,
    RevokeUserDelegationKeys,
)
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


def test_plan_apply_twice_verify_without_any_log(tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
    """No workspace at all (the subscription exports no Activity Log): Azure's answer is the proof."""
    account = tenant.storage_account("phipatientexports")
    account.tags["owner"] = "analytics"
    tags_before = dict(account.tags)
    ctx = make_context("storage.revoke_user_delegation_keys", account=account.id)
    action = RevokeUserDelegationKeys()
    plan = action.plan(ctx)
    assert [(c.field, c.after) for c in plan.changes] == [("userDelegationKeys", "revoked")]
    assert tenant.journal.writes() == []
    assert action.verify(ctx) is False

    first = action.apply(ctx)
    assert first.changed and first.outputs["revoked_at"]
    assert account.user_delegation_keys_revoked_at is not None
    assert action.verify(ctx) is True
    assert account.tags == {**tags_before, MARKER_TAG: first.outputs["revoked_at"]}  # the others are kept
    writes = tenant.journal.writes()
    assert [w.route for w in writes] == [
        "storage.accounts.revoke_user_delegation_keys",
        "storage.accounts.update",
    ]
    # a fresh action (another process, a re-run of the playbook) sees Azure's record on the account
    again = RevokeUserDelegationKeys()
    second = again.apply(ctx)
    assert not second.changed and second.prior_state["evidence"] == "account_tag"
    assert tenant.journal.writes() == writes
    assert again.verify(ctx) and again.plan(ctx).is_noop


def test_verify_holds_right_after_the_call_even_if_the_tag_write_is_refused(  # type: ignore[no-untyped-def]
    tenant: Tenant, make_context
) -> None:
    account = tenant.storage_account("phiimaging")
    tenant.deny("Microsoft.Storage/storageAccounts/write", scope=account.id)
    ctx = make_context("storage.revoke_user_delegation_keys", account=account.id)
    action = RevokeUserDelegationKeys()
    result = action.apply(ctx)
    assert result.changed and "marker tag was not written" in result.notes[0]
    assert account.user_delegation_keys_revoked_at is not None
    assert action.verify(ctx) is True
    assert not action.apply(ctx).changed and len(_revocations(tenant)) == 1


def test_a_logged_revocation_is_an_already_done_hint(  # type: ignore[no-untyped-def]
    tenant: Tenant, workspace: str, make_context
) -> None:
    """An earlier revocation the Activity Log shows (no irflow tag on the account): nothing to do."""
    account = tenant.storage_account("phiimaging")
    with tenant.lock:
        tenant.logs.add_rows(
            workspace,
            "AzureActivity",
            [
                {
                    "TimeGenerated": datetime.now(UTC),
                    "OperationNameValue": REVOKE_USER_DELEGATION_KEYS.upper(),
                    "ActivityStatusValue": "Success",
                    "_ResourceId": account.id.lower(),
                }
            ],
            datetime.now(UTC),
        )
    ctx = make_context("storage.revoke_user_delegation_keys", account=account.id, workspace_id=workspace)
    result = RevokeUserDelegationKeys().apply(ctx)
    assert not result.changed and result.prior_state["evidence"] == "activity_log"
    assert tenant.journal.writes() == []


def test_an_unreadable_workspace_does_not_stop_the_revocation(
    tenant: Tenant, workspace: str, make_context
) -> None:  # type: ignore[no-untyped-def]
    account = tenant.storage_account("phiimaging")
    tenant.deny(QUERY_READ)
    ctx = make_context("storage.revoke_user_delegation_keys", account=account.id, workspace_id=workspace)
    plan = RevokeUserDelegationKeys().plan(ctx)
    assert QUERY_READ in plan.notes[0] and not plan.is_noop
    assert RevokeUserDelegationKeys().apply(ctx).changed
    assert account.user_delegation_keys_revoked_at is not None


def test_a_revocation_before_the_epoch_does_not_count(tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
    account = tenant.storage_account("phiimaging")
    ctx = make_context("storage.revoke_user_delegation_keys", account=account.id)
    RevokeUserDelegationKeys().apply(ctx)
    later = make_context(
        "storage.revoke_user_delegation_keys",
        account=account.id,
        revoked_since=datetime.now(UTC) + timedelta(minutes=5),
    )
    assert RevokeUserDelegationKeys().apply(later).changed
    assert len(_revocations(tenant)) == 2


def test_a_revocation_of_another_account_does_not_count(tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
    imaging, claims = tenant.storage_account("phiimaging"), tenant.storage_account("phiclaimsarchive")
    action = RevokeUserDelegationKeys()
    action.apply(make_context("storage.revoke_user_delegation_keys", account=imaging.id))
    ctx = make_context("storage.revoke_user_delegation_keys", account=claims.id)
    assert not action.plan(ctx).is_noop
    assert action.apply(ctx).changed
    assert len(_revocations(tenant)) == 2


def test_403_on_revoke_names_permission_and_scope(tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
    account = tenant.storage_account("phiimaging")
    tenant.deny(REVOKE_USER_DELEGATION_KEYS, scope=account.id)
    ctx = make_context("storage.revoke_user_delegation_keys", account=account.id)
    with pytest.raises(PermissionDenied, match=f"{REVOKE_USER_DELEGATION_KEYS} on {account.id}"):
        RevokeUserDelegationKeys().apply(ctx)
    assert account.user_delegation_keys_revoked_at is None
    assert MARKER_TAG not in account.tags


def test_missing_account_is_named(tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
    missing = tenant.storage_account("phiimaging").id.replace("phiimaging", "phigone")
    ctx = make_context("storage.revoke_user_delegation_keys", account=missing)
    with pytest.raises(ResourceMissing, match="phigone"):
        RevokeUserDelegationKeys().plan(ctx)
    assert tenant.journal.writes() == []
