"""Submitting runs and reading them back: what the CLI and the API call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from irflow.engine.playbook import coerce_inputs, find_playbook, load_playbook
from irflow.engine.runtime import Services
from irflow.store.models import Incident, Run, Step


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
) -> Submitted:
    """Validate everything first (nothing is written for bad input), then record and start the run."""
    from irflow.engine.interpreter import start_run_workflow

    loaded = load_playbook(find_playbook(playbook, playbooks_dir or svc.settings.playbooks_dir))
    params = coerce_inputs(loaded.spec, raw_params)
    created = svc.state.open_incident_and_run(
        title=title or f"{loaded.spec.name}: {loaded.spec.description}"[:300],
        severity=severity,
        source=source,
        actor=actor,
        playbook_name=loaded.spec.name,
        playbook_version=loaded.spec.version,
        playbook_hash=loaded.content_hash,
        playbook_content=loaded.content,
        params=params,
        dry_run=dry_run,
        auto_approve=auto_approve,
        incident_id=incident_id,
    )
    handle = start_run_workflow(created.run_id)
    return Submitted(incident_id=created.incident_id, run_id=created.run_id, handle=handle)


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
    for step in waiting:
        decide(step["workflow_id"], approved=approved, actor=actor, comment=comment)
    return waiting


def wait_for_unfinished_runs(svc: Services, *, exclude: str | None = None) -> list[str]:
    """Wait for the runs this process resumed at launch (pending or running), rather than interrupt them."""
    from dbos import DBOS

    with svc.db.transaction() as session:
        open_runs = list(
            session.execute(select(Run.id).where(Run.status.in_(("pending", "running")))).scalars()
        )
    finished = []
    for run_id in open_runs:
        if run_id == exclude:
            continue
        DBOS.retrieve_workflow(run_id).get_result(polling_interval_sec=svc.settings.queue_polling_interval)
        finished.append(run_id)
    return finished
