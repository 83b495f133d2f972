"""Submitting runs and reading them back: what the CLI and the API call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from irflow.engine.machines import RUN_TERMINAL
from irflow.engine.playbook import coerce_inputs, find_playbook, load_playbook
from irflow.engine.runtime import Services
from irflow.logs import get_logger
from irflow.redaction import redact_text
from irflow.store.models import Incident, Run, Step

log = get_logger("irflow.engine")


@dataclass(frozen=True)
class RunRequest:
    """A run validated and ready to record: the pinned playbook copy and its coerced inputs."""

    playbook_name: str
    playbook_version: int
    playbook_hash: str
    playbook_content: str
    params: dict[str, Any]
    dry_run: bool
    auto_approve: bool
    title: str


def prepare_run(
    svc: Services,
    playbook: str,
    raw_params: dict[str, Any],
    *,
    dry_run: bool = False,
    auto_approve: bool = False,
    playbooks_dir: Path | None = None,
) -> RunRequest:
    """Load the playbook and check the inputs; raises ValueError (nothing written) when they do not fit."""
    loaded = load_playbook(find_playbook(playbook, playbooks_dir or svc.settings.playbooks_dir))
    return RunRequest(
        playbook_name=loaded.spec.name,
        playbook_version=loaded.spec.version,
        playbook_hash=loaded.content_hash,
        playbook_content=loaded.content,
        params=coerce_inputs(loaded.spec, raw_params),
        dry_run=dry_run,
        auto_approve=auto_approve,
        title=f"{loaded.spec.name}: {loaded.spec.description}"[:300],
    )


@dataclass(frozen=True)
class Submitted:
    incident_id: str
    run_id: str
    handle: Any


def submit_run(
    svc: Services,
    playbook: str,
    raw_params: dict[str, Any],
    *,
    actor: str,
    dry_run: bool = False,
    auto_approve: bool = False,
    incident_id: str | None = None,
    title: str | None = None,
    severity: str = "high",
    source: str = "cli",
    playbooks_dir: Path | None = None,
    dedupe_key: str | None = None,
) -> Submitted:
    """Validate everything first (nothing is written for bad input), then record the run and queue it.

    Any process may submit: the run waits on the runs queue for a worker (this process's, when it runs
    the engine). *dedupe_key* (a Sentinel incident id) keeps a second active run of the same key off the
    queue: such a duplicate run is cancelled, with the run it duplicates as the reason.
    """
    request = prepare_run(
        svc, playbook, raw_params, dry_run=dry_run, auto_approve=auto_approve, playbooks_dir=playbooks_dir
    )
    created = svc.state.open_incident_and_run(
        title=title or request.title,
        severity=severity,
        source=source,
        actor=actor,
        playbook_name=request.playbook_name,
        playbook_version=request.playbook_version,
        playbook_hash=request.playbook_hash,
        playbook_content=request.playbook_content,
        params=request.params,
        dry_run=request.dry_run,
        auto_approve=request.auto_approve,
        incident_id=incident_id,
    )
    run_id, handle = start_recorded_run(svc, created.run_id, actor=actor, dedupe_key=dedupe_key)
    return Submitted(incident_id=created.incident_id, run_id=run_id, handle=handle)


def start_recorded_run(
    svc: Services, run_id: str, *, actor: str, dedupe_key: str | None = None
) -> tuple[str, Any]:
    """Queue the workflow of a run recorded as pending (the workflow id is the run id: a second start is a
    no-op); the id of the run that runs, and its handle. A duplicate of an active run with the same
    *dedupe_key* is cancelled, naming the run it duplicates."""
    from irflow.engine.runtime import run_handle, submit

    workflow_id = submit(svc.settings, run_id, dedupe_key=dedupe_key)
    if workflow_id != run_id:
        reason = f"duplicate of run {workflow_id} (same key {dedupe_key!r})"
        svc.state.transition_run(run_id, "cancel", actor=actor, payload={"reason": reason})
        log.warning("duplicate run not started", run_id=run_id, duplicate_of=workflow_id)
    return workflow_id, run_handle(svc.settings, workflow_id)


def run_view(svc: Services, run_id: str) -> dict[str, Any]:
    """The run with its steps, as the CLI prints it and the API returns it."""
    with svc.db.transaction() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise LookupError(f"no run {run_id}")
        steps = session.execute(
            select(Step).where(Step.run_id == run_id).order_by(Step.position, Step.item_index)
        ).scalars()
        return {
            "id": run.id,
            "incident_id": run.incident_id,
            "playbook": run.playbook_name,
            "version": run.playbook_version,
            "playbook_sha256": run.playbook_hash,
            "status": run.status,
            "dry_run": run.dry_run,
            "error": run.error,
            "created_at": run.created_at.isoformat(),
            "started_at": run.started_at.isoformat() if run.started_at else None,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "steps": [
                {
                    "id": step.id,
                    "step": step.step_key,
                    "item": step.item_index,
                    "action": step.action,
                    "target": step.target,
                    "state": step.state,
                    "attempts": step.attempts,
                    "plan": step.plan,
                    "result": step.result,
                    "error": step.error,
                }
                for step in steps
            ],
        }


def incident_list(svc: Services) -> list[dict[str, Any]]:
    with svc.db.transaction() as session:
        incidents = session.execute(select(Incident).order_by(Incident.created_at.desc())).scalars()
        return [
            {
                "id": i.id,
                "title": i.title,
                "severity": i.severity,
                "status": i.status,
                "source": i.source,
                "detected_at": i.detected_at.isoformat(),
                "runs": [r.id for r in i.runs],
            }
            for i in incidents
        ]


def decide_approvals(
    svc: Services, run_id: str, *, approved: bool, actor: str, step_key: str | None = None, comment: str = ""
) -> list[dict[str, Any]]:
    """Approve or reject the run's waiting steps (one playbook step, or every gate now waiting)."""
    from irflow.engine.interpreter import decide

    waiting = svc.state.steps_awaiting_approval(run_id, step_key)
    if not waiting:
        where = f"step {step_key!r} of run" if step_key else "run"
        raise LookupError(f"{where} {run_id} has no step waiting for approval")
    from irflow.engine import runtime

    through_client = None if runtime.launched() else svc.settings
    for step in waiting:
        decide(step["workflow_id"], approved=approved, actor=actor, comment=comment, settings=through_client)
    return waiting


