"""Playbook semantics: ``when:`` conditions and ``on_failure: escalate``."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from irflow.audit import AuditChain
from irflow.engine import runtime
from irflow.engine.runs import decide_approvals, retry_run, run_view, submit_run
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
    assert sim.tenant.storage_account("phiimaging").summary()["networkAcls"]["defaultAction"] == "Allow"
    skipped = [p for t, p in _events(svc, run.run_id) if t == "run.step_skipped"]
    assert skipped == [{"run_id": run.run_id, "step": "isolate", "when": "{{ inputs.mode == 'contain' }}"}]

    contain = submit_run(
        svc, str(tmp_path / "conditional.yaml"), {**params, "mode": "contain"}, actor="t", auto_approve=True
    )
    assert contain.handle.get_result() == "succeeded"
    assert [s["step"] for s in run_view(svc, contain.run_id)["steps"]] == ["isolate"]
    assert sim.tenant.storage_account("phiimaging").summary()["networkAcls"]["defaultAction"] == "Deny"


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


GATED = """name: gated
version: 1
inputs:
  storage_accounts: {type: 'list[resource_id]'}
steps:
  - id: isolate
    action: storage.isolate_account
    for_each: '{{ inputs.storage_accounts }}'
    requires_approval: true
    on_reject: ON_REJECT
  - id: protect
    action: storage.enable_data_protection
    for_each: '{{ inputs.storage_accounts }}'
  - id: rotate
    action: storage.rotate_account_keys
    for_each: '{{ inputs.storage_accounts }}'
"""


def _reject_when_waiting(svc: runtime.Services, run_id: str) -> None:
    deadline = time.monotonic() + 60
    while run_view(svc, run_id)["status"] != "awaiting_approval":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    decide_approvals(svc, run_id, approved=False, actor="cli:approver", comment="not now")


def _gated(tmp_path: Path, on_reject: str) -> str:
    (tmp_path / "gated.yaml").write_text(GATED.replace("ON_REJECT", on_reject))
    return str(tmp_path / "gated.yaml")


def test_on_reject_goto_continues_at_the_named_step(
    svc: runtime.Services, sim: SimServer, tmp_path: Path
) -> None:
    params = {"storage_accounts": sim.tenant.storage_account("phiimaging").id}
    run = submit_run(svc, _gated(tmp_path, "goto rotate"), params, actor="cli:responder")
    _reject_when_waiting(svc, run.run_id)
    assert run.handle.get_result() == "succeeded"
    view = run_view(svc, run.run_id)
    assert [(s["step"], s["state"]) for s in view["steps"]] == [
        ("isolate", "skipped"),
        ("rotate", "succeeded"),
    ]
    events = _events(svc, run.run_id)
    assert (
        "run.step_skipped",
        {"run_id": run.run_id, "step": "protect", "reason": "isolate rejected: goto rotate"},
    ) in events
    skipped = [p for t, p in events if t == "step.skipped"]
    assert skipped[0]["by"] == "cli:approver" and skipped[0]["reason"] == "rejected"
    assert {w.route for w in sim.tenant.journal.writes()} == {"storage.accounts.regenerate_key"}


def test_on_reject_stop_ends_the_run_cancelled_by_the_approver(
    svc: runtime.Services, sim: SimServer, tmp_path: Path
) -> None:
    params = {"storage_accounts": sim.tenant.storage_account("phiimaging").id}
    run = submit_run(svc, _gated(tmp_path, "stop"), params, actor="cli:responder")
    _reject_when_waiting(svc, run.run_id)
    assert run.handle.get_result() == "cancelled"
    view = run_view(svc, run.run_id)
    assert view["status"] == "cancelled" and [s["step"] for s in view["steps"]] == ["isolate"]
    assert view["error"] == "step isolate: rejected by cli:approver (on_reject: stop)"
    with svc.db.transaction() as session:
        [cancelled] = [e for e in AuditChain().events(session) if e.type == "run.cancelled"]
    assert cancelled.actor == "cli:approver"
    assert sim.tenant.journal.writes() == []


def test_an_undecided_gate_times_out_as_a_rejection(
    svc: runtime.Services, sim: SimServer, tmp_path: Path
) -> None:
    path = _gated(tmp_path, "skip")
    Path(path).write_text(
        Path(path).read_text().replace("    on_reject: skip\n", "    approval_timeout: 1\n")
    )
    params = {"storage_accounts": sim.tenant.storage_account("phiimaging").id}
    run = submit_run(svc, path, params, actor="cli:responder")
    assert run.handle.get_result() == "succeeded"
    view = run_view(svc, run.run_id)
    assert [(s["step"], s["state"]) for s in view["steps"]] == [
        ("isolate", "skipped"),
        ("protect", "succeeded"),
        ("rotate", "succeeded"),
    ]
    skipped = [p for t, p in _events(svc, run.run_id) if t == "step.skipped"]
    assert skipped[0]["reason"] == "approval timed out" and skipped[0]["by"] == "irflow-engine"


def test_on_reject_goto_names_a_later_step() -> None:
    from irflow.engine.playbook import PlaybookError, parse_playbook

    with pytest.raises(PlaybookError, match="on_reject goes to 'isolate', not a later step"):
        parse_playbook(GATED.replace("ON_REJECT", "goto isolate"), "gated.yaml")


def test_retry_runs_the_failed_targets_again_and_keeps_what_succeeded(
    svc: runtime.Services, sim: SimServer, tmp_path: Path
) -> None:
    (tmp_path / "two.yaml").write_text(
        "name: two\nversion: 1\ninputs:\n  storage_accounts: {type: 'list[resource_id]'}\nsteps:\n"
        "  - id: isolate\n    action: storage.isolate_account\n"
        "    for_each: '{{ inputs.storage_accounts }}'\n    retry: {max_attempts: 1}\n"
        "  - id: rotate\n    action: storage.rotate_account_keys\n"
        "    for_each: '{{ inputs.storage_accounts }}'\n"
    )
    present = sim.tenant.storage_account("phiimaging").id
    later = present.replace("phiimaging", "phiarrivinglate")
    run = submit_run(
        svc,
        str(tmp_path / "two.yaml"),
        {"storage_accounts": f"{present},{later}"},
        actor="t",
        auto_approve=True,
    )
    assert run.handle.get_result() == "failed"
    assert [s["state"] for s in run_view(svc, run.run_id)["steps"]] == ["succeeded", "failed"]

    parts = present.split("/")
    sim.tenant.add_storage_account(parts[2], parts[4], "phiarrivinglate")
    handle = retry_run(svc, run.run_id, actor="cli:ic")
    assert handle.get_result() == "succeeded"
    view = run_view(svc, run.run_id)
    assert view["status"] == "succeeded" and view["error"] is None
    assert [(s["step"], s["state"]) for s in view["steps"]] == [("isolate", "succeeded")] * 2 + [
        ("rotate", "succeeded")
    ] * 2
    patched = Counter(
        w.path.split("/")[8]
        for w in sim.tenant.journal.writes()
        if w.method == "PATCH" and "/storageAccounts/" in w.path
    )
    assert patched == Counter({"phiimaging": 1, "phiarrivinglate": 1})  # the first account was not redone
    events = _events(svc, run.run_id)
    [retried] = [p for t, p in events if t == "run.retried"]
    assert retried["steps"] == 1 and retried["from"] == "failed"
    with svc.db.transaction() as session:
        assert [e.actor for e in AuditChain().events(session) if e.type == "run.retried"] == ["cli:ic"]
    with pytest.raises(ValueError, match="is succeeded"):  # only a failed run
        retry_run(svc, run.run_id, actor="cli:ic")
