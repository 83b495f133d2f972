"""Playbook semantics: ``when:`` conditions and ``on_failure: escalate``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from irflow.audit import AuditChain
from irflow.engine import runtime
from irflow.engine.runs import run_view, submit_run
from irflow.sim.server import SimServer
from irflow.store.models import Notification

CONDITIONAL = """name: conditional
version: 1
inputs:
  storage_accounts: {type: 'list[resource_id]'}
  mode: {type: string}
steps:
  - id: isolate
    action: storage.isolate_account
    for_each: '{{ inputs.storage_accounts }}'
    when: "{{ inputs.mode == 'contain' }}"
  - id: protect
    action: storage.enable_data_protection
    for_each: '{{ inputs.storage_accounts }}'
    when: "{{ steps.isolate.skipped | default(false) }}"
"""


def _events(svc: runtime.Services, run_id: str) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    with svc.db.transaction() as session:
        assert AuditChain().verify(session).ok
        return [
            (e.type, json.loads(e.payload))
            for e in AuditChain().events(session)
            if run_id in (e.payload or "")
        ]


def test_when_false_skips_the_step_and_says_so(svc: runtime.Services, sim: SimServer, tmp_path: Path) -> None:
    (tmp_path / "conditional.yaml").write_text(CONDITIONAL)
    account = sim.tenant.storage_account("phiimaging").id
    params = {"storage_accounts": account, "mode": "observe"}
    run = submit_run(svc, str(tmp_path / "conditional.yaml"), params, actor="t", auto_approve=True)
    assert run.handle.get_result() == "succeeded"
    assert [s["step"] for s in run_view(svc, run.run_id)["steps"]] == ["protect"]
    assert sim.tenant.storage_account("phiimaging").summary()["publicNetworkAccess"] == "Enabled"
    skipped = [p for t, p in _events(svc, run.run_id) if t == "run.step_skipped"]
    assert skipped == [{"run_id": run.run_id, "step": "isolate", "when": "{{ inputs.mode == 'contain' }}"}]

    contain = submit_run(
        svc, str(tmp_path / "conditional.yaml"), {**params, "mode": "contain"}, actor="t", auto_approve=True
    )
    assert contain.handle.get_result() == "succeeded"
    assert [s["step"] for s in run_view(svc, contain.run_id)["steps"]] == ["isolate"]
    assert sim.tenant.storage_account("phiimaging").summary()["publicNetworkAccess"] == "Disabled"


def test_a_condition_that_is_not_true_or_false_fails_its_step(
    svc: runtime.Services, sim: SimServer, tmp_path: Path
) -> None:
    (tmp_path / "conditional.yaml").write_text(CONDITIONAL.replace("inputs.mode == 'contain'", "inputs.mode"))
    params = {"storage_accounts": sim.tenant.storage_account("phiimaging").id, "mode": "false"}
    run = submit_run(svc, str(tmp_path / "conditional.yaml"), params, actor="t", auto_approve=True)
    assert run.handle.get_result() == "failed"
    view = run_view(svc, run.run_id)
    assert view["error"] == (
        "step isolate: 1 of 1 targets failed; first error: when: must give true or false, not str 'false'"
    )
    assert sim.tenant.journal.writes() == []


def test_on_failure_escalate_tells_oncall_then_stops(
    svc: runtime.Services, sim: SimServer, tmp_path: Path
) -> None:
    (tmp_path / "escalating.yaml").write_text(
        "name: escalating\nversion: 1\ninputs:\n  storage_accounts: {type: 'list[resource_id]'}\nsteps:\n"
        "  - id: isolate\n    action: storage.isolate_account\n"
        "    for_each: '{{ inputs.storage_accounts }}'\n    on_failure: escalate\n"
        "  - id: rotate\n    action: storage.rotate_account_keys\n"
        "    for_each: '{{ inputs.storage_accounts }}'\n"
    )
    gone = sim.tenant.storage_account("phiimaging").id.replace("phiimaging", "phideleted")
    run = submit_run(
        svc, str(tmp_path / "escalating.yaml"), {"storage_accounts": gone}, actor="t", auto_approve=True
    )
    assert run.handle.get_result() == "failed"
    view = run_view(svc, run.run_id)
    assert [(s["step"], s["state"]) for s in view["steps"]] == [("isolate", "failed")]  # stopped there
    assert view["error"].startswith("step isolate: 1 of 1 targets failed; first error: ")
    assert view["error"].endswith("(on-call escalated (1 recipient(s)))")
    with svc.db.transaction() as session:
        [notification] = session.execute(
            select(Notification).where(Notification.incident_id == run.incident_id)
        ).scalars()
        assert notification.template.startswith("internal-escalation") and notification.channel == "email"
        assert "Step: isolate" in notification.body and f"irflow runs show {run.run_id}" in notification.body
    escalated = [p for t, p in _events(svc, run.run_id) if t == "run.escalated"]
    assert escalated == [{"run_id": run.run_id, "step": "isolate", "notifications": [notification.id]}]


def test_a_target_past_its_timeout_fails_as_timed_out(
    svc: runtime.Services, sim: SimServer, tmp_path: Path
) -> None:
    (tmp_path / "timed.yaml").write_text(
        "name: timed\nversion: 1\ninputs:\n  storage_accounts: {type: 'list[resource_id]'}\nsteps:\n"
        "  - id: isolate\n    action: storage.isolate_account\n"
        "    for_each: '{{ inputs.storage_accounts }}'\n    timeout: 1.5\n"
    )
    sim.tenant.configure_faults({"timeout_rate": 1.0, "timeout_s": 6})  # every Azure call hangs 6 s
    account = sim.tenant.storage_account("phiimaging").id
    run = submit_run(
        svc, str(tmp_path / "timed.yaml"), {"storage_accounts": account}, actor="t", auto_approve=True
    )
    assert run.handle.get_result() == "failed"
    view = run_view(svc, run.run_id)
    assert [(s["state"], s["error"]) for s in view["steps"]] == [("failed", "timed out after 1.5 s")]
    assert view["error"] == "step isolate: 1 of 1 targets failed; first error: timed out after 1.5 s"
    failed = [p for t, p in _events(svc, run.run_id) if t == "step.failed"]
    assert len(failed) == 1 and failed[0]["outcome"] == "timeout"
    sim.tenant.configure_faults({"timeout_rate": 0.0})


def test_timeout_and_a_gate_do_not_mix(tmp_path: Path) -> None:
    from irflow.engine.playbook import PlaybookError, parse_playbook

    text = CONDITIONAL.replace(
        "    when: \"{{ inputs.mode == 'contain' }}\"\n", "    timeout: 30\n    requires_approval: true\n"
    )
    with pytest.raises(PlaybookError, match="timeout cannot be combined with requires_approval"):
        parse_playbook(text, "gated.yaml")
