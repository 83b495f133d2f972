"""Playbook runs end to end: DBOS workflows on SQLite and PostgreSQL, the official SDK, the HTTPS sim."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from irflow.audit import AuditChain
from irflow.engine import runtime
from irflow.engine.runs import run_view, submit_run
from irflow.engine.state import StateStore
from irflow.logs import configure_logging
from irflow.sim.server import SimServer
from irflow.store.models import AuditEvent, Incident, Run

PLAYBOOK = "storage-sas-exfiltration"
TARGETS = ("phipatientexports", "phiclaimsarchive", "phiimaging")
ORIGIN_RULE = [{"value": "192.0.2.10", "action": "Allow"}]  # irflow's egress IP (tests/engine/conftest.py)


def _targets(sim: SimServer) -> str:
    return ",".join(sim.tenant.storage_account(name).id for name in TARGETS)


def _regenerations(sim: SimServer) -> Counter[tuple[str, str]]:
    return Counter(
        (entry.path.split("/")[8], entry.body["keyName"])
        for entry in sim.tenant.journal.writes()
        if entry.route == "storage.accounts.regenerate_key"
    )


def test_containment_run_is_complete_idempotent_and_audited(svc: runtime.Services, sim: SimServer) -> None:
    params = {"storage_accounts": _targets(sim)}
    first = submit_run(svc, PLAYBOOK, params, actor="cli:tester", auto_approve=True)
    assert first.handle.get_result() == "succeeded"

    view = run_view(svc, first.run_id)
    assert view["status"] == "succeeded"
    assert [(s["step"], s["state"]) for s in view["steps"]] == (
        [("capture-state-before", "succeeded")] * 3  # one target per account, read in parallel
        + [("isolate", "succeeded")] * 3  # the first change: exfiltration stops first
        + [("protect-evidence", "succeeded")] * 3
        + [("revoke-service-sas", "succeeded")] * 3
        + [("rotate-keys", "succeeded")] * 3
        + [("revoke-user-delegation-sas", "succeeded")] * 3
        + [("capture-state-after", "succeeded")] * 3
        + [("escalate", "succeeded")]
    )
    for name in TARGETS:
        account = sim.tenant.storage_account(name)
        state = account.summary()
        assert state["publicNetworkAccess"] == "Enabled"  # allow-list mode: irflow keeps its path (no seal)
        assert state["networkAcls"] == {"defaultAction": "Deny", "bypass": "None"}
        assert account.properties["networkAcls"]["ipRules"] == ORIGIN_RULE
        assert state["allowBlobPublicAccess"] is False
        assert state["user_delegation_keys_revoked_at"] is not None
    assert _regenerations(sim) == Counter({(name, key): 1 for name in TARGETS for key in ("key1", "key2")})
    bystander = sim.tenant.storage_account("webassetscdn").summary()
    assert bystander["publicNetworkAccess"] == "Enabled"
    assert bystander["networkAcls"]["defaultAction"] == "Allow"
    writes = len(sim.tenant.journal.writes())
    # PATCH and blob service PUT per account, one container ACL (the one stored policy) over irflow's path,
    # a regenerateKey per key, a revokeUserDelegationKeys and its marker tag PATCH per account
    assert writes == 3 + 3 + 1 + 6 + 3 + 3

    again = submit_run(
        svc, PLAYBOOK, params, actor="cli:tester", auto_approve=True, incident_id=first.incident_id
    )
    assert again.handle.get_result() == "succeeded"
    assert len(sim.tenant.journal.writes()) == writes
    assert all(not step["result"]["changed"] for step in run_view(svc, again.run_id)["steps"])

    dry = submit_run(svc, PLAYBOOK, params, actor="cli:tester", dry_run=True, incident_id=first.incident_id)
    assert dry.handle.get_result() == "succeeded"
    assert len(sim.tenant.journal.writes()) == writes
    dry_view = run_view(svc, dry.run_id)
    assert {s["state"] for s in dry_view["steps"]} == {"planned"}
    assert all(s["plan"]["changes"] == [] for s in dry_view["steps"])

    with svc.db.transaction() as session:
        incident = session.get(Incident, first.incident_id)
        assert incident is not None and incident.status == "contained"
        types = [e.type for e in AuditChain().events(session, incident_id=first.incident_id)]
        report = AuditChain().verify(session)
    assert report.ok, report.describe()
    assert types[:3] == ["incident.opened", "run.created", "run.running"]
    assert "incident.status_changed" in types and types.count("run.succeeded") == 3
    assert types.count("step.succeeded") == 44 and types.count("step.planned") == 66
    assert types.count("evidence.captured") == 6  # each account's state before and after, once
    # no workspace, no seal: 2 steps x 3 runs without targets; no evidence account: a step skipped x 3
    assert types.count("run.step_without_targets") == 6
    assert types.count("run.step_skipped") == 3
    assert types.count("notification.queued") == 1  # the re-run escalates nothing twice


def test_dry_run_on_a_fresh_tenant_plans_every_change_and_writes_nothing(
    svc: runtime.Services, sim: SimServer
) -> None:
    dry = submit_run(svc, PLAYBOOK, {"storage_accounts": _targets(sim)}, actor="cli:tester", dry_run=True)
    assert dry.handle.get_result() == "succeeded"
    assert sim.tenant.journal.writes() == []
    view = run_view(svc, dry.run_id)
    isolate = [s for s in view["steps"] if s["step"] == "isolate"]
    rotate = [s for s in view["steps"] if s["step"] == "rotate-keys"]
    for step in isolate:
        changes = {c["field"]: c["after"] for c in step["plan"]["changes"]}
        assert changes["properties.networkAcls.defaultAction"] == "Deny"
        assert changes["properties.networkAcls.ipRules"] == ORIGIN_RULE
        assert "properties.publicNetworkAccess" not in changes
    assert all([c["field"] for c in s["plan"]["changes"]] == ["keys.key1", "keys.key2"] for s in rotate)
    with svc.db.transaction() as session:
        incident = session.get(Incident, view["incident_id"])
        assert incident is not None and incident.status == "open"  # a dry run contains nothing


def test_a_missing_account_fails_the_run_with_its_name(svc: runtime.Services, sim: SimServer) -> None:
    gone = sim.tenant.storage_account("phiimaging").id.replace("phiimaging", "phideleted")
    params = {"storage_accounts": f"{sim.tenant.storage_account('phiclaimsarchive').id},{gone}"}
    submitted = submit_run(svc, PLAYBOOK, params, actor="cli:tester", auto_approve=True)
    assert submitted.handle.get_result() == "failed"
    view = run_view(svc, submitted.run_id)
    failed = [s for s in view["steps"] if s["state"] == "failed"]
    assert len(failed) == 1 and "phideleted" in failed[0]["error"] and "not found" in failed[0]["error"]
    assert "phideleted" in view["error"]
    # The missing account's chain ended at its capture: nothing after it ran for that account. Isolation is
    # pipelined with the capture (v8), so the existing account was contained meanwhile.
    missing = [s for s in view["steps"] if "phideleted" in (s["target"] or "")]
    assert [(s["step"], s["state"]) for s in missing if s["state"] != "pending"] == [
        ("capture-state-before", "failed")
    ]
    assert failed[0]["step"] == "capture-state-before"
    archive = sim.tenant.storage_account("phiclaimsarchive").summary()
    assert archive["networkAcls"]["defaultAction"] == "Deny"
    with svc.db.transaction() as session:
        assert AuditChain().verify(session).ok


def test_bad_input_writes_nothing(svc: runtime.Services) -> None:
    with pytest.raises(ValueError, match="not an Azure resource id"):
        submit_run(svc, PLAYBOOK, {"storage_accounts": "phiimaging"}, actor="cli:tester")
    with pytest.raises(ValueError, match="no playbook named"):
        submit_run(svc, "no-such-playbook", {}, actor="cli:tester")
    with svc.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Incident)) == 0
        assert session.scalar(select(func.count()).select_from(Run)) == 0
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 0


def test_replayed_state_change_writes_nothing_twice(svc: runtime.Services, sim: SimServer) -> None:
    dry = submit_run(svc, PLAYBOOK, {"storage_accounts": _targets(sim)}, actor="cli:tester", dry_run=True)
    dry.handle.get_result()
    store = StateStore(svc.db)
    with svc.db.transaction() as session:
        before = session.scalar(select(func.count()).select_from(AuditEvent))
    assert store.transition_run(dry.run_id, "succeed") == "succeeded"  # a replay of the last change
    with svc.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == before


def test_no_secret_reaches_the_logs(settings, sim: SimServer) -> None:  # type: ignore[no-untyped-def]
    stream = io.StringIO()
    configure_logging(level="DEBUG", fmt="json", stream=stream)
    old_keys = {
        k
        for a in TARGETS
        for k in (
            sim.tenant.storage_account(a).key_value("key1"),
            sim.tenant.storage_account(a).key_value("key2"),
        )
    }
    svc = runtime.launch(settings)
    try:
        submitted = submit_run(
            svc, PLAYBOOK, {"storage_accounts": _targets(sim)}, actor="cli:t", auto_approve=True
        )
        assert submitted.handle.get_result() == "succeeded"
    finally:
        runtime.shutdown()
        configure_logging(level="INFO", fmt="json")
    new_keys = {
        k
        for a in TARGETS
        for k in (
            sim.tenant.storage_account(a).key_value("key1"),
            sim.tenant.storage_account(a).key_value("key2"),
        )
    }
    output = stream.getvalue()
    assert output, "nothing was logged"
    for line in output.splitlines():
        json.loads(line)
    for secret in old_keys | new_keys | {sim.token}:
        assert secret not in output
    assert "storage account key regenerated" in output


def test_on_failure_continue_runs_the_next_step(svc: runtime.Services, sim: SimServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = (svc.settings.playbooks_dir / f"{PLAYBOOK}.yaml").read_text()
    text = text.replace(
        "    concurrency: 16\n    retry: {max_attempts: 4",
        "    on_failure: continue\n    concurrency: 16\n    retry: {max_attempts: 4",
    ).replace("phase: before}\n", "phase: before}\n    on_failure: continue\n")
    path = tmp_path / "tolerant.yaml"
    path.write_text(text)
    gone = sim.tenant.storage_account("phiimaging").id.replace("phiimaging", "phideleted")
    params = {"storage_accounts": f"{sim.tenant.storage_account('phiclaimsarchive').id},{gone}"}
    submitted = submit_run(svc, str(path), params, actor="cli:tester", auto_approve=True)
    # rotate-keys (on_failure: stop) fails for the missing account: its chain ends there (the pipeline's
    # next step is not run for it), the other account's chain completes, then the run stops
    assert submitted.handle.get_result() == "failed"
    view = run_view(svc, submitted.run_id)
    assert [(s["step"], s["state"]) for s in view["steps"]] == [
        ("capture-state-before", "succeeded"),
        ("capture-state-before", "failed"),
        ("isolate", "succeeded"),
        ("isolate", "failed"),
        ("protect-evidence", "succeeded"),
        ("protect-evidence", "failed"),
        ("revoke-service-sas", "succeeded"),
        ("revoke-service-sas", "failed"),
        ("rotate-keys", "succeeded"),
        ("rotate-keys", "failed"),
        ("revoke-user-delegation-sas", "succeeded"),
        ("revoke-user-delegation-sas", "pending"),
    ]
    assert "rotate-keys" in view["error"] and "phideleted" in view["error"]


def test_release_restores_the_recorded_prior_state(svc: runtime.Services, sim: SimServer) -> None:
    before = {name: sim.tenant.storage_account(name).properties["networkAcls"] for name in TARGETS}
    params = {"storage_accounts": _targets(sim)}
    contained = submit_run(svc, PLAYBOOK, params, actor="cli:tester", auto_approve=True)
    assert contained.handle.get_result() == "succeeded"
    assert all(
        sim.tenant.storage_account(n).summary()["networkAcls"]["defaultAction"] == "Deny" for n in TARGETS
    )

    released = submit_run(
        svc,
        "release-containment",
        params,
        actor="cli:ic",
        auto_approve=True,
        incident_id=contained.incident_id,
    )
    assert released.handle.get_result() == "succeeded"
    for name in TARGETS:
        account = sim.tenant.storage_account(name)
        assert account.summary()["publicNetworkAccess"] == "Enabled"
        assert account.summary()["allowBlobPublicAccess"] is True
        assert account.properties["networkAcls"] == before[name]
    writes = len(sim.tenant.journal.writes())
    again = submit_run(
        svc,
        "release-containment",
        params,
        actor="cli:ic",
        auto_approve=True,
        incident_id=contained.incident_id,
    )
    assert again.handle.get_result() == "succeeded"
    assert len(sim.tenant.journal.writes()) == writes  # restoring twice changes nothing


def test_release_restores_only_what_the_incident_contained(svc: runtime.Services, sim: SimServer) -> None:
    released = submit_run(
        svc, "release-containment", {"storage_accounts": _targets(sim)}, actor="cli:ic", auto_approve=True
    )
    assert released.handle.get_result() == "succeeded"
    assert [s["step"] for s in run_view(svc, released.run_id)["steps"]] == ["escalate"]
    assert sim.tenant.journal.writes() == []  # nothing was contained by this incident: nothing to undo
    with svc.db.transaction() as session:
        skipped = [e for e in AuditChain().events(session) if e.type == "run.step_without_targets"]
    # every restore step (all but escalate) found nothing recorded to restore
    playbook = yaml.safe_load(
        (Path(__file__).parents[2] / "playbooks" / "release-containment.yaml").read_text()
    )
    assert len(skipped) == len(playbook["steps"]) - 1


def test_public_blob_exposure_closes_anonymous_access(svc: runtime.Services, sim: SimServer) -> None:
    params = {"storage_accounts": _targets(sim)}
    dry = submit_run(svc, "public-blob-exposure", params, actor="cli:tester", dry_run=True)
    assert dry.handle.get_result() == "succeeded" and sim.tenant.journal.writes() == []
    run = submit_run(svc, "public-blob-exposure", params, actor="cli:tester", auto_approve=True)
    assert run.handle.get_result() == "succeeded"
    for name in TARGETS:
        state = sim.tenant.storage_account(name).summary()
        assert state["allowBlobPublicAccess"] is False and state["networkAcls"]["defaultAction"] == "Deny"
        assert all(c["publicAccess"] in (None, "None") for c in state["containers"]), state["containers"]
    blocked = [s for s in run_view(svc, run.run_id)["steps"] if s["step"] == "block-public-containers"]
    assert (
        sum(len(s["result"]["changes"]) for s in blocked) == 3
    )  # patient-exports, claims-2025, dicom-studies


def test_an_empty_optional_list_skips_its_step(svc: runtime.Services, sim: SimServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "optional.yaml").write_text(
        "name: optional\nversion: 1\ninputs:\n"
        "  storage_accounts: {type: 'list[resource_id]'}\n"
        "  also_rotate: {type: 'list[resource_id]', required: false, default: []}\n"
        "steps:\n"
        "  - id: rotate-extra\n    action: storage.rotate_account_keys\n"
        "    for_each: '{{ inputs.also_rotate }}'\n"
        "  - id: isolate\n    action: storage.isolate_account\n"
        "    for_each: '{{ inputs.storage_accounts }}'\n"
    )
    account = sim.tenant.storage_account("phiimaging").id
    run = submit_run(
        svc, str(tmp_path / "optional.yaml"), {"storage_accounts": account}, actor="t", auto_approve=True
    )
    assert run.handle.get_result() == "succeeded"
    assert [s["step"] for s in run_view(svc, run.run_id)["steps"]] == ["isolate"]
    with svc.db.transaction() as session:
        skipped = [e for e in AuditChain().events(session) if e.type == "run.step_without_targets"]
    assert len(skipped) == 1 and json.loads(skipped[0].payload)["step"] == "rotate-extra"


def test_sealed_containment_releases_in_order(svc: runtime.Services, sim: SimServer) -> None:
    """seal=true closes irflow's own path last; release unseals first, re-creates the stored access policy
    over irflow's path, then puts the firewall and public containers back."""
    before = {name: sim.tenant.storage_account(name).properties["networkAcls"] for name in TARGETS}
    params = {"storage_accounts": _targets(sim), "seal": "true"}
    contained = submit_run(svc, PLAYBOOK, params, actor="cli:tester", auto_approve=True)
    assert contained.handle.get_result() == "succeeded"
    steps = [s["step"] for s in run_view(svc, contained.run_id)["steps"]]
    assert steps.index("seal") > steps.index("revoke-user-delegation-sas") > steps.index("isolate")
    assert all(sim.tenant.storage_account(n).summary()["publicNetworkAccess"] == "Disabled" for n in TARGETS)

    released = submit_run(
        svc,
        "release-containment",
        {"storage_accounts": _targets(sim)},
        actor="cli:ic",
        auto_approve=True,
        incident_id=contained.incident_id,
    )
    assert released.handle.get_result() == "succeeded"
    order = [s["step"] for s in run_view(svc, released.run_id)["steps"]]
    assert (
        order.index("unseal") < order.index("restore-stored-access-policies") < order.index("restore-network")
    )
    for name in TARGETS:
        account = sim.tenant.storage_account(name)
        assert account.summary()["publicNetworkAccess"] == "Enabled"
        assert account.properties["networkAcls"] == before[name]
    exports = sim.tenant.storage_account("phipatientexports").summary()["containers"]
    assert any(c["storedAccessPolicies"] for c in exports)  # the partner policy is back


