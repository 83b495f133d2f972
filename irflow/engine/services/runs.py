"""Runs: read one, and the decisions a human takes on it (approve, reject, cancel, retry)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from irflow.engine.runs import cancel_run, decide_approvals, retry_run, run_view
from irflow.engine.runtime import Services
from irflow.engine.services.errors import Conflict, NotFound
from irflow.engine.services.incidents import require_engine
from irflow.engine.services.principals import Principal
from irflow.engine.services.views import RunStatus, RunView
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


class RunCancel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    comment: str = Field(default="", max_length=500, description="Why (recorded in the audit trail).")


class Cancelled(BaseModel):
    run_id: str
    previous_status: RunStatus = Field(description="The run's status before the cancellation.")
    status: RunStatus
    steps_cancelled: int = Field(description="Steps not yet ended that became cancelled.")


class RetryStarted(BaseModel):
    run_id: str
    workflow_id: str = Field(
        description="The retry's workflow: it puts the run back to pending, then runs it"
    )


def cancel(svc: Services, run_id: str, command: RunCancel, *, by: Principal) -> Cancelled:
    """Stop the run's workflows, then the run and its open steps (audited with the actor)."""
    _existing(svc, run_id)
    try:
        outcome = cancel_run(svc, run_id, actor=by.actor, reason=command.comment)
    except LookupError:
        raise NotFound(f"no run {run_id}") from None
    except ValueError as exc:  # the state machine forbids it: the run already ended
        raise Conflict(str(exc)) from None
    return Cancelled(
        run_id=run_id,
        previous_status=outcome["from"],
        status=outcome["status"],
        steps_cancelled=outcome["steps_cancelled"],
    )


def retry(svc: Services, run_id: str, *, by: Principal) -> RetryStarted:
    """Start a failed run's retry (failed steps run again, succeeded ones are reused); not waited for."""
    _existing(svc, run_id)
    require_engine(svc)
    try:
        handle = retry_run(svc, run_id, actor=by.actor)
    except LookupError:
        raise NotFound(f"no run {run_id}") from None
    except ValueError as exc:  # only a failed run can be retried
        raise Conflict(str(exc)) from None
    return RetryStarted(run_id=run_id, workflow_id=handle.get_workflow_id())
