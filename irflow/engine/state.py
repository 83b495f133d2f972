"""Persisted state changes: each new state is written with its audit event in one transaction.

Every change is safe to replay: a DBOS step that committed but crashed before DBOS recorded it runs again,
finds the object already in the destination state, and writes nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from irflow import clock
from irflow.audit import AuditChain
from irflow.engine.machines import INCIDENT, RUN, STEP, STEP_TERMINAL, IllegalTransition, StateMachine
from irflow.engine.sealing import fingerprints_only, seal_derived, seal_inputs
from irflow.redaction import fingerprint, redact_text
from irflow.store.db import Database
from irflow.store.models import Incident, Run, Step

ENGINE_ACTOR = "irflow-engine"


@dataclass(frozen=True)
class NewRun:
    incident_id: str
    run_id: str


class StateStore:
    def __init__(self, db: Database, chain: AuditChain | None = None) -> None:
        self.db = db
        self.chain = chain or AuditChain()

    # -- creation -------------------------------------------------------------------------------------
    def open_incident_and_run(
        self,
        *,
        title: str,
        severity: str,
        source: str,
        actor: str,
        playbook_name: str,
        playbook_version: int,
        playbook_hash: str,
        playbook_content: str,
        params: dict[str, Any],
        dry_run: bool,
        auto_approve: bool,
        incident_id: str | None = None,
    ) -> NewRun:
        now = clock.now()
        with self.db.transaction() as session:
            if incident_id is None:
                incident = self._new_incident(
                    session, title=title, severity=severity, source=source, actor=actor
                )
            else:
                incident = session.get(Incident, incident_id)
                if incident is None:
                    raise LookupError(f"no incident {incident_id}")
            params = _sealed_run_params(playbook_content, params)
            run = Run(
                incident_id=incident.id,
                playbook_name=playbook_name,
                playbook_version=playbook_version,
                playbook_hash=playbook_hash,
                playbook_content=playbook_content,
                params=params,
                dry_run=dry_run,
                auto_approve=auto_approve,
                status="pending",
                actor=actor,
                created_at=now,
            )
            session.add(run)
            session.flush()
            self.chain.append(
                session,
                actor=actor,
                type="run.created",
                incident_id=incident.id,
                payload={
                    "run_id": run.id,
                    "playbook": playbook_name,
                    "version": playbook_version,
                    "playbook_sha256": playbook_hash,
                    "params": fingerprints_only(params),
                    "dry_run": dry_run,
                    "auto_approve": auto_approve,
                },
            )
            return NewRun(incident_id=incident.id, run_id=run.id)

    def open_incident(self, *, title: str, severity: str, source: str, actor: str) -> str:
        """A new incident (status open, detected now), audited; its id."""
        with self.db.transaction() as session:
            return self._new_incident(session, title=title, severity=severity, source=source, actor=actor).id

    def _new_incident(
        self, session: Session, *, title: str, severity: str, source: str, actor: str
    ) -> Incident:
        now = clock.now()
        incident = Incident(
            title=title,
            severity=severity,
            source=source,
            status="open",
            detected_at=now,
            created_at=now,
            updated_at=now,
            affected_by_state={},
        )
        session.add(incident)
        session.flush()
        self.chain.append(
            session,
            actor=actor,
            type="incident.opened",
            incident_id=incident.id,
            # The title is free text (a Sentinel alert name may carry a user's address): the trail keeps a
            # keyed fingerprint proving the stored title without holding it; the incidents row has the text.
            payload={"title_fingerprint": fingerprint(title), "severity": severity, "source": source},
        )
        return incident

    def ensure_steps(
        self,
        run_id: str,
        *,
        position: int,
        step_key: str,
        action: str,
        requires_approval: bool,
        max_attempts: int,
        items: list[dict[str, Any]],
    ) -> list[str]:
        """Create the step rows of one playbook step (one per target), or return the existing ones."""
        with self.db.transaction() as session:
            existing = {
                step.item_index: step.id
                for step in session.execute(
                    select(Step).where(Step.run_id == run_id, Step.step_key == step_key)
                ).scalars()
            }
            now = clock.now()
            ids = []
            run = session.get(Run, run_id)
            run_params = run.params if run is not None else {}
            for item in items:
                index = item["item_index"]
                if index not in existing:
                    step = Step(
                        run_id=run_id,
                        step_key=step_key,
                        position=position,
                        item_index=index,
                        target=item["target"],
                        action=action,
                        params=seal_derived(item["params"], run_params),
                        requires_approval=requires_approval,
                        state="pending",
                        attempts=0,
                        max_attempts=max_attempts,
                        created_at=now,
                        updated_at=now,
                    )
                    session.add(step)
                    session.flush()
                    existing[index] = step.id
                ids.append(existing[index])
            return ids

    # -- transitions ----------------------------------------------------------------------------------
    def transition_run(
        self,
        run_id: str,
        trigger: str,
        *,
        actor: str = ENGINE_ACTOR,
        payload: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> str:
        with self.db.transaction() as session:
            run = session.get(Run, run_id, with_for_update=True)
            if run is None:
                raise LookupError(f"no run {run_id}")
            if run.status == "cancelled":  # an operator's cancel wins over what the workflow did meanwhile
                return run.status
            new = _next(RUN, run.status, trigger)
            if new is None:
                return run.status
            old, run.status = run.status, new
            now = clock.now()
            if new == "running" and run.started_at is None:
                run.started_at = now
            if new in ("succeeded", "failed", "cancelled"):
                run.finished_at = now
            if error is not None:
                run.error = error
            self.chain.append(
                session,
                actor=actor,
                type=f"run.{new}",
                incident_id=run.incident_id,
                payload={
                    "run_id": run_id,
                    "from": old,
                    "to": new,
                    **({"error": error} if error else {}),
                    **(payload or {}),
                },
            )
            if not run.dry_run:
                self._follow_incident(session, run, new, actor)
            return new

    def note_run_event(self, run_id: str, type: str, payload: dict[str, Any]) -> None:
        """An audit event about a run that changes no state (e.g. a step with no targets)."""
        with self.db.transaction() as session:
            run = session.get(Run, run_id)
            if run is None:
                raise LookupError(f"no run {run_id}")
            self.chain.append(
                session,
                actor=ENGINE_ACTOR,
                type=type,
                incident_id=run.incident_id,
                payload={"run_id": run_id, **payload},
            )

    def note_step_event(self, step_id: str, type: str, payload: dict[str, Any]) -> None:
        """An audit event about one step that changes no state (e.g. a plan retried after an error)."""
        with self.db.transaction() as session:
            step = session.get(Step, step_id)
            if step is None:
                raise LookupError(f"no step {step_id}")
            run = session.get(Run, step.run_id)
            assert run is not None
            self.chain.append(
                session,
                actor=ENGINE_ACTOR,
                type=type,
                incident_id=run.incident_id,
                payload={
                    "run_id": step.run_id,
                    "step": step.step_key,
                    "item": step.item_index,
                    "target": step.target,
                    "action": step.action,
                    **payload,
                },
            )

    def _follow_incident(self, session: Session, run: Run, run_state: str, actor: str) -> None:
        trigger = {"running": "begin_containment", "succeeded": "contain"}.get(run_state)
        if trigger is None:
            return
        incident = session.get(Incident, run.incident_id, with_for_update=True)
        assert incident is not None
        try:
            new = INCIDENT.next_state(incident.status, trigger)
        except IllegalTransition:
            return
        if new == incident.status:
            return
        old, incident.status, incident.updated_at = incident.status, new, clock.now()
        self.chain.append(
            session,
            actor=actor,
            type="incident.status_changed",
            incident_id=incident.id,
            payload={"from": old, "to": new, "run_id": run.id},
        )

    def transition_step(
        self,
        step_id: str,
        trigger: str,
        *,
        actor: str = ENGINE_ACTOR,
        payload: dict[str, Any] | None = None,
        **fields: Any,
    ) -> str:
        with self.db.transaction() as session:
            step = session.get(Step, step_id, with_for_update=True)
            if step is None:
                raise LookupError(f"no step {step_id}")
            if step.state == "cancelled":
                self._note_outcome_after_cancel(session, step, trigger, actor, payload)
                return step.state
            new = _next(STEP, step.state, trigger)
            if new is None:
                return step.state
            old, step.state = step.state, new
            now = clock.now()
            step.updated_at = now
            if trigger == "start":
                step.attempts += 1
                step.next_attempt_at = None
                if step.first_attempt_at is None:
                    step.first_attempt_at = now
            for name, value in fields.items():
                setattr(step, name, value)
            run = session.get(Run, step.run_id, with_for_update=True)
            assert run is not None
            self.chain.append(
                session,
                actor=actor,
                type=f"step.{new}",
                incident_id=run.incident_id,
                payload={
                    "run_id": step.run_id,
                    "step": step.step_key,
                    "item": step.item_index,
                    "target": step.target,
                    "action": step.action,
                    "from": old,
                    "attempt": step.attempts,
                    **(payload or {}),
                },
            )
            if "awaiting_approval" in (old, new):
                session.flush()
                self._follow_approvals(session, run, actor)
            return new

    def _note_outcome_after_cancel(
        self, session: Session, step: Step, trigger: str, actor: str, payload: dict[str, Any] | None
    ) -> None:
        """A step cancelled while its Azure call was in flight: the outcome is recorded, not applied."""
        if trigger not in ("succeed", "fail"):
            return
        run = session.get(Run, step.run_id)
        assert run is not None
        self.chain.append(
            session,
            actor=actor,
            type="step.outcome_after_cancel",
            incident_id=run.incident_id,
            payload={
                "run_id": step.run_id,
                "step": step.step_key,
                "item": step.item_index,
                "target": step.target,
                "action": step.action,
                "outcome": "succeeded" if trigger == "succeed" else "failed",
                **(payload or {}),
            },
        )

    def cancel_run(self, run_id: str, *, actor: str, reason: str = "") -> dict[str, Any]:
        """The run and every step not yet ended become ``cancelled`` in one transaction, audited."""
        reason = redact_text(reason)[:500]
        with self.db.transaction() as session:
            # Lock order as in transition_step: steps, then their run, then the audit head.
            open_steps = list(
                session.execute(
                    select(Step)
                    .where(Step.run_id == run_id, Step.state.not_in(tuple(STEP_TERMINAL)))
                    .order_by(Step.position, Step.item_index)
                    .with_for_update()
                ).scalars()
            )
            run = session.get(Run, run_id, with_for_update=True)
            if run is None:
                raise LookupError(f"no run {run_id}")
            old = run.status
            try:
                new = RUN.next_state(old, "cancel")
            except IllegalTransition:
                raise ValueError(f"run {run_id} already ended ({old}): nothing to cancel") from None
            now = clock.now()
            run.status, run.finished_at = new, now
            run.error = f"cancelled by {actor}" + (f": {reason}" if reason else "")
            for step in open_steps:
                step_old, step.state, step.updated_at = step.state, "cancelled", now
                self.chain.append(
                    session,
                    actor=actor,
                    type="step.cancelled",
                    incident_id=run.incident_id,
                    payload={
                        "run_id": run_id,
                        "step": step.step_key,
                        "item": step.item_index,
                        "target": step.target,
                        "action": step.action,
                        "from": step_old,
                        "attempt": step.attempts,
                    },
                )
            self.chain.append(
                session,
                actor=actor,
                type="run.cancelled",
                incident_id=run.incident_id,
                payload={
                    "run_id": run_id,
                    "from": old,
                    "to": new,
                    # Free text: the reason is kept sealed in runs.error, the trail has its fingerprint.
                    **({"reason_fingerprint": fingerprint(reason)} if reason else {}),
                    "steps": len(open_steps),
                },
            )
            return {"run_id": run_id, "from": old, "status": new, "steps_cancelled": len(open_steps)}

    def reset_for_retry(self, run_id: str, *, actor: str) -> dict[str, Any]:
        """A failed run back to ``pending``, its failed and unfinished steps too (one transaction, audited).

        Succeeded and skipped steps stay as they are: the retried run reuses their results.
        """
        with self.db.transaction() as session:
            # Lock order as in transition_step: steps, then their run, then the audit head.
            redo = list(
                session.execute(
                    select(Step)
                    .where(Step.run_id == run_id, Step.state.not_in(("succeeded", "skipped", "pending")))
                    .order_by(Step.position, Step.item_index)
                    .with_for_update()
                ).scalars()
            )
            run = session.get(Run, run_id, with_for_update=True)
            if run is None:
                raise LookupError(f"no run {run_id}")
            if run.status == "pending" and run.finished_at is None:
                return {"run_id": run_id, "status": "pending", "steps_retried": 0}  # a replayed reset
            try:
                new = RUN.next_state(run.status, "retry")
            except IllegalTransition:
                raise ValueError(f"run {run_id} is {run.status}: only a failed run can be retried") from None
            old, previous_error = run.status, run.error
            run.status, run.finished_at, run.error = new, None, None
            now = clock.now()
            for step in redo:
                step_old = step.state
                step.state, step.updated_at, step.error, step.next_attempt_at = "pending", now, None, None
                self.chain.append(
                    session,
                    actor=actor,
                    type="step.pending",
                    incident_id=run.incident_id,
                    payload={
                        "run_id": run_id,
                        "step": step.step_key,
                        "item": step.item_index,
                        "target": step.target,
                        "action": step.action,
                        "from": step_old,
                        "attempt": step.attempts,
                        "reason": "run retried",
                    },
                )
            self.chain.append(
                session,
                actor=actor,
                type="run.retried",
                incident_id=run.incident_id,
                payload={
                    "run_id": run_id,
                    "from": old,
                    "to": new,
                    "previous_error": redact_text(previous_error or "")[:500] or None,
                    "steps": len(redo),
                },
            )
            return {"run_id": run_id, "status": new, "steps_retried": len(redo)}

    def step_states(self, step_ids: list[str]) -> list[dict[str, Any]]:
        with self.db.transaction() as session:
            rows = {s.id: s for s in session.execute(select(Step).where(Step.id.in_(step_ids))).scalars()}
            return [
                {"state": rows[i].state, "result": rows[i].result, "error": rows[i].error} for i in step_ids
            ]

    def _follow_approvals(self, session: Session, run: Run, actor: str) -> None:
        """The run waits for approval exactly while one of its steps does."""
        waiting = session.scalar(
            select(func.count()).where(Step.run_id == run.id, Step.state == "awaiting_approval")
        )
        trigger = "await_approval" if waiting else "resume"
        try:
            new = RUN.next_state(run.status, trigger)
        except IllegalTransition:
            return
        old, run.status = run.status, new
        self.chain.append(
            session,
            actor=actor,
            type=f"run.{new}",
            incident_id=run.incident_id,
            payload={"run_id": run.id, "from": old, "to": new, "steps_waiting": waiting},
        )

    def steps_awaiting_approval(self, run_id: str, step_key: str | None = None) -> list[dict[str, Any]]:
        with self.db.transaction() as session:
            query = select(Step).where(Step.run_id == run_id, Step.state == "awaiting_approval")
            if step_key is not None:
                query = query.where(Step.step_key == step_key)
            return [
                {
                    "id": s.id,
                    "step": s.step_key,
                    "target": s.target,
                    "workflow_id": s.workflow_id,
                    "plan": s.plan,
                }
                for s in session.execute(query.order_by(Step.position, Step.item_index)).scalars()
            ]

    # -- reads ----------------------------------------------------------------------------------------
    def run_snapshot(self, run_id: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            run = session.get(Run, run_id)
            if run is None:
                raise LookupError(f"no run {run_id}")
            return {
                "id": run.id,
                "incident_id": run.incident_id,
                "playbook": run.playbook_name,
                "content": run.playbook_content,
                "content_hash": run.playbook_hash,
                "params": run.params,
                "dry_run": run.dry_run,
                "auto_approve": run.auto_approve,
                "status": run.status,
                "prior_states": self._prior_states(session, run.incident_id),
            }

    @staticmethod
    def _prior_states(session: Session, incident_id: str) -> dict[str, dict[str, Any]]:
        """For each action and target, the state before the incident's first change to it (for restores)."""
        rows = session.execute(
            select(Step.action, Step.target, Step.result)
            .join(Run, Run.id == Step.run_id)
            .where(Run.incident_id == incident_id, Run.dry_run.is_(False), Step.state == "succeeded")
            .order_by(Step.updated_at)
        ).all()
        prior: dict[str, dict[str, Any]] = {}
        for action, target, result in rows:
            if target is None or not result or not result.get("changed"):
                continue
            prior.setdefault(action, {}).setdefault(target, result.get("prior_state", {}))
        return prior

    def incident_summary(self, incident_id: str) -> dict[str, Any]:
        """What a notification may say about an incident: ids, title, severity, status (no PHI fields)."""
        with self.db.transaction() as session:
            incident = session.get(Incident, incident_id)
            if incident is None:
                raise LookupError(f"no incident {incident_id}")
            return {
                "id": incident.id,
                "title": incident.title,
                "severity": incident.severity,
                "status": incident.status,
            }

    def step_row(self, step_id: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            step = session.get(Step, step_id)
            if step is None:
                raise LookupError(f"no step {step_id}")
            run = session.get(Run, step.run_id)
            incident = session.get(Incident, run.incident_id) if run else None
            assert run is not None and incident is not None
            return {
                "id": step.id,
                "run_id": step.run_id,
                "incident_id": run.incident_id,
                "step_key": step.step_key,
                "action": step.action,
                "params": step.params,
                "target": step.target,
                "state": step.state,
                "attempts": step.attempts,
                "first_attempt_at": step.first_attempt_at,
                "reference_time": incident.detected_at,
                "requires_approval": step.requires_approval,
                "incident": {
                    "id": incident.id,
                    "title": incident.title,
                    "severity": incident.severity,
                    "status": incident.status,
                },
            }


# -- sensitive inputs: sealed at rest, fingerprints in the audit trail (irflow/engine/sealing.py) --------
def _sealed_run_params(playbook_content: str, params: dict[str, Any]) -> dict[str, Any]:
    from irflow.engine.playbook import parse_playbook

    spec = parse_playbook(playbook_content).spec
    return seal_inputs(params, {name for name, given in spec.inputs.items() if given.sensitive})


def _next(machine: StateMachine, current: str, trigger: str) -> str | None:
    """The new state, or None when this change was already made (a replayed step)."""
    try:
        return machine.next_state(current, trigger)
    except IllegalTransition:
        if current == machine.destination(trigger):
            return None
        raise
