"""``pipeline: true``: consecutive for_each steps over the same list run per target, not step by step."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from irflow.audit import AuditChain
from irflow.engine import runtime
from irflow.engine.interpreter import decide
from irflow.engine.playbook import PlaybookError, parse_playbook, pipeline_chain
from irflow.engine.runs import decide_approvals, retry_run, run_view, submit_run
from irflow.sim.server import SimServer

PIPELINE = """name: pipelined
version: 1
inputs:
  storage_accounts: {type: 'list[resource_id]'}
steps:
  - id: isolate
    action: storage.isolate_account
    for_each: '{{ inputs.storage_accounts }}'
    requires_approval: true
  - id: protect
    action: storage.enable_data_protection
    pipeline: true
    for_each: '{{ inputs.storage_accounts }}'
  - id: rotate
    action: storage.rotate_account_keys
    pipeline: true
    for_each: '{{ inputs.storage_accounts }}'
  - id: after
    action: storage.seal_account
    for_each: '{{ inputs.storage_accounts }}'
"""


# ------------------------------------------------------------------------------------------- validation
def test_the_chain_of_a_pipelined_step() -> None:
    steps = parse_playbook(PIPELINE).spec.steps
    assert [s.id for s in pipeline_chain(steps, 0)] == ["isolate", "protect", "rotate"]
    assert [s.id for s in pipeline_chain(steps, 2)] == ["isolate", "protect", "rotate"]
    assert [s.id for s in pipeline_chain(steps, 3)] == ["after"]


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        (  # a different list: items would not pair up
            "    pipeline: true\n    for_each: '{{ inputs.storage_accounts }}'\n  - id: rotate",
            "    pipeline: true\n    for_each: '{{ inputs.storage_accounts[:1] }}'\n  - id: rotate",
            "for_each must be the same list as the previous step 'isolate'",
        ),
        (  # reads an output of its own pipeline, not complete until the pipeline ends
            "    action: storage.rotate_account_keys\n    pipeline: true\n",
            "    action: storage.rotate_account_keys\n    pipeline: true\n"
            '    when: "{{ steps.protect.states | length > 0 }}"\n',
            "reads the outputs of protect",
        ),
        (  # stop and goto decide for every target at once: not inside a pipeline
            "    requires_approval: true\n",
            "    requires_approval: true\n    on_reject: stop\n",
            "on_reject must be skip",
        ),
        (  # the first step has nothing to pipeline with
            "    action: storage.isolate_account\n",
            "    action: storage.isolate_account\n    pipeline: true\n",
            "the first step has no previous step",
        ),
    ],
)
def test_pipelines_that_cannot_hold_are_refused_with_the_reason(old: str, new: str, words: str) -> None:
    assert old in PIPELINE
    with pytest.raises(PlaybookError, match=words):
        parse_playbook(PIPELINE.replace(old, new, 1), "pipelined.yaml")


def test_a_pipelined_step_needs_for_each() -> None:
    text = PIPELINE.replace(
        "  - id: after\n    action: storage.seal_account\n    for_each: '{{ inputs.storage_accounts }}'\n",
        "  - id: after\n    action: storage.seal_account\n    pipeline: true\n"
        "    with: {account: '{{ inputs.storage_accounts[0] }}'}\n",
    )
    with pytest.raises(PlaybookError, match="both need for_each"):
        parse_playbook(text, "pipelined.yaml")


# ------------------------------------------------------------------------------------------- behaviour
def _wait_for_gates(svc: runtime.Services, run_id: str, count: int) -> None:
    deadline = time.monotonic() + 60
    while len([s for s in run_view(svc, run_id)["steps"] if s["state"] == "awaiting_approval"]) < count:
        assert time.monotonic() < deadline, "the gates were never reached"
        time.sleep(0.05)


def test_one_account_runs_its_whole_chain_while_another_is_still_at_isolation(
    svc: runtime.Services, sim: SimServer, tmp_path: Path
) -> None:
    """Account A is approved and rotates its keys while account B still waits to be isolated: a pipeline
    is bounded by each account's own chain, not by the slowest account at each step."""
    (tmp_path / "pipelined.yaml").write_text(PIPELINE)
    a, b = (sim.tenant.storage_account(n) for n in ("phiimaging", "phiclaimsarchive"))
    submitted = submit_run(
        svc, str(tmp_path / "pipelined.yaml"), {"storage_accounts": f"{a.id},{b.id}"}, actor="cli:responder"
    )
    _wait_for_gates(svc, submitted.run_id, 2)
    gate_a = next(s for s in svc.state.steps_awaiting_approval(submitted.run_id) if s["target"] == a.id)
    decide(gate_a["workflow_id"], approved=True, actor="cli:ic")
    deadline = time.monotonic() + 60
    while True:
        states = {(s["step"], s["target"]): s["state"] for s in run_view(svc, submitted.run_id)["steps"]}
        if states[("rotate", a.id)] == "succeeded":
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.05)
    assert states[("isolate", b.id)] == "awaiting_approval"  # B not even isolated yet
    assert states[("protect", b.id)] == states[("rotate", b.id)] == "pending"
    assert ("after", a.id) not in states  # the step after the pipeline waits for every account
    assert b.summary()["networkAcls"]["defaultAction"] == "Allow"
    assert a.summary()["networkAcls"]["defaultAction"] == "Deny"

    decide_approvals(svc, submitted.run_id, approved=True, actor="cli:ic")
    assert submitted.handle.get_result() == "succeeded", run_view(svc, submitted.run_id)["error"]
    view = run_view(svc, submitted.run_id)
    assert {s["state"] for s in view["steps"]} == {"succeeded"}
    assert [s["step"] for s in view["steps"]] == ["isolate"] * 2 + ["protect"] * 2 + ["rotate"] * 2 + [
        "after"
    ] * 2
    with svc.db.transaction() as session:
        assert AuditChain().verify(session).ok


