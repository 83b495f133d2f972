"""Gated steps: nothing changes until a human decides; the decision is durable and audited."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text

from irflow.audit import AuditChain
from irflow.engine import runtime
from irflow.engine.runs import decide_approvals, run_view, submit_run
from irflow.redaction import fingerprint
from irflow.sim.server import SimServer
from irflow.store.models import Step

REPO = Path(__file__).resolve().parents[2]
TARGETS = ("phipatientexports", "phiimaging")


def gated_playbook(directory: Path) -> Path:
    text = (REPO / "playbooks" / "storage-sas-exfiltration.yaml").read_text()
    text = text.replace("name: storage-sas-exfiltration", "name: gated-containment")
    text = text.replace(
        "    action: storage.isolate_account\n",
        "    action: storage.isolate_account\n    requires_approval: true\n",
    )
    assert "requires_approval: true" in text
    path = directory / "gated-containment.yaml"
    path.write_text(text)
    return path


def _wait_for_gates(svc: runtime.Services, run_id: str, count: int) -> dict:  # type: ignore[type-arg]
    """Until ``count`` steps wait for approval (the run waits from the first of them on)."""
    deadline = time.monotonic() + 60
    while True:
        view = run_view(svc, run_id)
        if sum(s["state"] == "awaiting_approval" for s in view["steps"]) == count:
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.05)


def _params(sim: SimServer) -> dict[str, str]:
    return {"storage_accounts": ",".join(sim.tenant.storage_account(n).id for n in TARGETS)}


def test_gate_holds_until_approved(svc: runtime.Services, sim: SimServer, tmp_path: Path) -> None:
    submitted = submit_run(svc, str(gated_playbook(tmp_path)), _params(sim), actor="cli:responder")
    view = _wait_for_gates(svc, submitted.run_id, 2)
    assert view["status"] == "awaiting_approval"
    assert [s["state"] for s in view["steps"] if s["step"] == "isolate"] == ["awaiting_approval"] * 2
    gated = [s for s in view["steps"] if s["step"] == "isolate"]
    assert all(len(s["plan"]["changes"]) == 4 for s in gated)  # blob access, default action, bypass, ipRules
    assert sim.tenant.journal.writes() == []  # isolation is the first change: nothing written before it

    with pytest.raises(LookupError, match="no step waiting"):
        decide_approvals(svc, submitted.run_id, approved=True, actor="cli:approver", step_key="rotate-keys")
    decide_approvals(svc, submitted.run_id, approved=True, actor="cli:approver", comment="go")
    assert submitted.handle.get_result() == "succeeded", run_view(svc, submitted.run_id)["error"]
    # isolation, blob service, the one stored access policy, 4 keys, user delegation keys and their tag
    assert len(sim.tenant.journal.writes()) == 2 + 2 + 1 + 4 + 2 + 2
    with svc.db.transaction() as session:
        events = [(e.type, json.loads(e.payload)) for e in AuditChain().events(session)]
        assert AuditChain().verify(session).ok
    types = [t for t, _ in events]
    assert types.count("run.awaiting_approval") == 1
    approvals = [p for t, p in events if t == "step.planned" and p.get("from") == "awaiting_approval"]
    # The comment is free text: the trail holds its keyed fingerprint, the step row the comment (sealed).
    assert len(approvals) == 2 and all(
        p["by"] == "cli:approver" and p["comment_fingerprint"] == fingerprint("go") and "comment" not in p
        for p in approvals
    )
    with svc.db.transaction() as session:
        comments = session.scalars(select(Step.decision_comment).where(Step.step_key == "isolate")).all()
        stored = session.execute(text("SELECT decision_comment FROM steps WHERE step_key = 'isolate'")).all()
    assert comments == ["go", "go"] and all(row[0].startswith("sealed:v1:") for row in stored)


def test_rejected_gate_skips_the_change(svc: runtime.Services, sim: SimServer, tmp_path: Path) -> None:
    submitted = submit_run(svc, str(gated_playbook(tmp_path)), _params(sim), actor="cli:responder")
    _wait_for_gates(svc, submitted.run_id, 2)
    decide_approvals(svc, submitted.run_id, approved=False, actor="cli:approver", comment="not this one")
    assert submitted.handle.get_result() == "succeeded"
    view = run_view(svc, submitted.run_id)
    assert [s["state"] for s in view["steps"] if s["step"] == "isolate"] == ["skipped"] * 2
    assert not [w for w in sim.tenant.journal.writes() if "networkAcls" in str(w.body)]  # never isolated


@pytest.mark.slow
def test_cli_leaves_a_gated_run_waiting_and_approves_it_later(sim_process, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    info = sim_process
    env = {
        **os.environ,
        **info["env"],
        "IRFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'irflow.db'}",
        "IRFLOW_QUEUE_POLLING_INTERVAL": "0.05",
        "IRFLOW_ONCALL_RECIPIENTS": "soc-oncall@example.org",
    }
    accounts = ",".join(
        f"/subscriptions/{info['subscription_id']}/resourceGroups/rg-phi-prod/providers/Microsoft.Storage/"
        f"storageAccounts/{name}"
        for name in TARGETS
    )
    playbook = gated_playbook(tmp_path)
    first = subprocess.run(
        [
            sys.executable,
            "-m",
            "irflow",
            "run",
            str(playbook),
            "--param",
            f"storage_accounts={accounts}",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert first.returncode == 3, first.stderr
    view = json.loads(first.stdout)
    assert view["status"] == "awaiting_approval"
    assert f"irflow runs approve {view['id']}" in first.stderr

    second = subprocess.run(
        [sys.executable, "-m", "irflow", "runs", "approve", view["id"], "--comment", "approved by IC"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert "approved 2 waiting step(s)" in second.stdout
