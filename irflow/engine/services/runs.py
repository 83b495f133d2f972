"""Runs: read one, and the decisions a human takes on it (approve, reject, cancel, retry)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import func, select

from irflow.engine.machines import STEP_TERMINAL
from irflow.engine.playbook import PlaybookError, coerce_inputs
from irflow.engine.runs import cancel_run, decide_approvals, retry_run, run_view, unfinished_runs
from irflow.engine.runtime import Services
from irflow.engine.services.errors import Conflict, Forbidden, Invalid, NotFound
from irflow.engine.services.incidents import (
    MAX_PARAMS,
    PLAYBOOK_NAME,
    ParamValue,
    playbook_named,
    require_engine,
)
from irflow.engine.services.principals import Principal
from irflow.engine.services.views import RunStatus, RunView
from irflow.store.db import Database
from irflow.store.models import Incident, Run, Step


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


def settled_at_gates(view: RunView) -> bool:
    """Waiting for approval, with every sibling target either at its gate too or finished: nothing moves
    until a human decides, so a follower may stop waiting. In a pipeline (``pipeline: true``) an item's later
    steps wait, pending, behind the item's gate."""
    gated = {step.item for step in view.steps if step.state == "awaiting_approval"}
    return view.status == "awaiting_approval" and all(
        step.state == "awaiting_approval"
        or step.state in STEP_TERMINAL
        or (step.state == "pending" and step.item in gated)
        for step in view.steps
    )


class RunProgress(BaseModel):
    """A run's fingerprint, read with one aggregate query: it differs whenever the run's status or any of its
    steps changed (every step change moves its state, attempts or ``updated_at``). A follower compares it
    before reading the whole run (plans, results, sealed errors of every step) again."""

    model_config = ConfigDict(frozen=True)

    status: str
    finished: bool
    steps: tuple[tuple[str, int, int, datetime | None], ...] = Field(
        description="Per step state: (state, how many steps, their attempts, their latest change)."
    )


def run_progress(db: Database, run_id: str) -> RunProgress:
    with db.transaction() as session:
        run = session.execute(select(Run.status, Run.finished_at).where(Run.id == run_id)).one_or_none()
        if run is None:
            raise NotFound(f"no run {run_id}")
        groups = session.execute(
            select(
                Step.state, func.count(), func.coalesce(func.sum(Step.attempts), 0), func.max(Step.updated_at)
            )
            .where(Step.run_id == run_id)
            .group_by(Step.state)
            .order_by(Step.state)
        ).all()
    return RunProgress(
        status=run.status,
        finished=run.finished_at is not None,
        steps=tuple((state, int(n), int(attempts), latest) for state, n, attempts, latest in groups),
    )


class WorkflowView(BaseModel):
    status: str = Field(description="The DBOS workflow status (PENDING, ENQUEUED, SUCCESS, ERROR, ...).")
    executor_id: str | None = Field(description="The replica executing it.")


class RunListItem(BaseModel):
    id: str
    incident_id: str
    playbook: str
    status: RunStatus
    dry_run: bool
    actor: str
    created_at: datetime
    error: str | None
    workflow: WorkflowView | None = Field(description="What the run's workflow is doing (none: no workflow).")


class RunList(BaseModel):
    items: list[RunListItem]
    total: int


class RunFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    all: bool = Field(default=False, description="Every run, not only those not yet ended.")
    limit: int = Field(default=200, ge=1, le=1000)


def list_runs(svc: Services, query: RunFilter) -> RunList:
    """Runs not yet ended (or every run), newest first, with their workflow."""
    items = [
        RunListItem.model_validate(row)
        for row in unfinished_runs(svc, include_finished=query.all, limit=query.limit)
    ]
    return RunList(items=items, total=len(items))


class RunStart(BaseModel):
    """Start one playbook run, on a new incident or attached to an existing one."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    playbook: str = Field(pattern=PLAYBOOK_NAME, description="A playbook name from GET /api/v1/playbooks.")
    params: dict[Annotated[str, StringConstraints(max_length=100)], ParamValue] = Field(
        default_factory=dict,
        max_length=MAX_PARAMS,
        description="The playbook's inputs; a list input takes a JSON list or a comma-separated string.",
    )
    dry_run: bool = Field(default=False, description="Plan every step; change nothing.")
    auto_approve: bool = Field(
        default=False, description="Approve the run's gated steps in advance (needs the approver role)."
    )
    incident_id: str | None = Field(default=None, min_length=1, max_length=36)


class RunStarted(BaseModel):
    id: str
    incident_id: str


def start_run(svc: Services, command: RunStart, *, by: Principal, source: str = "api") -> RunStarted:
    """Validate the playbook, its inputs, the incident and the caller's right to pre-approve (nothing is
    written for a refusal), then record the run and submit it to the engine without waiting for it."""
    from irflow.engine.runs import submit_run

    if command.auto_approve and not by.may("approver"):
        raise Forbidden("approving the run's gates in advance needs the approver role")
    try:
        loaded = playbook_named(command.playbook, svc.settings.playbooks_dir)
        coerce_inputs(loaded.spec, command.params)
    except PlaybookError as exc:
        raise Invalid(f"playbook {command.playbook!r} does not load: {exc.problems[0]}") from None
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    if command.incident_id is not None:
        with svc.db.transaction() as session:
            if session.get(Incident, command.incident_id) is None:
                raise NotFound(f"no incident {command.incident_id}")
    require_engine(svc)
    try:
        submitted = submit_run(
            svc,
            str(loaded.source),
            command.params,
            actor=by.actor,
            dry_run=command.dry_run,
            auto_approve=command.auto_approve,
            incident_id=command.incident_id,
            source=source,
        )
    except LookupError as exc:
        raise NotFound(str(exc)) from None
    return RunStarted(id=submitted.run_id, incident_id=submitted.incident_id)
