"""Sentinel intake: one irflow incident per Sentinel incident, however often and concurrently it arrives.

The incident's unique ``external_ref`` (the Sentinel incident's ARM id, or the Azure Monitor alert id) is the
claim: the first delivery inserts it together with its audit events and either its run (a rule with
``auto_start``) or the on-call escalation, in one unit of work; a concurrent delivery of the same incident
meets the unique constraint (SQLite and PostgreSQL alike), writes nothing and attaches to the winner. Only
the winner records a run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from irflow.audit import AuditChain
from irflow.engine.notifier import OutboxNotifier
from irflow.engine.runs import RunRequest, prepare_run, start_recorded_run
from irflow.engine.runtime import Services
from irflow.engine.sentinel_claims import claims_of
from irflow.engine.sentinel_payload import Delivery
from irflow.engine.sentinel_routing import NoRoute, Route, route
from irflow.engine.uow import unit_of_work
from irflow.notify.outbox import enqueue
from irflow.settings import recipients
from irflow.store.models import Incident, Run

log = structlog.get_logger(__name__)
Outcome = Literal["started", "awaiting_responder", "unrouted", "attached", "updated"]


@dataclass(frozen=True)
class Intake:
    incident_id: str
    run_id: str | None  # the run the intake started; None when its rule waits or none matched
    deduplicated: bool
    outcome: Outcome


INTAKE_ACTOR_PREFIX = "sentinel:"  # every actor of an authenticated delivery (irflow/api/routes/webhooks.py)


def known(svc: Services, delivery: Delivery) -> Intake | None:
    """A re-delivery of a claimed incident, answered from memory without the database; None when the delivery
    may need a write (an Update event is audited) or the claim is not remembered in this process."""
    if delivery.event_type == "Update":
        return None
    claim = claims_of(svc.db).get(delivery.external_ref)
    if claim is None:
        return None
    return Intake(claim[0], claim[1], True, "attached")


def receive(svc: Services, delivery: Delivery, *, actor: str) -> Intake:
    """Record the delivery; start the routed playbook when its rule says ``auto_start``.

    The claim of the Sentinel incident id, its audit events and either the run or the on-call escalation are
    one unit of work: a crash before its commit leaves nothing (the re-delivery starts over); a crash after it
    leaves the incident with its pending run, which the next worker to launch starts (runs committed as
    pending without a workflow are started at launch). No crash loses a run or makes a second one.
    """
    existing = known(svc, delivery) or _attach(svc, delivery, actor)
    if existing is not None:
        return existing
    decision = route(delivery, svc.settings.playbooks_dir)
    request: RunRequest | None = None
    start_error: str | None = None
    if isinstance(decision, Route) and decision.auto_start:
        try:
            request = prepare_run(svc, decision.playbook, decision.params)
        except ValueError as exc:  # the playbook changed on disk between routing and submitting
            start_error = str(exc)
    claimed = _claim(svc, delivery, decision, request, start_error, actor)
    if claimed is None:  # a concurrent delivery of the same incident claimed it first
        attached = _attach(svc, delivery, actor)
        if attached is None:
            raise RuntimeError("the Sentinel incident was claimed, yet no incident holds its id")
        return attached
    incident_id, run_id = claimed
    claims_of(svc.db).remember(delivery.external_ref, incident_id, run_id)
    if run_id is not None:
        run_id, _handle = start_recorded_run(
            svc, run_id, actor=actor, dedupe_key=f"sentinel:{delivery.external_ref}"
        )
        log.info("sentinel incident started a run", incident_id=incident_id, run_id=run_id)
        return Intake(incident_id, run_id, False, "started")
    outcome: Outcome = "awaiting_responder" if isinstance(decision, Route) else "unrouted"
    log.info("sentinel incident recorded", incident_id=incident_id, outcome=outcome)
    return Intake(incident_id, None, False, outcome)


def _attach(svc: Services, delivery: Delivery, actor: str) -> Intake | None:
    """The existing incident of this delivery; an Update event is audited on it. None when there is none.

    The run answered is the one the intake started (recorded with the claim, so it never changes), not a
    later one a responder started: what a re-delivery is told does not depend on whether its claim was
    remembered (:func:`known`) or read here."""
    intake_run = (
        select(Run.id)
        .where(Run.incident_id == Incident.id, Run.actor.startswith(INTAKE_ACTOR_PREFIX))
        .order_by(Run.created_at)
        .limit(1)
        .scalar_subquery()
    )
    # Only an Update writes (its audit event); a re-delivery reads, on SQLite without the write lock.
    with svc.db.transaction() if delivery.event_type == "Update" else svc.db.read() as session:
        found = session.execute(  # one round trip: most deliveries of a storm are re-deliveries
            select(Incident.id, intake_run).where(Incident.external_ref == delivery.external_ref)
        ).first()
        if found is None:
            return None
        incident_id, run_id = found
        claims_of(svc.db).remember(delivery.external_ref, incident_id, run_id)
        if delivery.event_type != "Update":
            return Intake(incident_id, run_id, True, "attached")
        AuditChain().append(
            session,
            actor=actor,
            type="sentinel.incident_updated",
            incident_id=incident_id,
            payload={"sentinel_status": delivery.status, "sentinel_severity": delivery.severity},
        )
        return Intake(incident_id, run_id, True, "updated")


def _claim(
    svc: Services,
    delivery: Delivery,
    decision: Route | NoRoute,
    request: RunRequest | None,
    start_error: str | None,
    actor: str,
) -> tuple[str, str | None] | None:
    """One unit of work: the incident (the claim of its Sentinel id), what was received, and the run or the
    escalation. The incident's and run's ids; None when another delivery holds the claim (nothing written)."""
    with unit_of_work(svc.db) as work:
        incident = svc.state.claim_incident(
            work,
            external_ref=delivery.external_ref,
            title=_title(delivery),
            severity=delivery.severity,
            source="sentinel",
            actor=actor,
        )
        if incident is None:
            return None
        work.audit(
            actor=actor,
            type="sentinel.received",
            incident_id=incident.id,
            payload={
                "schema": delivery.schema,
                "external_ref": delivery.external_ref,
                "event": delivery.event_type,
                "sentinel_status": delivery.status,
                "incident_number": delivery.number,
                "entities": dict(Counter(entity.kind for entity in delivery.entities)),
                **_decision_payload(decision),
            },
        )
        if request is not None:
            run_id = svc.state.new_run(
                work,
                incident_id=incident.id,
                actor=actor,
                playbook_name=request.playbook_name,
                playbook_version=request.playbook_version,
                playbook_hash=request.playbook_hash,
                playbook_content=request.playbook_content,
                params=request.params,
                dry_run=request.dry_run,
                auto_approve=request.auto_approve,
            )
            return incident.id, run_id
        if isinstance(decision, NoRoute):
            reason = "No playbook matches this Sentinel incident"
        elif start_error is not None:
            work.audit(
                actor=actor,
                type="sentinel.start_failed",
                incident_id=incident.id,
                payload={"playbook": decision.playbook, "error": start_error[:500]},
            )
            reason = f"Playbook {decision.playbook} could not start: {start_error[:200]}"
        else:
            reason = f"Sentinel incident waits for a responder to start playbook {decision.playbook}"
        _escalate(svc, work.session, incident, actor, reason=reason)
        return incident.id, None


def _decision_payload(decision: Route | NoRoute) -> dict[str, Any]:
    if isinstance(decision, NoRoute):
        return {"routed": False, "reasons": decision.reasons}
    return {
        "routed": True,
        "playbook": decision.playbook,
        "auto_start": decision.auto_start,
        "params": decision.params,
        "also_matched": decision.also_matched,
    }


def _title(delivery: Delivery) -> str:
    if delivery.schema == "sentinel_incident":
        return f"Sentinel incident {delivery.number}: {delivery.title}"[:300]
    return f"Azure Monitor alert: {delivery.title}"[:300]


def _escalate(svc: Services, session: Session, incident: Incident, actor: str, *, reason: str) -> None:
    """Queue the internal escalation to on-call (every configured channel), in the claim's transaction."""
    settings = svc.settings
    addressees = [("email", address) for address in recipients(settings.oncall_recipients)]
    addressees += [
        (name, name)
        for name, url in (("slack", settings.slack_webhook_url), ("teams", settings.teams_webhook_url))
        if url is not None
    ]
    context = {
        "incident": {
            "id": incident.id,
            "title": incident.title,
            "severity": incident.severity,
            "status": incident.status,
        },
        "reason": reason,
        "actions": [
            "Review the Sentinel incident and its entities",
            "Start the right playbook (irflow run PLAYBOOK --incident ID) or close the incident",
        ],
        "step": "",
    }
    if not addressees:
        AuditChain().append(
            session,
            actor=actor,
            type="sentinel.escalation_unroutable",
            incident_id=incident.id,
            payload={"reason": reason, "missing": "IRFLOW_ONCALL_RECIPIENTS or a chat webhook"},
        )
        log.warning("sentinel escalation has no on-call channel", incident_id=incident.id)
        return
    for channel, recipient in addressees:
        enqueue(
            session,
            channel=channel,
            template="internal-escalation",
            recipient=recipient,
            context=context,
            incident_id=incident.id,
            dedupe_key=OutboxNotifier.dedupe_key(incident.id, "sentinel.escalate", channel, recipient),
            actor=actor,
            templates_dir=settings.templates_dir,
            new_key=True,  # the key names the incident this unit of work has just created
        )
