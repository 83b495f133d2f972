"""Every shipped containment playbook with irflow's network origin NOT configured (no IRFLOW_EGRESS_IPS /
IRFLOW_SUBNET_ID), against the strict simulator, irflow still calling from its usual egress IP.

A playbook that needs a data plane (blob, Key Vault) after isolating it must fail with a network refusal that
names the resource and what to configure, never one that reads as a missing RBAC permission. A playbook that
only uses ARM, Graph and Log Analytics (no resource firewall stands in their way) must complete, and the test
proves it needed no data plane. The deployment-configured runs of the same playbooks are in test_runs.py,
test_playbooks_keyvault.py and test_playbooks_network.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from azure.keyvault.keys._shared import http_challenge_cache

from irflow.azure.principal import NetworkOrigin
from irflow.engine import runtime
from irflow.engine.runs import run_view, submit_run
from irflow.sim.server import SimServer

PLAYBOOKS_DIR = Path(__file__).resolve().parents[2] / "playbooks"
# release-containment undoes a containment over the path that containment left in each firewall (irflow's
# origin, recorded in Azure itself): it is exercised after the containment runs in test_runs.py and
# test_playbooks_keyvault.py.
NOT_CONTAINMENT = {"release-containment"}
DATA_PLANE_ROUTES = ("storage.blob.", "keyvault.data.")


def _sas(sim: SimServer) -> tuple[dict[str, str], str]:
    return {"storage_accounts": sim.tenant.storage_account("phipatientexports").id}, "phipatientexports"


def _public_blob(sim: SimServer) -> tuple[dict[str, str], str]:
    return {"storage_accounts": sim.tenant.storage_account("phiimaging").id}, "phiimaging"


def _keyvault(sim: SimServer) -> tuple[dict[str, str], str]:
    vault = sim.tenant.key_vault("kv-phi-prod").id
    return {"key_vaults": vault, "keys": f"{vault}/keys/phi-records-kek"}, "kv-phi-prod"


def _peering(sim: SimServer) -> tuple[dict[str, str], str]:
    subscription = sim.tenant.default_subscription_id
    assert subscription is not None
    sim.tenant.lro.retry_after = 0
    vnet = sim.tenant.get_virtual_network(subscription, "rg-phi-prod", "vnet-phi")
    params = {
        "subnets": f"{vnet.id}/subnets/snet-phi-data",
        "peerings": f"{vnet.id}/virtualNetworkPeerings/peer-to-analytics",
    }
    return params, "vnet-phi"


def _identity(sim: SimServer) -> tuple[dict[str, str], str]:
    user, sp = "7f2a4c6e-8b0d-4e2f-a4c6-e8b0d2f4a6c8", "4b7d2e19-3a6c-4f8e-9d15-7c2a0e6b8f31"
    sim.tenant.directory.add_user("avery@contoso.example", id=user)
    sim.tenant.directory.add_service_principal("nightly-etl", id=sp)
    return {"users": user, "service_principals": sp}, user


# playbook → (inputs builder, the step that needs irflow's path or None when none does)
CASES: dict[str, tuple[Callable[[SimServer], tuple[dict[str, str], str]], str | None]] = {
    "storage-sas-exfiltration": (_sas, "revoke-service-sas"),
    "keyvault-overbroad-access": (_keyvault, "rotate-phi-keys"),
    "public-blob-exposure": (_public_blob, None),
    "network-peering-bypass": (_peering, None),
    "compromised-identity": (_identity, None),
}


@pytest.fixture(autouse=True)
def _clear_key_vault_challenges() -> Iterator[None]:
    http_challenge_cache.clear()
    yield
    http_challenge_cache.clear()


def test_every_shipped_containment_playbook_has_a_case() -> None:
    shipped = {path.stem for path in PLAYBOOKS_DIR.glob("*.yaml")}
    assert set(CASES) == shipped - NOT_CONTAINMENT


@pytest.mark.parametrize("playbook", sorted(CASES))
def test_without_irflows_origin_a_playbook_fails_as_a_network_refusal_or_needs_no_data_plane(
    svc: runtime.Services, sim: SimServer, playbook: str
) -> None:
    build, needs_path = CASES[playbook]
    params, resource = build(sim)
    subscription = sim.tenant.default_subscription_id
    assert subscription is not None
    svc.clients.network(subscription)._config.polling_interval = 0  # LRO polls without the SDK's 30 s wait
    svc.clients.origin = NetworkOrigin()  # irflow was not told where it calls from
    run = submit_run(svc, playbook, params, actor="cli:tester", auto_approve=True)
    outcome = run.handle.get_result()
    view = run_view(svc, run.run_id)
    if needs_path is None:
        assert outcome == "succeeded", view["error"]
        data_plane = [
            e.route for e in sim.tenant.journal.entries() if (e.route or "").startswith(DATA_PLANE_ROUTES)
        ]
        assert data_plane == []  # ARM, Graph and Log Analytics only: no resource firewall applies
        return
    assert outcome == "failed"
    failed = [s for s in view["steps"] if s["state"] == "failed"]
    assert failed and failed[0]["step"] == needs_path
    error = failed[0]["error"]
    assert "network refusal" in error and "not a missing permission" in error
    assert resource in error  # names the resource
    assert "IRFLOW_EGRESS_IPS" in error and "IRFLOW_SUBNET_ID" in error  # and what to configure
    assert "permission denied" not in error.lower() and "needs microsoft." not in error.lower()
    # isolation, the first change, still happened: exfiltration stopped even without irflow's path
    assert any(s["step"].startswith("isolate") and s["state"] == "succeeded" for s in view["steps"])
