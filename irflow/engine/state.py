"""Persisted state changes: each new state is written with its audit event in one unit of work.

Locks follow the one order of :mod:`irflow.engine.uow` (Incident -> Run -> Step -> AuditHead); audit events
are appended last, just before commit. A step's own transitions lock only that step: the targets of a
fan-out do not queue on their run's row. Only a change into or out of ``awaiting_approval`` locks the run
(first), since the run waits for approval exactly while one of its steps does.

Every change is safe to replay: a DBOS step that committed but crashed before DBOS recorded it runs again,
finds the object already in the destination state, and writes nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from irflow import clock
from irflow.audit import AuditChain
from irflow.engine.machines import INCIDENT, RUN, STEP, STEP_TERMINAL, IllegalTransition, StateMachine
from irflow.engine.sealing import fingerprints_only, seal_derived, seal_inputs
from irflow.engine.uow import UnitOfWork, unit_of_work
from irflow.redaction import fingerprint, redact_text
from irflow.store.db import Database
from irflow.store.models import Incident, Run, Step

ENGINE_ACTOR = "irflow-engine"

# A lane's claims (StateStore.claim_target): plain statements, one round trip each, compiled once.
_ENDED = ", ".join(f"'{state}'" for state in sorted(STEP_TERMINAL))
_CLAIMED = text("SELECT id, step_key FROM steps WHERE run_id = :run AND workflow_id = :token")
_CLAIM_LOCK = text("SELECT pg_advisory_xact_lock(hashtext(:key))")
_IN_FLIGHT = text(
    "SELECT step_key, count(*) FROM steps WHERE run_id = :run AND workflow_id IS NOT NULL "
    f"AND state NOT IN ({_ENDED}) GROUP BY step_key"
)
_FIRST_FREE = text(
    "SELECT id FROM steps WHERE run_id = :run AND step_key = :key AND state = 'pending' "
    "AND workflow_id IS NULL ORDER BY item_index LIMIT 1"
)
_NEXT_FREE = text(
    "SELECT s.id FROM steps s WHERE s.run_id = :run AND s.step_key = :key AND s.state = 'pending' "
    "AND s.workflow_id IS NULL AND EXISTS (SELECT 1 FROM steps p WHERE p.run_id = :run "
    "AND p.step_key = :previous AND p.item_index = s.item_index "
    "AND (p.state IN ('succeeded', 'skipped') OR (p.state = 'failed' AND :goes_on = 1))) "
    "ORDER BY s.item_index LIMIT 1"
)
_CLAIM = text("UPDATE steps SET workflow_id = :token WHERE id = :id")


@dataclass(frozen=True)
class NewRun:
    incident_id: str
    run_id: str


class StateStore:
    def __init__(self, db: Database, chain: AuditChain | None = None) -> None:
        self.db = db
        self.chain = chain or AuditChain()

    def _work(self) -> Any:
        return unit_of_work(self.db, self.chain)

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
        with self._work() as work:
            if incident_id is None:
                incident = self.new_incident(work, title=title, severity=severity, source=source, actor=actor)
            else:
                found = work.session.get(Incident, incident_id)
                if found is None:
                    raise LookupError(f"no incident {incident_id}")
                incident = found
            run_id = self.new_run(
                work,
                incident_id=incident.id,
                actor=actor,
                playbook_name=playbook_name,
                playbook_version=playbook_version,
                playbook_hash=playbook_hash,
                playbook_content=playbook_content,
                params=params,
                dry_run=dry_run,
                auto_approve=auto_approve,
            )
            return NewRun(incident_id=incident.id, run_id=run_id)

    def new_run(
        self,
        work: UnitOfWork,
        *,
        incident_id: str,
        actor: str,
        playbook_name: str,
        playbook_version: int,
        playbook_hash: str,
        playbook_content: str,
        params: dict[str, Any],
        dry_run: bool,
        auto_approve: bool,
    ) -> str:
        """A pending run of the incident, audited ``run.created``, in the caller's unit of work; its id."""
        params = _sealed_run_params(playbook_content, params)
        run = Run(
            incident_id=incident_id,
            playbook_name=playbook_name,
            playbook_version=playbook_version,
            playbook_hash=playbook_hash,
            playbook_content=playbook_content,
            params=params,
            dry_run=dry_run,
            auto_approve=auto_approve,
            status="pending",
            actor=actor,
            created_at=clock.now(),
        )
        work.session.add(run)
        work.session.flush()
        work.audit(
            actor=actor,
            type="run.created",
            incident_id=incident_id,
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
        return run.id

    def open_incident(self, *, title: str, severity: str, source: str, actor: str) -> str:
        """A new incident (status open, detected now), audited; its id."""
        with self._work() as work:
            return self.new_incident(work, title=title, severity=severity, source=source, actor=actor).id

    @staticmethod
    def new_incident(work: UnitOfWork, *, title: str, severity: str, source: str, actor: str) -> Incident:
        """A new incident, audited ``incident.opened``, in the caller's unit of work."""
        incident = _incident(title=title, severity=severity, source=source)
        work.session.add(incident)
        work.session.flush()
        _audit_opened(work, incident, actor)
        return incident

    @staticmethod
    def claim_incident(
        work: UnitOfWork, *, external_ref: str, title: str, severity: str, source: str, actor: str
    ) -> Incident | None:
        """The new incident of *external_ref* (a Sentinel incident's id), audited, in the caller's unit of
        work; None when an incident holds that ref already (also one a concurrent transaction is inserting:
        the unique ref decides, see :func:`irflow.store.unique.insert_unique`); nothing is written then."""
        incident, created = work.insert_unique(
            _incident(title=title, severity=severity, source=source, external_ref=external_ref),
            select(Incident).where(Incident.external_ref == external_ref),
            look_first=False,  # the intake has just looked (sentinel._attach)
        )
        if not created:
            return None
        _audit_opened(work, incident, actor)
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
            run_params = session.scalar(select(Run.params).where(Run.id == run_id)) or {}
            new = []
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
                    new.append(step)
            if new:  # one batch of inserts, not a round trip per target
                session.add_all(new)
                session.flush()
                existing.update((step.item_index, step.id) for step in new)
            return [existing[item["item_index"]] for item in items]

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
        with self._work() as work:
            # incident_id and dry_run never change: read unlocked, to take the incident's lock first.
            found = work.session.execute(select(Run.incident_id, Run.dry_run).where(Run.id == run_id)).first()
            if found is None:
                raise LookupError(f"no run {run_id}")
            incident_id, dry_run = found
            follows = not dry_run and RUN.destination(trigger) in _INCIDENT_FOLLOWS
            incident = work.lock(Incident, incident_id) if follows else None
            run = work.lock(Run, run_id)
            assert run is not None
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
            work.audit(
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
            if incident is not None:
                self._follow_incident(work, incident, run, new, actor)
            return new

    def note_run_event(self, run_id: str, type: str, payload: dict[str, Any]) -> None:
        """An audit event about a run that changes no state (e.g. a step with no targets)."""
        with self._work() as work:
            incident_id = work.session.scalar(select(Run.incident_id).where(Run.id == run_id))
            if incident_id is None:
                raise LookupError(f"no run {run_id}")
            work.audit(
                actor=ENGINE_ACTOR, type=type, incident_id=incident_id, payload={"run_id": run_id, **payload}
            )

    def note_step_event(self, step_id: str, type: str, payload: dict[str, Any]) -> None:
        """An audit event about one step that changes no state (e.g. a plan retried after an error)."""
        with self._work() as work:
            found = work.session.execute(
                select(Step, Run.incident_id).join(Run, Run.id == Step.run_id).where(Step.id == step_id)
            ).first()
            if found is None:
                raise LookupError(f"no step {step_id}")
            step, incident_id = found
            work.audit(
                actor=ENGINE_ACTOR, type=type, incident_id=incident_id, payload=_step_payload(step, **payload)
            )

    def _follow_incident(
        self, work: UnitOfWork, incident: Incident, run: Run, run_state: str, actor: str
    ) -> None:
        trigger = {"running": "begin_containment", "succeeded": "contain"}.get(run_state)
        if trigger is None:
            return
        try:
            new = INCIDENT.next_state(incident.status, trigger)
        except IllegalTransition:
            return
        if new == incident.status:
            return
        old, incident.status, incident.updated_at = incident.status, new, clock.now()
        work.audit(
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
        # Only a change into or out of awaiting_approval touches the run: then the run is locked, before
        # the step. Any other change locks the step alone, in one round trip.
        gate = STEP.destination(trigger) == "awaiting_approval"
        for _ in range(2):
            with self._work() as work:
                if gate:
                    run_id = work.session.scalar(select(Step.run_id).where(Step.id == step_id))
                    run = work.lock(Run, run_id) if run_id is not None else None
                else:
                    run = None
                found = work.lock_step_with_incident(step_id)
                if found is None:
                    raise LookupError(f"no step {step_id}")
                step, incident_id = found
                if run is None and step.state == "awaiting_approval":
                    gate = True
                    continue  # leaving a gate: again, with the run locked first (nothing written yet)
                return self._change_step(work, step, incident_id, run, trigger, actor, payload, fields)
        raise AssertionError("unreachable: the second attempt locks the run")

    def transition_step_many(
        self,
        step_id: str,
        changes: list[tuple[str, dict[str, Any], dict[str, Any] | None]],
        *,
        actor: str = ENGINE_ACTOR,
    ) -> str:
        """Several changes of one step in one transaction, in order (``plan`` then ``start``), each with its
        audit event. Only changes that leave the run alone: none into or out of ``awaiting_approval``."""
        with self._work() as work:
            found = work.lock_step_with_incident(step_id)
            if found is None:
                raise LookupError(f"no step {step_id}")
            step, incident_id = found
            state = step.state
            for trigger, fields, payload in changes:
                if "awaiting_approval" in (state, STEP.destination(trigger)):
                    raise ValueError(f"{trigger} touches an approval gate: use transition_step")
                state = self._change_step(work, step, incident_id, None, trigger, actor, payload, fields)
            return state

    def _change_step(
        self,
        work: UnitOfWork,
        step: Step,
        incident_id: str,
        run: Run | None,
        trigger: str,
        actor: str,
        payload: dict[str, Any] | None,
        fields: dict[str, Any],
    ) -> str:
        if step.state == "cancelled":
            self._note_outcome_after_cancel(work, step, incident_id, trigger, actor, payload)
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
        work.audit(
            actor=actor,
            type=f"step.{new}",
            incident_id=incident_id,
            payload=_step_payload(step, **{"from": old, "attempt": step.attempts, **(payload or {})}),
        )
        if run is not None and "awaiting_approval" in (old, new):
            work.session.flush()
            self._follow_approvals(work, run, actor)
        return new

    @staticmethod
    def _note_outcome_after_cancel(
        work: UnitOfWork,
        step: Step,
        incident_id: str,
        trigger: str,
        actor: str,
        payload: dict[str, Any] | None,
    ) -> None:
        """A step cancelled while its Azure call was in flight: the outcome is recorded, not applied."""
        if trigger not in ("succeed", "fail"):
            return
        outcome = "succeeded" if trigger == "succeed" else "failed"
        work.audit(
            actor=actor,
            type="step.outcome_after_cancel",
            incident_id=incident_id,
            payload=_step_payload(step, **{"outcome": outcome, **(payload or {})}),
        )

    def cancel_run(self, run_id: str, *, actor: str, reason: str = "") -> dict[str, Any]:
        """The run and every step not yet ended become ``cancelled`` in one transaction, audited."""
        reason = redact_text(reason)[:500]
        with self._work() as work:
            run = work.lock(Run, run_id)
            if run is None:
                raise LookupError(f"no run {run_id}")
            old = run.status
            try:
                new = RUN.next_state(old, "cancel")
            except IllegalTransition:
                raise ValueError(f"run {run_id} already ended ({old}): nothing to cancel") from None
            open_steps = work.lock_steps(
                select(Step).where(Step.run_id == run_id, Step.state.not_in(tuple(STEP_TERMINAL)))
            )
            now = clock.now()
            run.status, run.finished_at = new, now
            run.error = f"cancelled by {actor}" + (f": {reason}" if reason else "")
            self._reset_steps(work, run, open_steps, "cancelled", actor)
            work.audit(
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
        with self._work() as work:
            run = work.lock(Run, run_id)
            if run is None:
                raise LookupError(f"no run {run_id}")
            if run.status == "pending" and run.finished_at is None:
                return {"run_id": run_id, "status": "pending", "steps_retried": 0}  # a replayed reset
            try:
                new = RUN.next_state(run.status, "retry")
            except IllegalTransition:
                raise ValueError(f"run {run_id} is {run.status}: only a failed run can be retried") from None
            redo = work.lock_steps(
                select(Step).where(
                    Step.run_id == run_id, Step.state.not_in(("succeeded", "skipped", "pending"))
                )
            )
            old, previous_error = run.status, run.error
            run.status, run.finished_at, run.error = new, None, None
            self._reset_steps(work, run, redo, "pending", actor, reason="run retried")
            work.audit(
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

    @staticmethod
    def _reset_steps(
        work: UnitOfWork, run: Run, steps: list[Step], state: str, actor: str, **extra: Any
    ) -> None:
        """Put each step of a run operation (cancel, retry) into *state*, one ``step.<state>`` event each."""
        now = clock.now()
        for step in steps:
            old, step.state, step.updated_at = step.state, state, now
            if state == "pending":  # claimable again by a lane (workflow_id held its claim)
                step.error, step.next_attempt_at, step.workflow_id = None, None, None
            work.audit(
                actor=actor,
                type=f"step.{state}",
                incident_id=run.incident_id,
                payload=_step_payload(step, **{"from": old, "attempt": step.attempts, **extra}),
            )

    def claim_target(
        self, run_id: str, chain: list[tuple[str, int, bool]], token: str
    ) -> tuple[str, str] | None:
        """The next target a lane runs, claimed with ``token`` in ``steps.workflow_id``; None when nothing is
        claimable now.

        ``chain`` is the steps the lanes share, in order: (step key, concurrency, whether a failed target lets
        its item go on). A target is claimable when it is pending and unclaimed, fewer than its step's
        concurrency are claimed and unfinished, and (past the first step) its item's target of the previous
        step ended in a way that lets it go on. Earlier steps come first (isolating every account before
        rotating any key), then item order. Claiming again with the same token returns the same target: a
        lane replayed after a crash resumes the target it had claimed.
        """
        with self.db.transaction() as session:  # scheduling only: no fact for the audit trail
            mine = session.execute(_CLAIMED, {"run": run_id, "token": token}).first()
            if mine is not None:
                return mine[0], mine[1]
            if session.get_bind().dialect.name == "postgresql":
                # Claims of one run, one at a time across replicas (the concurrency count stays exact);
                # the run's row itself is never locked by fan-out.
                session.execute(_CLAIM_LOCK, {"key": f"claim:{run_id}"})
            in_flight: dict[str, int] = dict(session.execute(_IN_FLIGHT, {"run": run_id}).all())
            for position, (step_key, concurrency, _) in enumerate(chain):
                if in_flight.get(step_key, 0) >= concurrency:
                    continue
                if position == 0:
                    found = session.scalar(_FIRST_FREE, {"run": run_id, "key": step_key})
                else:
                    previous, _, goes_on = chain[position - 1]
                    found = session.scalar(
                        _NEXT_FREE,
                        {"run": run_id, "key": step_key, "previous": previous, "goes_on": int(goes_on)},
                    )
                if found is not None:
                    session.execute(_CLAIM, {"id": found, "token": token})
                    return found, step_key
            return None

    def step_states(self, step_ids: list[str]) -> list[dict[str, Any]]:
        with self.db.read() as session:
            rows = {s.id: s for s in session.execute(select(Step).where(Step.id.in_(step_ids))).scalars()}
            return [
                {"state": rows[i].state, "result": rows[i].result, "error": rows[i].error} for i in step_ids
            ]

    def _follow_approvals(self, work: UnitOfWork, run: Run, actor: str) -> None:
        """The run waits for approval exactly while one of its steps does (the caller holds its lock)."""
        waiting = work.session.scalar(
            select(func.count()).where(Step.run_id == run.id, Step.state == "awaiting_approval")
        )
        trigger = "await_approval" if waiting else "resume"
        try:
            new = RUN.next_state(run.status, trigger)
        except IllegalTransition:
            return
        old, run.status = run.status, new
        work.audit(
            actor=actor,
            type=f"run.{new}",
            incident_id=run.incident_id,
            payload={"run_id": run.id, "from": old, "to": new, "steps_waiting": waiting},
        )

    def steps_awaiting_approval(self, run_id: str, step_key: str | None = None) -> list[dict[str, Any]]:
        with self.db.read() as session:
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
        with self.db.read() as session:
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
        with self.db.read() as session:
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
        with self.db.read() as session:
            found = session.execute(
                select(Step, Incident)
                .join(Run, Run.id == Step.run_id)
                .join(Incident, Incident.id == Run.incident_id)
                .where(Step.id == step_id)
            ).first()
            if found is None:
                raise LookupError(f"no step {step_id}")
            step, incident = found
            return {
                "id": step.id,
                "run_id": step.run_id,
                "incident_id": incident.id,
                "step_key": step.step_key,
                "action": step.action,
                "params": step.params,
                "target": step.target,
                "state": step.state,
                "plan": step.plan,
                "error": step.error,
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


def _incident(*, title: str, severity: str, source: str, external_ref: str | None = None) -> Incident:
    now = clock.now()
    return Incident(
        title=title,
        severity=severity,
        source=source,
        external_ref=external_ref,
        status="open",
        detected_at=now,
        created_at=now,
        updated_at=now,
        affected_by_state={},
    )


def _audit_opened(work: UnitOfWork, incident: Incident, actor: str) -> None:
    work.audit(
        actor=actor,
        type="incident.opened",
        incident_id=incident.id,
        # The title is free text (a Sentinel alert name may carry a user's address): the trail keeps a keyed
        # fingerprint proving the stored title without holding it; the incidents row has the text.
        payload={
            "title_fingerprint": fingerprint(incident.title),
            "severity": incident.severity,
            "source": incident.source,
        },
    )


_INCIDENT_FOLLOWS = ("running", "succeeded")  # run states the incident follows (see _follow_incident)


def _step_payload(step: Step, /, **extra: Any) -> dict[str, Any]:
    """What every audit event about one step says about it; *extra* adds to it."""
    return {
        "run_id": step.run_id,
        "step": step.step_key,
        "item": step.item_index,
        "target": step.target,
        "action": step.action,
        **extra,
    }


def _next(machine: StateMachine, current: str, trigger: str) -> str | None:
    """The new state, or None when this change was already made (a replayed step)."""
    try:
        return machine.next_state(current, trigger)
    except IllegalTransition:
        if current == machine.destination(trigger):
            return None
        raise
