"""Step errors against the in-process simulator: throttling (429 with Retry-After) and lost connections
go through the step's retry policy, are never retried sooner than Azure asked, end as a clear failure of the
step, and leave the database ready for the next run."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from irflow.audit import AuditChain
from irflow.engine import runtime
from irflow.engine.runs import run_view, submit_run
from irflow.sim.server import SimServer

ISOLATE = """\
name: {name}
version: 1
inputs:
  storage_accounts: {{type: 'list[resource_id]'}}
steps:
  - id: isolate
    action: storage.isolate_account
    for_each: '{{{{ inputs.storage_accounts }}}}'
    with: {{account: '{{{{ item }}}}'}}
    retry: {{max_attempts: {attempts}, backoff: fixed, delay_s: 0}}
"""


def _playbook(directory: Path, name: str, attempts: int) -> str:
    path = directory / f"{name}.yaml"
    path.write_text(ISOLATE.format(name=name, attempts=attempts))
    return str(path)


def _events(svc: runtime.Services, run_id: str) -> list[str]:
    with svc.db.transaction() as session:
        return [e.type for e in AuditChain().events(session) if run_id in (e.payload or "")]


def test_429_bursts_are_retried_never_before_retry_after_then_fail_the_step_clearly(
    svc: runtime.Services, sim: SimServer, tmp_path: Path
) -> None:
    # every call finds (or opens) a one-second 429 burst on the subscription: Azure never lets it through
    sim.tenant.faults.burst_rate = 1.0
    sim.tenant.faults.burst_retry_after = 1
    account = sim.tenant.storage_account("phiimaging").id
    # the policy's own backoff is 0 s: only Azure's Retry-After spaces the step's attempts
    run = submit_run(
        svc,
        _playbook(tmp_path, "throttled", 2),
        {"storage_accounts": account},
        actor="cli:t",
        auto_approve=True,
    )
    assert run.handle.get_result() == "failed"

    view = run_view(svc, run.run_id)
    [step] = view["steps"]
    assert step["state"] == "failed" and "429" in step["error"] and "throttled" in step["error"]
    assert view["error"].startswith("step isolate: 1 of 1 targets failed; first error: Azure answered 429")
    assert _events(svc, run.run_id).count("step.plan_retrying") == 1  # two attempts, as the policy says
    entries = sim.tenant.journal.entries()
    assert {e.status for e in entries} == {429} and sim.tenant.journal.mutations() == []
    assert len(entries) >= 4  # the SDK's own retries and the step's second attempt
    # No request reached Azure before the Retry-After of the answer before it had elapsed: neither the SDK's
    # retries nor the step's (one target: its calls are sequential).
    gaps = [later.time - earlier.time for earlier, later in zip(entries, entries[1:], strict=False)]
    assert min(gaps) >= timedelta(seconds=0.95), gaps

    # the failed run blocks nothing: Azure recovers, the next run goes through
    sim.tenant.faults.burst_rate = 0.0
    sim.tenant.throttler.reset()
    again = submit_run(
        svc,
        _playbook(tmp_path, "recovered", 2),
        {"storage_accounts": account},
        actor="cli:t",
        auto_approve=True,
    )
    assert again.handle.get_result() == "succeeded"
    assert [m.route for m in sim.tenant.journal.mutations()] == ["storage.accounts.update"]


def test_connection_resets_fail_the_step_clearly_and_change_nothing(
    svc: runtime.Services, sim: SimServer, tmp_path: Path
) -> None:
    sim.tenant.faults.reset_rate = 1.0
    account = sim.tenant.storage_account("phiimaging").id
    run = submit_run(
        svc, _playbook(tmp_path, "reset", 1), {"storage_accounts": account}, actor="cli:t", auto_approve=True
    )
    assert run.handle.get_result() == "failed"
    [step] = run_view(svc, run.run_id)["steps"]
    assert step["state"] == "failed" and step["error"].startswith(
        ("ServiceRequestError", "ServiceResponseError")
    )
    assert sim.tenant.journal.mutations() == [] and {e.status for e in sim.tenant.journal.entries()} == {0}
    assert _events(svc, run.run_id)[-1] == "run.failed"
