"""The keyvault-overbroad-access playbook end to end: DBOS workflows, the official SDKs, the HTTPS sim."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.keyvault.keys._shared import http_challenge_cache

from irflow.audit import AuditChain
from irflow.engine import runtime
from irflow.engine.runs import run_view, submit_run
from irflow.sim.server import SimServer
from irflow.store.models import Incident

PLAYBOOK = "keyvault-overbroad-access"
VAULT = "kv-phi-prod"
KEY = "phi-records-kek"
DEVELOPERS = "8e3f1a52-7c4d-4b9e-a6f0-2d1c5b7e9a43"
ETL = "4b7d2e19-3a6c-4f8e-9d15-7c2a0e6b8f31"

RELEASE = """\
name: release-key-vaults
version: 1
inputs:
  key_vaults: {type: "list[resource_id]"}
steps:
  - id: restore-vault-network
    action: keyvault.restore_vault_network
    for_each: "{{ inputs.key_vaults }}"
    with:
      vault: "{{ item }}"
      prior: "{{ incident.prior_state['keyvault.isolate_vault'][item] }}"
"""


@pytest.fixture(autouse=True)
def _clear_key_vault_challenges() -> Iterator[None]:
    http_challenge_cache.clear()
    yield
    http_challenge_cache.clear()


def _params(sim: SimServer) -> dict[str, str]:
    vault = sim.tenant.key_vault(VAULT).id
    return {
        "key_vaults": vault,
        "keys": f"{vault}/keys/{KEY}",
        "allow_ip_rules": "192.0.2.10",  # irflow's egress IP (engine fixtures): its data-plane path
        "keep_object_ids": ETL,
    }


def _writes(sim: SimServer) -> list[tuple[str, str]]:
    return [(w.method, w.route) for w in sim.tenant.journal.writes() if w.status < 400]


def test_containment_is_complete_idempotent_audited_and_releasable(
    svc: runtime.Services, sim: SimServer, tmp_path: Path
) -> None:
    params = _params(sim)
    vault = sim.tenant.key_vault(VAULT)
    first = submit_run(svc, PLAYBOOK, params, actor="cli:tester", auto_approve=True)
    assert first.handle.get_result() == "succeeded", run_view(svc, first.run_id)["error"]
    view = run_view(svc, first.run_id)
    assert [(s["step"], s["state"]) for s in view["steps"]] == [
        ("capture-state-before", "succeeded"),
        ("isolate-vault", "succeeded"),
        ("revoke-access-policies", "succeeded"),
        ("rotate-phi-keys", "succeeded"),
        ("enable-purge-protection", "succeeded"),
        ("capture-state-after", "succeeded"),
        ("escalate", "succeeded"),
    ]
    assert _writes(sim) == [
        ("PATCH", "keyvault.vaults.update"),
        ("PUT", "keyvault.vaults.update_access_policy"),
        ("POST", "keyvault.data.rotate_key"),
        ("PATCH", "keyvault.vaults.update"),
    ]
    summary = vault.summary()
    assert summary["networkAcls"] == {"defaultAction": "Deny", "bypass": "None"}
    assert summary["enablePurgeProtection"] is True
    assert vault.access_policy(DEVELOPERS) is None
    assert vault.access_policy(ETL)["permissions"]["keys"] == ["get", "wrapKey", "unwrapKey"]
    rotate = next(s for s in view["steps"] if s["step"] == "rotate-phi-keys")
    assert rotate["result"]["outputs"]["key"] == KEY and rotate["result"]["outputs"]["version"]

    again = submit_run(
        svc, PLAYBOOK, params, actor="cli:tester", auto_approve=True, incident_id=first.incident_id
    )
    assert again.handle.get_result() == "succeeded"
    assert len(_writes(sim)) == 4
    assert all(not s["result"]["changed"] for s in run_view(svc, again.run_id)["steps"])

    with svc.db.transaction() as session:
        incident = session.get(Incident, first.incident_id)
        assert incident is not None and incident.status == "contained"
        types = [e.type for e in AuditChain().events(session, incident_id=first.incident_id)]
        assert AuditChain().verify(session).ok
    assert types.count("notification.queued") == 1

    release = tmp_path / "release-key-vaults.yaml"
    release.write_text(RELEASE)
    released = submit_run(
        svc,
        str(release),
        {"key_vaults": params["key_vaults"]},
        actor="cli:tester",
        auto_approve=True,
        incident_id=first.incident_id,
    )
    assert released.handle.get_result() == "succeeded", run_view(svc, released.run_id)["error"]
    assert vault.properties["publicNetworkAccess"] == "Enabled"
    assert vault.properties["networkAcls"] == {
        "bypass": "AzureServices",
        "defaultAction": "Allow",
        "ipRules": [],
        "virtualNetworkRules": [],
    }
    assert vault.summary()["enablePurgeProtection"] is True  # irreversible: not part of the release


def test_dry_run_plans_every_change_and_writes_nothing(svc: runtime.Services, sim: SimServer) -> None:
    dry = submit_run(svc, PLAYBOOK, _params(sim), actor="cli:tester", dry_run=True)
    assert dry.handle.get_result() == "succeeded"
    assert _writes(sim) == []
    steps = {s["step"]: s for s in run_view(svc, dry.run_id)["steps"]}
    assert {name: s["state"] for name, s in steps.items()} == dict.fromkeys(steps, "planned")
    assert len(steps["isolate-vault"]["plan"]["changes"]) == 3
    assert [c["field"] for c in steps["revoke-access-policies"]["plan"]["changes"]] == [
        f"accessPolicies.{DEVELOPERS}.keys",
        f"accessPolicies.{DEVELOPERS}.secrets",
    ]
    assert [c["field"] for c in steps["rotate-phi-keys"]["plan"]["changes"]] == [f"keys.{KEY}"]
    assert any("irreversible" in n for n in steps["enable-purge-protection"]["plan"]["notes"])