UNFINISHED = ("pending", "running", "awaiting_approval")
# DBOS workflow states after which the workflow will not act on its run again.
WORKFLOW_ENDED = {"SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"}


@dataclass(frozen=True)
class WorkflowState:
    status: str
    error: str | None
    executor_id: str | None


def workflow_states(settings: Any, run_ids: list[str]) -> dict[str, WorkflowState]:
    """The DBOS state of each run's workflow (the workflow id is the run id), read without an executor."""
    if not run_ids:
        return {}
    from irflow.engine.interpreter import RETRY_SUFFIX, current_workflow_id
    from irflow.engine.runtime import dbos_client, engine_ready

    if not engine_ready(settings):  # no worker ever ran here: no workflow exists yet
        return {}
    client = dbos_client(settings)
    retries = client.list_workflows(
        workflow_id_prefix=[run_id + RETRY_SUFFIX for run_id in run_ids],
        load_input=False,
        load_output=False,
    )
    ids = [status.workflow_id for status in retries]
    current = {run_id: current_workflow_id(run_id, ids) for run_id in run_ids}
    found = {
        s.workflow_id: s for s in client.list_workflows(workflow_ids=list(current.values()), load_input=False)
    }
    return {run_id: _state_of(found[wid]) for run_id, wid in current.items() if wid in found}


def _current_status(run_id: str) -> Any:
    """DBOS's status of the workflow now driving the run (in a process that runs the engine)."""
    from dbos import DBOS

    from irflow.engine.interpreter import RETRY_SUFFIX, current_workflow_id

    retries = DBOS.list_workflows(
        workflow_id_prefix=run_id + RETRY_SUFFIX, load_input=False, load_output=False
    )
    return DBOS.get_workflow_status(current_workflow_id(run_id, [s.workflow_id for s in retries]))


