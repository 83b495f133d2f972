"""The action contract, for EVERY registered Azure action, driven from the registry against the strict
simulator (in-process mount, irflow configured as a deployment would be: its egress IP known):

- plan makes no Azure write, and names the changes it would make;
- apply, then apply again: one change (the second apply changes nothing and writes nothing);
- verify is true afterwards (and false before, for an action that changes something).

Each action's own test file goes deeper (what exactly changes, prior state, errors); this one makes sure
no action escapes the contract and that a new action cannot be registered without a case here. notify.*
actions change no Azure state: their once-only delivery is proven against a real SMTP server in
tests/notify/test_escalate_action.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from azure.keyvault.keys._shared import http_challenge_cache

from irflow.actions.base import StepContext, all_actions, get_action
from irflow.engine.evidence import EvidenceRecorder
from irflow.engine.state import StateStore
from irflow.sim.mock import mount
from irflow.sim.models import Tenant
from irflow.store.db import Database

IRFLOW_EGRESS_IP = "192.0.2.10"
EXFIL_WORKSPACE = "7e3a9c51-2b4d-4f6e-9a8c-1d3e5f7a9b2c"  # the sas-exfiltration scenario's workspace
USER = "7f2a4c6e-8b0d-4e2f-a4c6-e8b0d2f4a6c8"
SP = "4b7d2e19-3a6c-4f8e-9d15-7c2a0e6b8f31"
DEVELOPERS = "8e3f1a52-7c4d-4b9e-a6f0-2d1c5b7e9a43"
Build = Callable[[str], StepContext]


@dataclass(frozen=True)
class Case:
    """How to reach the state where ``action`` has something to do: ``setup`` prepares the tenant (maybe by
    applying the action this one undoes) and returns the action's parameters."""

    setup: Callable[[Tenant, Any], dict[str, Any]]
    scenario: str = "demo"
    changes: bool = True  # False: a read-only action (apply reports no change, ever)


def _account(tenant: Tenant, name: str = "phipatientexports") -> str:
    return tenant.storage_account(name).id


def _vault(tenant: Tenant) -> str:
    return tenant.key_vault("kv-phi-prod").id


def _vnet(tenant: Tenant) -> str:
    sub = tenant.default_subscription_id
    assert sub is not None
    return tenant.get_virtual_network(sub, "rg-phi-prod", "vnet-phi").id


def _after(action: str, **params: Any) -> Callable[[Any], Any]:
    """Apply ``action`` first (what the undo action undoes) and return its recorded prior state."""

    def run(build: Any) -> Any:
        return get_action(action)().apply(build(action, **params)).prior_state

    return run


def _rbac_vault(tenant: Tenant) -> str:
    vault = tenant.key_vault("kv-phi-prod")
    vault.apply_update({"properties": {"enableRbacAuthorization": True}}, when=tenant.now())
    tenant.assign_role("Key Vault Crypto User", vault.id, DEVELOPERS, "Group")
    return vault.id


def _directory(tenant: Tenant) -> None:
    tenant.directory.add_user("avery@contoso.example", id=USER)
    tenant.directory.add_service_principal("nightly-etl", id=SP)


def _case_restore_vault_network(t: Tenant, b: Any) -> dict[str, Any]:
    return {"vault": _vault(t), "prior": _after("keyvault.isolate_vault", vault=_vault(t))(b)}


def _case_restore_access_policies(t: Tenant, b: Any) -> dict[str, Any]:
    return {"vault": _vault(t), "prior": _after("keyvault.revoke_access_policies", vault=_vault(t))(b)}


def _case_revoke_role_assignments(t: Tenant, b: Any) -> dict[str, Any]:
    return {"vault": _rbac_vault(t)}


def _case_restore_role_assignments(t: Tenant, b: Any) -> dict[str, Any]:
    vault = _rbac_vault(t)
    return {"vault": vault, "prior": _after("keyvault.revoke_role_assignments", vault=vault)(b)}


