"""Lanes: a step's targets are claimed by as many lane workflows as its ``concurrency``, not run by one
workflow each (``StateStore.claim_target`` and ``interpreter.lane_workflow``)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from dbos import DBOS

from irflow.audit import AuditChain
from irflow.engine import runtime
from irflow.engine.runs import run_view, submit_run
from irflow.sim.server import SimServer

PLAYBOOK = """name: lanes-run
version: 1
inputs:
  storage_accounts: {type: 'list[resource_id]'}
steps:
  - id: isolate
    action: storage.isolate_account
    for_each: '{{ inputs.storage_accounts }}'
    concurrency: 2
  - id: rotate
    action: storage.rotate_account_keys
    pipeline: true
    for_each: '{{ inputs.storage_accounts }}'
    concurrency: 1
"""

ISOLATE = ("isolate", 2, False)  # step key, concurrency, whether a failed target lets its item go on
ROTATE = ("rotate", 2, False)


def _run_with_steps(svc: runtime.Services, items: int) -> tuple[str, list[str], list[str]]:
    opened = svc.state.open_incident_and_run(
        title="lanes",
        severity="high",
        source="test",
        actor="test",
        playbook_name="lanes-run",
        playbook_version=1,
        playbook_hash=hashlib.sha256(PLAYBOOK.encode()).hexdigest(),
        playbook_content=PLAYBOOK,
        params={},
        dry_run=False,
        auto_approve=True,
    )
    rows = [{"item_index": i, "target": f"/subscriptions/s/acct{i}", "params": {}} for i in range(items)]
    ids = [
        svc.state.ensure_steps(
            opened.run_id,
            position=position,
            step_key=key,
            action="storage.isolate_account",
            requires_approval=False,
            max_attempts=1,
            items=rows,
        )
        for position, key in enumerate(("isolate", "rotate"))
    ]
    return opened.run_id, ids[0], ids[1]


def _end(svc: runtime.Services, step_id: str, trigger: str, **fields: Any) -> None:
    svc.state.transition_step_many(step_id, [("plan", {"plan": {}}, None), ("start", {}, None)])
    svc.state.transition_step(step_id, trigger, **fields)


def test_claims_keep_each_steps_concurrency_and_each_items_order(svc: runtime.Services) -> None:
    run_id, isolate, rotate = _run_with_steps(svc, 3)
    chain = [ISOLATE, ROTATE]
    assert svc.state.claim_target(run_id, chain, "a#0") == (isolate[0], "isolate")
    assert svc.state.claim_target(run_id, chain, "b#0") == (isolate[1], "isolate")
    # isolate is full (2 of 2), and no rotation may start before its account's isolation ended
    assert svc.state.claim_target(run_id, chain, "c#0") is None
    # a lane replayed after a crash claims with the same token: the same target, nothing new
    assert svc.state.claim_target(run_id, chain, "a#0") == (isolate[0], "isolate")

    _end(svc, isolate[0], "succeed", result={"changed": True})
    # the earlier step first (the last isolation before any rotation), then the rotation it allowed
    assert svc.state.claim_target(run_id, chain, "a#1") == (isolate[2], "isolate")
    assert svc.state.claim_target(run_id, chain, "c#0") == (rotate[0], "rotate")

    _end(svc, isolate[1], "fail", error="refused")
    # a failed isolation ends its account's chain under on_failure: stop ...
    assert svc.state.claim_target(run_id, chain, "b#1") is None
    # ... and lets it go on under on_failure: continue
    assert svc.state.claim_target(run_id, [("isolate", 2, True), ROTATE], "b#1") == (rotate[1], "rotate")
    # rotate is full now (2 of 2) although account 2's isolation is still running
    assert svc.state.claim_target(run_id, chain, "d#0") is None


def test_a_retried_target_is_claimable_again(svc: runtime.Services) -> None:
    run_id, isolate, _ = _run_with_steps(svc, 1)
    assert svc.state.claim_target(run_id, [ISOLATE], "a#0") == (isolate[0], "isolate")
    _end(svc, isolate[0], "fail", error="refused")
    assert svc.state.claim_target(run_id, [ISOLATE], "b#0") is None  # ended
    svc.state.transition_run(run_id, "start")
    svc.state.transition_run(run_id, "fail", error="step isolate: 1 of 1 targets failed")
    svc.state.reset_for_retry(run_id, actor="cli:ic")  # the claim of the failed attempt is let go
    assert svc.state.claim_target(run_id, [ISOLATE], "c#0") == (isolate[0], "isolate")


def test_a_run_fans_out_through_lanes_not_a_workflow_per_target(
    svc: runtime.Services, sim: SimServer, tmp_path: Path
) -> None:
    (tmp_path / "lanes.yaml").write_text(PLAYBOOK)
    accounts = sim.tenant.storage_accounts()
    submitted = submit_run(
        svc,
        str(tmp_path / "lanes.yaml"),
        {"storage_accounts": ",".join(a.id for a in accounts)},
        actor="cli:responder",
        auto_approve=True,
    )
    assert submitted.handle.get_result() == "succeeded", run_view(svc, submitted.run_id)["error"]
    view = run_view(svc, submitted.run_id)
    assert len(view["steps"]) == 2 * len(accounts) >= 8
    assert {s["state"] for s in view["steps"]} == {"succeeded"}
    children = DBOS.list_workflows(workflow_id_prefix=f"{submitted.run_id}-", load_input=False)
    # one pipeline of two steps: its lanes are the steps' concurrencies added up (2 + 1), whatever the count
    # of targets (8), and no target had a workflow of its own
    assert sorted(w.name.rsplit(".", 1)[-1] for w in children) == ["lane_workflow"] * 3
    # every account keeps its order: isolated (its firewall written) before its keys are regenerated
    for account in accounts:
        writes = [e.route for e in sim.tenant.journal.writes() if f"/{account.name}" in e.path]
        assert writes.index("storage.accounts.update") < writes.index("storage.accounts.regenerate_key")
    with svc.db.transaction() as session:
        assert AuditChain().verify(session).ok