def _state_of(status: Any) -> WorkflowState:
    error = None if status.error is None else redact_text(f"{type(status.error).__name__}: {status.error}")
    return WorkflowState(status=str(status.status), error=error, executor_id=status.executor_id)


def settle_run(svc: Services, run_id: str, workflow: WorkflowState | None) -> str:
    """The run's status, after ending it when its workflow ended without doing so.

    The workflow ends its run itself, even on an internal error; this covers what it cannot: a workflow that
    errored before it could write (its database unreachable at that moment), one DBOS gave up recovering,
    one cancelled outside irflow. Such a run would otherwise show ``running`` forever.
    """
    status = svc.state.run_snapshot(run_id)["status"]
    if status in RUN_TERMINAL or workflow is None or workflow.status not in WORKFLOW_ENDED:
        return status
    if workflow.status == "CANCELLED":
        return svc.state.transition_run(run_id, "cancel", payload={"reason": "its workflow was cancelled"})
    reason = f"the run's workflow ended ({workflow.status}) without finishing the run"
    if workflow.error:
        reason += f": {workflow.error}"
    if status == "pending":
        svc.state.transition_run(run_id, "start")
    return svc.state.transition_run(run_id, "fail", error=reason[:1000])


def settle_if_workflow_ended(svc: Services, run_id: str) -> str:
    """:func:`settle_run` for a process that runs the engine (it reads DBOS directly)."""
    status = _current_status(run_id)
    return settle_run(svc, run_id, None if status is None else _state_of(status))


def unfinished_runs(
    svc: Services, *, include_finished: bool = False, limit: int = 200
) -> list[dict[str, Any]]:
    """Runs not yet ended (or every run, newest first), with what their workflow is doing."""
    with svc.db.transaction() as session:
        query = select(Run).order_by(Run.created_at.desc()).limit(limit)
        if not include_finished:
            query = query.where(Run.status.in_(UNFINISHED))
        rows = [
            {
                "id": run.id,
                "incident_id": run.incident_id,
                "playbook": run.playbook_name,
                "status": run.status,
                "dry_run": run.dry_run,
                "actor": run.actor,
                "created_at": run.created_at.isoformat(),
                "error": run.error,
            }
            for run in session.execute(query).scalars()
        ]
    states = workflow_states(svc.settings, [row["id"] for row in rows])
    for row in rows:
        state = states.get(row["id"])
        row["workflow"] = (
            None if state is None else {"status": state.status, "executor_id": state.executor_id}
        )
    return rows


def cancel_run(svc: Services, run_id: str, *, actor: str, reason: str = "") -> dict[str, Any]:
    """Stop a run: its workflows first (no new step starts), then the run and its open steps, audited.

    A step whose Azure call was already in flight finishes that call; its outcome is recorded beside the
    cancellation (``step.outcome_after_cancel``) and the step stays cancelled.
    """
    from irflow.engine.runtime import dbos_client

    status = svc.state.run_snapshot(run_id)["status"]
    if status in RUN_TERMINAL:
        raise ValueError(f"run {run_id} already ended ({status}): nothing to cancel")
    from irflow.engine.interpreter import APPROVAL_TOPIC

    gates = svc.state.steps_awaiting_approval(run_id)
    client = dbos_client(svc.settings)
    mine = client.list_workflows(workflow_id_prefix=run_id, load_input=False, load_output=False)
    drivers = [s.workflow_id for s in mine if s.workflow_id == run_id or s.parent_workflow_id is None]
    if drivers:  # the run's first workflow and its retries, each with its targets
        client.cancel_workflows(drivers, cancel_children=True)
    for gate in gates:  # wake each gate, so its worker thread sees the cancellation now, not in days
        if gate["workflow_id"]:
            client.send(gate["workflow_id"], {"cancelled": True, "actor": actor}, APPROVAL_TOPIC)
    return svc.state.cancel_run(run_id, actor=actor, reason=reason)


