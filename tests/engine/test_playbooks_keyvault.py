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
        ("revoke-role-assignments", "succeeded"),
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
    # irflow's configured origin (IRFLOW_EGRESS_IPS) is the one address the vault still admits
    assert vault.properties["networkAcls"]["ipRules"] == [{"value": "192.0.2.10/32"}]
    assert summary["enablePurgeProtection"] is True
    assert vault.access_policy(DEVELOPERS) is None
    assert vault.access_policy(ETL)["permissions"]["keys"] == ["get", "wrapKey", "unwrapKey"]
    # irflow's own entry (its token's oid) was never on the keep list, and is still whole
    assert vault.access_policy(sim.tenant.principal_id)["permissions"]["keys"] == ["get", "list", "rotate"]
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


TAILSPIN = "keyvault-overbroad-access"
EGRESS_IP = "192.0.2.10"  # irflow's egress IP in the engine fixtures (IRFLOW_EGRESS_IPS)
SQL_IDENTITY = "4b7d2e19-3a6c-4f8e-9d15-7c2a0e6b8f31"
TAILSPIN_DEVELOPERS = "8e3f1a52-7c4d-4b9e-a6f0-2d1c5b7e9a43"


class TestBothPermissionModels:
    """The Tailspin scenario: kv-phi-tailspin uses access policies, kv-phi-tailspin-rbac Azure RBAC. irflow
    is configured as a deployment would be: its object id comes from its token's ``oid``; it holds an access
    policy on the first vault and Key Vault Crypto Officer at the resource group (covering the second)."""

    @pytest.fixture
    def sim(self) -> Iterator[SimServer]:
        from irflow.sim.models import Tenant

        tenant = Tenant.from_scenario(TAILSPIN)
        # The vault firewalls see irflow's public egress address, as on Azure (a loopback peer could never be
        # allow-listed: Key Vault IP rules refuse private and loopback ranges).
        tenant.set_caller_origin(ip=EGRESS_IP)
        with SimServer(tenant) as server:
            yield server

    @staticmethod
    def _params(sim: SimServer, **extra: str) -> dict[str, str]:
        policies = sim.tenant.key_vault("kv-phi-tailspin").id
        rbac = sim.tenant.key_vault("kv-phi-tailspin-rbac").id
        return {
            "key_vaults": f"{policies},{rbac}",
            "keys": f"{policies}/keys/phi-db-cek,{rbac}/keys/claims-cek",
            "keep_object_ids": SQL_IDENTITY,
            **extra,
        }

    def test_containment_revokes_by_model_keeps_irflow_and_is_released(
        self, svc: runtime.Services, sim: SimServer
    ) -> None:
        tenant = sim.tenant
        policies, rbac = tenant.key_vault("kv-phi-tailspin"), tenant.key_vault("kv-phi-tailspin-rbac")
        before = {a.name for a in tenant.role_assignments.all()}
        params = self._params(sim)  # irflow's path: its configured origin, kept by the isolation
        run = submit_run(svc, PLAYBOOK, params, actor="cli:tester", auto_approve=True)
        assert run.handle.get_result() == "succeeded", run_view(svc, run.run_id)["error"]
        rows = {(s["step"], s["target"]): s for s in run_view(svc, run.run_id)["steps"]}

        # access-policy vault: the group loses key use and secret reads; irflow and the SQL identity keep all
        assert policies.access_policy(TAILSPIN_DEVELOPERS)["permissions"] == {
            "keys": ["list"],
            "secrets": ["list"],
        }
        assert policies.access_policy(tenant.principal_id)["permissions"]["keys"] == ["get", "list", "rotate"]
        # RBAC vault: the group's Crypto User and the phished user's Secrets User assignments are gone; the
        # SQL identity (keep list), irflow (Crypto Officer at the group) and the auditors' Reader stay
        left = {(a.role.name, a.principal_id) for a in tenant.role_assignments.all()}
        assert left == {
            ("Key Vault Crypto Service Encryption User", SQL_IDENTITY),
            ("Key Vault Crypto Officer", tenant.principal_id),
            ("Key Vault Reader", "2e4f6a8c-0b1d-4e3f-a5b7-c9d1e3f5a7b9"),
        }
        # each revocation step says what it did not do on the other model, and claims nothing there
        on_rbac = rows[("revoke-access-policies", rbac.id)]["result"]
        assert not on_rbac["changed"] and "ignores its access policies" in on_rbac["notes"][0]
        on_policies = rows[("revoke-role-assignments", policies.id)]["result"]
        assert not on_policies["changed"] and "ignores data-plane role assignments" in on_policies["notes"][0]
        # irflow kept its way in: both keys rotated, purge protection on both vaults
        writes = [(w.method, w.route) for w in tenant.journal.writes() if w.status < 400]
        assert writes.count(("POST", "keyvault.data.rotate_key")) == 2
        assert writes.count(("DELETE", "authorization.roleAssignments.delete")) == 2
        assert policies.summary()["enablePurgeProtection"] and rbac.summary()["enablePurgeProtection"]

        again = submit_run(
            svc, PLAYBOOK, params, actor="cli:tester", auto_approve=True, incident_id=run.incident_id
        )
        assert again.handle.get_result() == "succeeded"
        assert [(w.method, w.route) for w in tenant.journal.writes() if w.status < 400] == writes

        release = submit_run(
            svc,
            "release-containment",
            {"key_vaults": params["key_vaults"]},
            actor="cli:tester",
            auto_approve=True,
            incident_id=run.incident_id,
        )
        assert release.handle.get_result() == "succeeded", run_view(svc, release.run_id)["error"]
        assert {a.name for a in tenant.role_assignments.all()} == before
        assert policies.access_policy(TAILSPIN_DEVELOPERS)["permissions"]["keys"] == [
            "list",
            "get",
            "decrypt",
            "unwrapKey",
        ]
        assert rbac.properties["networkAcls"]["defaultAction"] == "Allow"

    def test_dry_run_plans_each_models_revocation_and_writes_nothing(
        self, svc: runtime.Services, sim: SimServer
    ) -> None:
        params = self._params(sim)
        dry = submit_run(svc, PLAYBOOK, params, actor="cli:tester", dry_run=True)
        assert dry.handle.get_result() == "succeeded"
        assert sim.tenant.journal.writes() == []
        rbac = sim.tenant.key_vault("kv-phi-tailspin-rbac").id
        policies = sim.tenant.key_vault("kv-phi-tailspin").id
        rows = {(s["step"], s["target"]): s for s in run_view(svc, dry.run_id)["steps"]}
        revoked = rows[("revoke-role-assignments", rbac)]["plan"]["changes"]
        assert {c["before"]["role"] for c in revoked} == {"Key Vault Crypto User", "Key Vault Secrets User"}
        assert rows[("revoke-role-assignments", policies)]["plan"]["changes"] == []
        assert rows[("revoke-access-policies", rbac)]["plan"]["changes"] == []
        assert len(rows[("revoke-access-policies", policies)]["plan"]["changes"]) == 2

    def test_without_irflows_origin_rotation_fails_as_a_network_refusal(
        self, svc: runtime.Services, sim: SimServer
    ) -> None:
        """irflow calls from its egress IP but was not told so (no IRFLOW_EGRESS_IPS / IRFLOW_SUBNET_ID, no
        allow_ip_rules): isolation leaves only private endpoints, and the rotation step fails as a network
        refusal naming the vault and what to configure (ForbiddenByConnection), not a missing permission."""
        from irflow.azure.principal import NetworkOrigin

        svc.clients.origin = NetworkOrigin()
        run = submit_run(svc, PLAYBOOK, self._params(sim), actor="cli:tester", auto_approve=True)
        assert run.handle.get_result() == "failed"
        view = run_view(svc, run.run_id)
        states = {(s["step"], s["state"]) for s in view["steps"]}
        assert ("isolate-vault", "succeeded") in states and ("rotate-phi-keys", "failed") in states
        failed = next(s for s in view["steps"] if s["state"] == "failed")
        assert failed["step"] == "rotate-phi-keys"
        error = failed["error"]
        assert "network refusal" in error and "ForbiddenByConnection" in error
        assert failed["target"].split("/keys/")[0].lower() in error.lower() and "IRFLOW_EGRESS_IPS" in error
        assert "permission denied" not in error and "not a missing permission" in error