def _case_disable_sp(t: Tenant, b: Any) -> dict[str, Any]:
    _directory(t)
    return {"service_principal": SP}


def _case_enable_sp(t: Tenant, b: Any) -> dict[str, Any]:
    _directory(t)
    return {
        "service_principal": SP,
        "prior": _after("identity.disable_service_principal", service_principal=SP)(b),
    }


def _case_revoke_sessions(t: Tenant, b: Any) -> dict[str, Any]:
    _directory(t)
    return {"user": USER}


def _case_release_subnet(t: Tenant, b: Any) -> dict[str, Any]:
    subnet = f"{_vnet(t)}/subnets/snet-phi-data"
    get_action("network.quarantine_subnet")().apply(b("network.quarantine_subnet", subnet=subnet))
    return {"subnet": subnet}


def _case_restore_peering(t: Tenant, b: Any) -> dict[str, Any]:
    peering = f"{_vnet(t)}/virtualNetworkPeerings/peer-to-analytics"
    return {"peering": peering, "prior": _after("network.disconnect_peering", peering=peering)(b)}


def _case_unseal(t: Tenant, b: Any) -> dict[str, Any]:
    return {"account": _account(t), "prior": _after("storage.seal_account", account=_account(t))(b)}


def _case_restore_account_network(t: Tenant, b: Any) -> dict[str, Any]:
    return {"account": _account(t), "prior": _after("storage.isolate_account", account=_account(t))(b)}


def _case_restore_public_containers(t: Tenant, b: Any) -> dict[str, Any]:
    # Azure refuses a public container while the account forbids blob public access: that is restored first
    prior = _after("storage.block_public_containers", account=_account(t))(b)
    return {"account": _account(t), "prior": prior}


def _case_restore_stored_access_policies(t: Tenant, b: Any) -> dict[str, Any]:
    prior = _after("storage.remove_stored_access_policies", account=_account(t))(b)
    return {"account": _account(t), "prior": prior}


CASES: dict[str, Case] = {
    "forensics.capture_resource_state": Case(lambda t, b: {"resources": [_account(t)], "phase": "before"}),
    "forensics.export_logs": Case(
        lambda t, b: {
            "workspace_id": EXFIL_WORKSPACE,
            "query": "StorageBlobLogs | take 5",
            "timespan": "P30D",
        },
        scenario="sas-exfiltration",
    ),
    "forensics.snapshot_containers": Case(
        lambda t, b: {"account": _account(t), "evidence_account": _account(t, "webassetscdn")}
    ),
    "identity.disable_service_principal": Case(_case_disable_sp),
    "identity.enable_service_principal": Case(_case_enable_sp),
    "identity.revoke_user_sessions": Case(_case_revoke_sessions),
    "keyvault.enable_purge_protection": Case(lambda t, b: {"vault": _vault(t)}),
    "keyvault.isolate_vault": Case(lambda t, b: {"vault": _vault(t)}),
    "keyvault.restore_access_policies": Case(_case_restore_access_policies),
    "keyvault.restore_role_assignments": Case(_case_restore_role_assignments),
    "keyvault.restore_vault_network": Case(_case_restore_vault_network),
    "keyvault.revoke_access_policies": Case(lambda t, b: {"vault": _vault(t)}),
    "keyvault.revoke_role_assignments": Case(_case_revoke_role_assignments),
    "keyvault.rotate_key": Case(lambda t, b: {"vault": _vault(t), "key": "phi-records-kek"}),
    "monitor.ensure_diagnostic_settings": Case(
        lambda t, b: {
            "workspace": f"/subscriptions/{t.default_subscription_id}/resourceGroups/rg-phi-prod/providers/"
            "Microsoft.OperationalInsights/workspaces/law-ir",
            "storage_accounts": [_account(t)],
        }
    ),
    "monitor.query_storage_access": Case(
        lambda t, b: {"workspace_id": EXFIL_WORKSPACE, "accounts": [_account(t, "phiexportsnw")]},
        scenario="sas-exfiltration",
        changes=False,
    ),
    "network.disconnect_peering": Case(
        lambda t, b: {"peering": f"{_vnet(t)}/virtualNetworkPeerings/peer-to-analytics"}
    ),
    "network.quarantine_subnet": Case(lambda t, b: {"subnet": f"{_vnet(t)}/subnets/snet-phi-data"}),
    "network.release_subnet": Case(_case_release_subnet),
    "network.restore_peering": Case(_case_restore_peering),
    "storage.block_public_containers": Case(lambda t, b: {"account": _account(t)}),
    "storage.enable_data_protection": Case(lambda t, b: {"account": _account(t)}),
    "storage.isolate_account": Case(lambda t, b: {"account": _account(t)}),
    "storage.remove_stored_access_policies": Case(lambda t, b: {"account": _account(t)}),
    "storage.restore_account_network": Case(_case_restore_account_network),
    "storage.restore_public_containers": Case(_case_restore_public_containers),
    "storage.restore_stored_access_policies": Case(_case_restore_stored_access_policies),
    "storage.revoke_user_delegation_keys": Case(lambda t, b: {"account": _account(t)}),
    "storage.rotate_account_keys": Case(lambda t, b: {"account": _account(t)}),
    "storage.seal_account": Case(lambda t, b: {"account": _account(t)}),
    "storage.unseal_account": Case(_case_unseal),
}