def wait_for_unfinished_runs(svc: Services, *, exclude: str | None = None) -> list[tuple[str, str]]:
    """Wait for the runs this process executes (resumed at launch), rather than interrupt them.

    Returns each run with the status it ended in. A run whose workflow errored is settled as failed with
    the reason; it never makes this wait raise, and never blocks the others. Runs waiting for a human
    (``awaiting_approval``) are not waited for: their decision resumes them whenever it comes.
    """
    from dbos import DBOS

    with svc.db.transaction() as session:
        open_runs = list(
            session.execute(select(Run.id).where(Run.status.in_(("pending", "running")))).scalars()
        )
    finished = []
    for run_id in open_runs:
        if run_id == exclude:
            continue
        status = _current_status(run_id)
        if status is not None and status.executor_id not in (None, svc.settings.executor_id):
            continue  # another replica's run: it is that replica's to finish
        if status is not None and status.status not in WORKFLOW_ENDED:
            try:
                DBOS.retrieve_workflow(status.workflow_id).get_result(
                    polling_interval_sec=svc.settings.queue_polling_interval
                )
            except Exception as exc:  # an errored workflow: settled below, the others still waited for
                log.warning("resumed run ended in an error", run_id=run_id, error_type=type(exc).__name__)
            status = _current_status(run_id)
        state = None if status is None else _state_of(status)
        finished.append((run_id, settle_run(svc, run_id, state)))
    return finished


def wait_for_own_workflows(svc: Services, *, limit_s: float = 600.0) -> list[str]:
    """Before a process that executes workflows exits: wait until none it executes is mid-way.

    On PostgreSQL, processes share the fan-out queue: this process may be executing another run's target
    workflows. Leaving mid-way would park them under this executor id until it launches again. Workflows
    that wait for a human (a gate, or a run held at one) are durable and are not waited for. Bounded by
    ``limit_s``; returns the workflow ids still in flight when it gave up (empty when all finished).
    """
    import time

    from dbos import DBOS

    deadline = time.monotonic() + limit_s
    while True:
        busy = [
            status.workflow_id
            for status in DBOS.list_workflows(
                status=["PENDING"],
                executor_id=svc.settings.executor_id,
                load_input=False,
                load_output=False,
            )
        ]
        busy = sorted(set(busy) - _waiting_for_humans(svc, busy))
        if not busy or time.monotonic() > deadline:
            return busy
        time.sleep(svc.settings.queue_polling_interval)


def _waiting_for_humans(svc: Services, workflow_ids: list[str]) -> set[str]:
    from irflow.engine.interpreter import RETRY_SUFFIX

    if not workflow_ids:
        return set()
    with svc.db.transaction() as session:
        gates = session.execute(
            select(Step.workflow_id).where(
                Step.workflow_id.in_(workflow_ids), Step.state == "awaiting_approval"
            )
        ).scalars()
        run_of = {wid: wid.split(RETRY_SUFFIX)[0] for wid in workflow_ids}  # a retry drives its run too
        held = set(
            session.execute(
                select(Run.id).where(Run.id.in_(set(run_of.values())), Run.status == "awaiting_approval")
            ).scalars()
        )
        return set(gates) | {wid for wid, run_id in run_of.items() if run_id in held}


def retry_run(svc: Services, run_id: str, *, actor: str) -> Any:
    """Run a failed run's failed targets again (what succeeded is reused); the new workflow's handle."""
    from irflow.engine.interpreter import RETRY_SUFFIX, next_retry_id
    from irflow.engine.runtime import dbos_client, run_handle, submit_retry

    status = svc.state.run_snapshot(run_id)["status"]
    if status != "failed":
        raise ValueError(f"run {run_id} is {status}: only a failed run can be retried")
    retries = dbos_client(svc.settings).list_workflows(
        workflow_id_prefix=run_id + RETRY_SUFFIX, load_input=False, load_output=False
    )
    workflow_id = next_retry_id(run_id, [s.workflow_id for s in retries])
    return run_handle(svc.settings, submit_retry(svc.settings, run_id, actor, workflow_id))
