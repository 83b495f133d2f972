"""The network-peering-bypass and compromised-identity playbooks end to end: DBOS workflows, the official SDK
clients, the HTTPS simulator (demo scenario)."""

from __future__ import annotations

from pathlib import Path

from irflow.engine import runtime
from irflow.engine.runs import run_view, submit_run
from irflow.sim.server import SimServer

USER = "7f2a4c6e-8b0d-4e2f-a4c6-e8b0d2f4a6c8"
SP = "4b7d2e19-3a6c-4f8e-9d15-7c2a0e6b8f31"

RELEASE = """\
name: network-release
version: 1
inputs:
  subnets: {type: "list[resource_id]"}
  peerings: {type: "list[resource_id]"}
steps:
  - id: release
    action: network.release_subnet
    for_each: "{{ inputs.subnets }}"
    with: {subnet: "{{ item }}"}
  - id: restore-peering
    action: network.restore_peering
    for_each: "{{ inputs.peerings }}"
    with:
      peering: "{{ item }}"
      prior: "{{ incident.prior_state['network.disconnect_peering'][item] }}"
"""


def _instant_polls(svc: runtime.Services, sim: SimServer) -> str:
    subscription = sim.tenant.default_subscription_id
    assert subscription is not None
    sim.tenant.lro.retry_after = 0
    # With Retry-After 0 the SDK waits the client's polling_interval (30 s by default) between polls.
    svc.clients.network(subscription)._config.polling_interval = 0
    return subscription


def test_peering_bypass_is_contained_once_and_released(
    svc: runtime.Services, sim: SimServer, tmp_path: Path
) -> None:
    subscription = _instant_polls(svc, sim)
    vnet = sim.tenant.get_virtual_network(subscription, "rg-phi-prod", "vnet-phi")
    params = {
        "subnets": f"{vnet.id}/subnets/snet-phi-data",
        "peerings": f"{vnet.id}/virtualNetworkPeerings/peer-to-analytics",
    }
    first = submit_run(svc, "network-peering-bypass", params, actor="cli:tester", auto_approve=True)
    assert first.handle.get_result() == "succeeded", run_view(svc, first.run_id)["error"]
    view = run_view(svc, first.run_id)
    assert [(s["step"], s["state"]) for s in view["steps"]] == [
        ("capture-state-before", "succeeded"),  # the subnet and the peering, each its own target
        ("capture-state-before", "succeeded"),
        ("quarantine", "succeeded"),
        ("disconnect-peering", "succeeded"),
        ("capture-state-after", "succeeded"),
        ("capture-state-after", "succeeded"),
        ("escalate", "succeeded"),
    ]
    nsg = sim.tenant.get_network_security_group(subscription, "rg-phi-prod", "nsg-phi-data")
    assert {"irflow-quarantine-deny-inbound", "irflow-quarantine-deny-outbound"} <= set(nsg.rules)
    assert vnet.peerings == {}
    writes = len(sim.tenant.journal.writes())
    assert nsg.flush_connection is True  # established flows are re-evaluated against the deny rules
    assert writes == 2 + 1 + 1  # two rule PUTs, the NSG PUT turning flushConnection on, one peering DELETE

    again = submit_run(
        svc,
        "network-peering-bypass",
        params,
        actor="cli:tester",
        auto_approve=True,
        incident_id=first.incident_id,
    )
    assert again.handle.get_result() == "succeeded"
    assert len(sim.tenant.journal.writes()) == writes
    assert all(not step["result"]["changed"] for step in run_view(svc, again.run_id)["steps"])

    (tmp_path / "network-release.yaml").write_text(RELEASE)
    release = submit_run(
        svc,
        "network-release",
        params,
        actor="cli:tester",
        auto_approve=True,
        incident_id=first.incident_id,
        playbooks_dir=tmp_path,
    )
    assert release.handle.get_result() == "succeeded", run_view(svc, release.run_id)
    assert set(nsg.rules) == {"allow-vnet-sql-inbound", "deny-internet-inbound"}
    assert nsg.flush_connection is False and "irflow-quarantine-flush-prior" not in nsg.tags
    restored = vnet.peerings["peer-to-analytics"]
    assert restored.peering_state == "Connected" and restored.allow_forwarded_traffic is True


def test_compromised_identity_is_contained_once(svc: runtime.Services, sim: SimServer) -> None:
    sim.tenant.directory.add_user("avery@contoso.example", id=USER)
    sim.tenant.directory.add_service_principal("nightly-etl", id=SP)
    params = {"users": USER, "service_principals": SP}
    first = submit_run(svc, "compromised-identity", params, actor="cli:tester", auto_approve=True)
    assert first.handle.get_result() == "succeeded"
    assert [s["state"] for s in run_view(svc, first.run_id)["steps"]] == ["succeeded"] * 3
    assert len(sim.tenant.directory.user(USER).revocations) == 1
    assert sim.tenant.directory.service_principal(SP).account_enabled is False
    writes = len(sim.tenant.journal.writes())

    again = submit_run(
        svc,
        "compromised-identity",
        params,
        actor="cli:tester",
        auto_approve=True,
        incident_id=first.incident_id,
    )
    assert again.handle.get_result() == "succeeded"
    assert len(sim.tenant.journal.writes()) == writes
    assert len(sim.tenant.directory.user(USER).revocations) == 1
