"""Reads made once: with ``ctx.observations`` (what the engine gives a target's plan + apply + verify), an
action reads Azure once for plan and apply and verifies from the write's own answer; the Azure-side result
is the same as with a fresh read at every call."""

from __future__ import annotations

from typing import Any

import pytest

from irflow.actions.base import get_action
from irflow.sim.models import Tenant


def _run(ctx: Any, name: str) -> tuple[Any, Any, bool]:
    action = get_action(name)()
    plan = action.plan(ctx)
    result = action.apply(ctx)
    return plan, result, action.verify(ctx)


def _calls(tenant: Tenant) -> list[tuple[str, str]]:
    return [(entry.method, entry.route or entry.path) for entry in tenant.journal.entries()]


@pytest.mark.parametrize(
    ("name", "account", "expected"),
    [
        # one read for plan and apply, the PATCH; verify checks the PATCH's answer
        ("storage.isolate_account", "phiimaging", ["GET", "PATCH"]),
        # the account (hierarchical namespace) and blob service read once, the PUT; verify from its answer
        ("storage.enable_data_protection", "phiimaging", ["GET", "GET", "PUT"]),
        # one read, both keys regenerated; verify checks regenerateKey's answer (the keys' creationTime)
        ("storage.rotate_account_keys", "phiclaimsarchive", ["GET", "POST", "POST"]),
        # one read, the revocation, the marker tag; verify reads the tag from the PATCH's answer
        ("storage.revoke_user_delegation_keys", "phiimaging", ["GET", "POST", "PATCH"]),
    ],
)
def test_plan_apply_verify_read_azure_once(  # type: ignore[no-untyped-def]
    tenant: Tenant, make_context, name: str, account: str, expected: list[str]
) -> None:
    ctx = make_context(name, account=tenant.storage_account(account).id)
    ctx.observations = {}
    plan, result, verified = _run(ctx, name)
    assert plan.changes and result.changed and verified
    assert [method for method, _ in _calls(tenant)] == expected
    # the same end state as a fresh read shows: a new context (nothing observed) finds nothing to do
    fresh = make_context(name, account=tenant.storage_account(account).id)
    assert get_action(name)().plan(fresh).changes == []
    assert get_action(name)().verify(fresh)


def test_stored_policies_verify_reads_only_the_acls_again(tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
    """Set Container ACL answers without the ACL: verify reads each ACL again, not the account or list."""
    name = "storage.remove_stored_access_policies"
    ctx = make_context(name, account=tenant.storage_account("phipatientexports").id)
    ctx.observations = {}
    action = get_action(name)()
    plan = action.plan(ctx)
    containers = len({c.field.split(".")[1] for c in plan.changes})
    before = len(tenant.journal.entries())
    assert action.apply(ctx).changed
    applied = tenant.journal.entries()[before:]
    assert all(entry.method == "PUT" for entry in applied) and len(applied) == containers
    assert action.verify(ctx)
    reread = tenant.journal.entries()[before + len(applied) :]
    assert all(entry.method == "GET" and "comp=acl" in _query(entry) for entry in reread)


def _query(entry: Any) -> str:
    return "&".join(f"{key}={value}" for key, value in (entry.query or {}).items())


def test_without_observations_every_call_reads(tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
    """Outside the engine's single step (no ``observations``), plan, apply and verify each read Azure."""
    name = "storage.isolate_account"
    ctx = make_context(name, account=tenant.storage_account("phiimaging").id)
    _run(ctx, name)
    assert [method for method, _ in _calls(tenant)] == ["GET", "GET", "PATCH", "GET"]
