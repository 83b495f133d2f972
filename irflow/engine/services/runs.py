"""Runs: read one, and the decisions a human takes on it (approve, reject, cancel, retry)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from irflow.engine.runs import decide_approvals, run_view
from irflow.engine.runtime import Services
from irflow.engine.services.errors import Conflict, NotFound
from irflow.engine.services.incidents import require_engine
from irflow.engine.services.principals import Principal
from irflow.engine.services.views import RunView
from irflow.store.models import Run


class RunDecision(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    step_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=120,
        description="The playbook step id to decide; without it, every gate now waiting.",
    )
    comment: str = Field(default="", max_length=500, description="Recorded in the audit trail.")


class Decided(BaseModel):
    run_id: str
    decision: str
    steps: list[str] = Field(description="Ids of the step executions the decision was delivered to.")


def show_run(svc: Services, run_id: str) -> RunView:
    try:
        return RunView.model_validate(run_view(svc, run_id))
    except LookupError:
        raise NotFound(f"no run {run_id}") from None


def _existing(svc: Services, run_id: str) -> Run:
    with svc.db.transaction() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise NotFound(f"no run {run_id}")
        return run


def decide(svc: Services, run_id: str, command: RunDecision, *, approved: bool, by: Principal) -> Decided:
    """Deliver the decision durably to the waiting gates; the workflow audits it with the decider."""
    _existing(svc, run_id)
    require_engine(svc)
    try:
        waiting = decide_approvals(
            svc, run_id, approved=approved, actor=by.actor, step_key=command.step_id, comment=command.comment
        )
    except LookupError as exc:
        raise Conflict(str(exc)) from None
    return Decided(
        run_id=run_id, decision="approved" if approved else "rejected", steps=[s["id"] for s in waiting]
    )


def cancel(svc: Services, run_id: str, *, by: Principal) -> Decided:
    run = _existing(svc, run_id)
    if run.status in ("succeeded", "failed", "cancelled"):
        raise Conflict(f"run {run_id} already ended ({run.status}): nothing to cancel")
    raise Conflict(
        f"run {run_id} is {run.status}: cancelling a run in flight is not supported by this engine yet"
    )


def retry(svc: Services, run_id: str, *, by: Principal) -> Decided:
    run = _existing(svc, run_id)
    if run.status != "failed":
        raise Conflict(f"run {run_id} is {run.status}: only a failed run can be retried")
    raise Conflict(f"run {run_id} failed: re-running its failed steps is not supported by this engine yet")
