"""Sentinel intake: one irflow incident per Sentinel incident, however often and concurrently it arrives.

The incident's unique ``external_ref`` (the Sentinel incident's ARM id, or the Azure Monitor alert id) is the
claim: the first delivery inserts it together with its audit events and, when no playbook starts on its own,
the on-call escalation, in one transaction; a concurrent delivery of the same incident fails on the unique
constraint (SQLite and PostgreSQL alike) and attaches to the winner. Only the winner submits a run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from irflow import clock
from irflow.audit import AuditChain
from irflow.engine.notifier import OutboxNotifier
from irflow.engine.runs import submit_run
from irflow.engine.runtime import Services
from irflow.engine.sentinel_payload import Delivery
from irflow.engine.sentinel_routing import NoRoute, Route, route
from irflow.notify.outbox import enqueue
from irflow.settings import recipients
from irflow.store.models import Incident, Run

log = structlog.get_logger(__name__)
Outcome = Literal["started", "awaiting_responder", "unrouted", "attached", "updated"]


@dataclass(frozen=True)
class Intake:
    incident_id: str
    run_id: str | None
    deduplicated: bool
    outcome: Outcome


def receive(svc: Services, delivery: Delivery, *, actor: str) -> Intake:
    """Record the delivery; start the routed playbook when its rule says ``auto_start``."""
    existing = _attach(svc, delivery, actor)
    if existing is not None:
        return existing
    decision = route(delivery, svc.settings.playbooks_dir)
    try:
        incident_id = _claim(svc, delivery, decision, actor)
    except IntegrityError:
        attached = _attach(svc, delivery, actor)
        if attached is None:  # the constraint that fired was not the external ref's
            raise
        return attached
    if isinstance(decision, Route) and decision.auto_start:
        try:
            submitted = submit_run(
                svc,
                decision.playbook,
                decision.params,
                actor=actor,
                incident_id=incident_id,
                source="sentinel",
                dedupe_key=f"sentinel:{delivery.external_ref}",
            )
        except ValueError as exc:  # the playbook changed on disk between routing and submitting
            _start_failed(svc, incident_id, decision.playbook, str(exc), actor)
            return Intake(incident_id, None, False, "awaiting_responder")
        log.info("sentinel incident started a run", incident_id=incident_id, run_id=submitted.run_id)
        return Intake(incident_id, submitted.run_id, False, "started")
    outcome: Outcome = "awaiting_responder" if isinstance(decision, Route) else "unrouted"
    log.info("sentinel incident recorded", incident_id=incident_id, outcome=outcome)
    return Intake(incident_id, None, False, outcome)


def _attach(svc: Services, delivery: Delivery, actor: str) -> Intake | None:
    """The existing incident of this delivery; an Update event is audited on it. None when there is none."""
    with svc.db.transaction() as session:
        incident_id = session.scalar(
            select(Incident.id).where(Incident.external_ref == delivery.external_ref)
        )
        if incident_id is None:
            return None
        run_id = session.scalar(
            select(Run.id).where(Run.incident_id == incident_id).order_by(Run.created_at.desc()).limit(1)
        )
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


def _claim(svc: Services, delivery: Delivery, decision: Route | NoRoute, actor: str) -> str:
    chain = AuditChain()
    now = clock.now()
    with svc.db.transaction() as session:
        incident = Incident(
            title=_title(delivery),
            severity=delivery.severity,
            source="sentinel",
            external_ref=delivery.external_ref,
            status="open",
            detected_at=now,
            created_at=now,
            updated_at=now,
            affected_by_state={},
        )
        session.add(incident)
        session.flush()  # the unique external_ref decides here which delivery is first
        chain.append(
            session,
            actor=actor,
            type="incident.opened",
            incident_id=incident.id,
            payload={"title": incident.title, "severity": incident.severity, "source": "sentinel"},
        )
        chain.append(
            session,
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
        if isinstance(decision, NoRoute):
            _escalate(svc, session, incident, actor, reason="No playbook matches this Sentinel incident")
        elif not decision.auto_start:
            _escalate(
                svc,
                session,
                incident,
                actor,
                reason=f"Sentinel incident waits for a responder to start playbook {decision.playbook}",
            )
        return incident.id


def _start_failed(svc: Services, incident_id: str, playbook: str, error: str, actor: str) -> None:
    """The routed playbook could not be submitted: the incident stays recorded and on-call is told."""
    with svc.db.transaction() as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        AuditChain().append(
            session,
            actor=actor,
            type="sentinel.start_failed",
            incident_id=incident_id,
            payload={"playbook": playbook, "error": error[:500]},
        )
        _escalate(svc, session, incident, actor, reason=f"Playbook {playbook} could not start: {error[:200]}")


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
        )
