"""Deadline reminders through the outbox: each stage of each deadline is queued exactly once.

Exactly-once comes from the outbox's dedupe key ``reminder:<deadline id>:<stage>:<recipient fingerprint>``,
so running this every hour, from several replicas or again after a crash sends nothing twice. Overdue
deadlines are marked ``overdue`` (audited).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select

from irflow.audit import AuditChain
from irflow.compliance.reminders import OVERDUE, reminder_stage
from irflow.notify.outbox import enqueue
from irflow.redaction import fingerprint
from irflow.store.db import Database
from irflow.store.models import Deadline, Incident, Notification

ACTOR = "irflow-reminders"


@dataclass
class ReminderReport:
    queued: list[str] = field(default_factory=list)
    already_queued: int = 0
    marked_overdue: int = 0


def queue_due_reminders(
    db: Database,
    *,
    today: date,
    recipients: list[str],
    channel: str = "email",
    incident_id: str | None = None,
    preview: bool = False,
) -> ReminderReport:
    """Queue today's reminders (of one incident, or all). ``preview`` lists them and writes nothing."""
    report = ReminderReport()
    chain = AuditChain()
    with db.transaction() as session:
        query = (
            select(Deadline, Incident)
            .join(Incident, Incident.id == Deadline.incident_id)
            .where(Deadline.status.in_(("open", "overdue")))
            .order_by(Deadline.due)
        )
        if incident_id is not None:
            query = query.where(Incident.id == incident_id)
        rows = session.execute(query).all()
        for deadline, incident in rows:
            stage = reminder_stage(deadline.due, today)
            if stage is None:
                continue
            if stage == OVERDUE and deadline.status != "overdue" and not preview:
                deadline.status = "overdue"
                report.marked_overdue += 1
                chain.append(
                    session,
                    actor=ACTOR,
                    type="deadline.overdue",
                    incident_id=incident.id,
                    payload={
                        "kind": deadline.kind,
                        "jurisdiction": deadline.jurisdiction,
                        "due": deadline.due.isoformat(),
                    },
                )
            context = {
                "incident": {"id": incident.id, "title": incident.title},
                "obligation": {
                    "kind": deadline.kind,
                    "jurisdiction": deadline.jurisdiction,
                    "due": deadline.due.isoformat(),
                    "basis": deadline.basis,
                    "notes": deadline.notes,
                    "recipient": deadline.recipient,
                    "outer_bound": deadline.outer_bound.isoformat() if deadline.outer_bound else None,
                },
                "days_left": (deadline.due - today).days,
            }
            for recipient in recipients:
                key = f"reminder:{deadline.id}:{stage}:{fingerprint(recipient)}"
                exists = session.scalar(select(Notification.id).where(Notification.dedupe_key == key))
                if exists:
                    report.already_queued += 1
                    continue
                if preview:
                    report.queued.append(f"{deadline.kind} {deadline.jurisdiction} {stage}")
                    continue
                notification = enqueue(
                    session,
                    channel=channel,
                    template="deadline-reminder",
                    recipient=recipient,
                    context=context,
                    incident_id=incident.id,
                    dedupe_key=key,
                    actor=ACTOR,
                )
                report.queued.append(notification.id)
    return report