FAILING = """name: pipelined-failure
version: 1
inputs:
  storage_accounts: {type: 'list[resource_id]'}
steps:
  - id: isolate
    action: storage.isolate_account
    for_each: '{{ inputs.storage_accounts }}'
    retry: {max_attempts: 1}
  - id: rotate
    action: storage.rotate_account_keys
    pipeline: true
    for_each: '{{ inputs.storage_accounts }}'
  - id: after
    action: storage.seal_account
    for_each: '{{ inputs.storage_accounts }}'
"""


def test_a_failed_target_ends_its_own_chain_and_a_retry_finishes_it(
    svc: runtime.Services, sim: SimServer, tmp_path: Path
) -> None:
    """B's isolation fails (its write is refused): B's later steps are not run, A's chain completes, the run
    fails after the pipeline without starting the next step; retried, only B's chain runs again."""
    (tmp_path / "failing.yaml").write_text(FAILING)
    a, b = (sim.tenant.storage_account(n) for n in ("phiimaging", "phiclaimsarchive"))
    sim.tenant.deny("Microsoft.Storage/storageAccounts/write", b.id)
    submitted = submit_run(
        svc,
        str(tmp_path / "failing.yaml"),
        {"storage_accounts": f"{a.id},{b.id}"},
        actor="cli:responder",
        auto_approve=True,
    )
    assert submitted.handle.get_result() == "failed"
    view = run_view(svc, submitted.run_id)
    states = {(s["step"], s["target"]): s["state"] for s in view["steps"]}
    assert states == {
        ("isolate", a.id): "succeeded",
        ("isolate", b.id): "failed",
        ("rotate", a.id): "succeeded",
        ("rotate", b.id): "pending",  # not run: a retry of the run runs it
    }
    assert "step isolate" in view["error"] and "permission denied" in view["error"]
    rotated = [e for e in sim.tenant.journal.writes() if e.route == "storage.accounts.regenerate_key"]
    assert {e.path.split("/")[8] for e in rotated} == {"phiimaging"}

    sim.tenant.rbac.allow("Microsoft.Storage/storageAccounts/write", b.id)
    retried = retry_run(svc, submitted.run_id, actor="cli:ic")
    assert retried.get_result() == "succeeded", run_view(svc, submitted.run_id)["error"]
    rotated = [e for e in sim.tenant.journal.writes() if e.route == "storage.accounts.regenerate_key"]
    assert sorted(e.path.split("/")[8] for e in rotated) == ["phiclaimsarchive"] * 2 + ["phiimaging"] * 2


def test_a_target_whose_params_do_not_render_ends_its_chain_before_it_starts(
    svc: runtime.Services, sim: SimServer, tmp_path: Path
) -> None:
    text = FAILING.replace(
        "    action: storage.isolate_account\n    for_each: '{{ inputs.storage_accounts }}'\n",
        "    action: storage.isolate_account\n    for_each: '{{ inputs.storage_accounts }}'\n"
        "    with: {account: \"{{ item if 'phiimaging' in item else item.nope }}\"}\n",
    )
    (tmp_path / "unrenderable.yaml").write_text(text)
    a, b = (sim.tenant.storage_account(n) for n in ("phiimaging", "phiclaimsarchive"))
    submitted = submit_run(
        svc,
        str(tmp_path / "unrenderable.yaml"),
        {"storage_accounts": f"{a.id},{b.id}"},
        actor="cli:responder",
        auto_approve=True,
    )
    assert submitted.handle.get_result() == "failed"
    states = [(s["step"], s["item"], s["state"]) for s in run_view(svc, submitted.run_id)["steps"]]
    assert states == [
        ("isolate", 0, "succeeded"),
        ("isolate", 1, "failed"),
        ("rotate", 0, "succeeded"),
        ("rotate", 1, "pending"),  # never started: its chain ended at the unrenderable isolation
    ]
    rotated = {e.path.split("/")[8] for e in sim.tenant.journal.writes() if "regenerate" in (e.route or "")}
    assert rotated == {"phiimaging"}