def test_every_registered_azure_action_has_a_case() -> None:
    azure_actions = {name for name in all_actions() if not name.startswith("notify.")}
    assert set(CASES) == azure_actions


@pytest.fixture
def tenant(request: pytest.FixtureRequest) -> Iterator[Tenant]:
    tenant = Tenant.from_scenario(CASES[request.getfixturevalue("action")].scenario)
    tenant.set_caller_origin(ip=IRFLOW_EGRESS_IP)
    tenant.lro.retry_after = 0
    with mount(tenant):
        yield tenant


@pytest.fixture
def action(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _clear_key_vault_challenges() -> Iterator[None]:
    http_challenge_cache.clear()
    yield
    http_challenge_cache.clear()


def _writes(tenant: Tenant) -> list[tuple[str, str, str | None]]:
    return [(w.method, w.path, w.route) for w in tenant.journal.writes() if w.status < 400]


@pytest.mark.parametrize("action", sorted(CASES), indirect=True)
def test_plan_writes_nothing_apply_twice_is_one_change_verify_holds(
    action: str, tenant: Tenant, make_context, clients, database: Database
) -> None:  # type: ignore[no-untyped-def]
    sub = tenant.default_subscription_id
    assert sub is not None
    clients.network(sub)._config.polling_interval = 0  # LRO polls without the SDK's 30 s default wait
    incident = StateStore(database).open_incident(title="drill", severity="high", source="manual", actor="t")

    def build(name: str, **params: Any) -> StepContext:
        ctx: StepContext = make_context(name, **params)
        ctx.incident = {"id": incident}
        ctx.evidence = EvidenceRecorder(database)
        return ctx

    case = CASES[action]
    params = case.setup(tenant, build)
    ctx = build(action, **params)
    implementation = get_action(action)()
    before = _writes(tenant)

    plan = implementation.plan(ctx)
    assert _writes(tenant) == before, "plan wrote to Azure"
    if case.changes:
        assert plan.changes, "nothing planned: the case does not reach a state with work to do"
        assert implementation.verify(ctx) is False

    first = implementation.apply(ctx)
    assert first.changed is case.changes
    after_first = _writes(tenant)
    if not case.changes:
        assert after_first == before

    second = implementation.apply(ctx)
    assert second.changed is False, "the second apply changed something again"
    assert _writes(tenant) == after_first, "the second apply wrote to Azure again"
    assert implementation.verify(ctx) is True