def test_without_irflows_origin_the_playbook_fails_with_a_network_refusal(
    svc: runtime.Services, sim: SimServer
) -> None:
    """irflow calls from 192.0.2.10 but was not told so (no IRFLOW_EGRESS_IPS): isolation still stops the
    exfiltration, then the data-plane step is refused by the account's firewall, reported as a network
    refusal naming the account and what to configure, never as a missing RBAC permission."""
    from irflow.azure.principal import NetworkOrigin

    svc.clients.origin = NetworkOrigin()
    target = sim.tenant.storage_account("phipatientexports").id
    run = submit_run(svc, PLAYBOOK, {"storage_accounts": target}, actor="cli:tester", auto_approve=True)
    assert run.handle.get_result() == "failed"
    view = run_view(svc, run.run_id)
    states = {s["step"]: s["state"] for s in view["steps"]}
    assert states["isolate"] == "succeeded" and states["revoke-service-sas"] == "failed"
    failed = next(s for s in view["steps"] if s["state"] == "failed")
    assert "network refusal" in failed["error"] and "AuthorizationFailure" in failed["error"]
    assert "phipatientexports" in failed["error"] and "IRFLOW_EGRESS_IPS" in failed["error"]
    assert "permission denied" not in failed["error"]
    assert (
        sim.tenant.storage_account("phipatientexports").properties["networkAcls"]["defaultAction"] == "Deny"
    )


def test_evidence_after_isolation_travels_over_irflows_path(svc: runtime.Services, sim: SimServer) -> None:
    """Isolation comes first, so Azure's server-side copy is refused by the source's firewall: the blob
    copies go over irflow's allow-listed path, staged in blocks, and land under legal hold."""
    exports = sim.tenant.storage_account("phipatientexports")
    params = {
        "storage_accounts": exports.id,
        "evidence_account": sim.tenant.storage_account("webassetscdn").id,
    }
    run = submit_run(svc, PLAYBOOK, params, actor="cli:tester", auto_approve=True)
    assert run.handle.get_result() == "succeeded", run_view(svc, run.run_id)["error"]
    steps = [s["step"] for s in run_view(svc, run.run_id)["steps"]]
    assert steps.index("isolate") < steps.index("snapshot-containers") < steps.index("revoke-service-sas")
    evidence = sim.tenant.storage_account("webassetscdn").container("irflow-evidence")
    assert len(evidence.blobs) == 3 and evidence.has_legal_hold
    routes = [w.route for w in sim.tenant.journal.writes()]
    assert routes.count("storage.blob.put_block_list") == 3 and "storage.blob.put_blob" not in routes
