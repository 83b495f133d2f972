"""Notification obligations across incidents, and the notices of one incident."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import func, select

from irflow.compliance.delay import tolling_periods
from irflow.compliance.models import LawEnforcementDelay
from irflow.engine.incidents import (
    NoticeCopy,
    NoticeSentInput,
    ObligationSent,
    record_obligation_sent,
)
from irflow.engine.incidents import record_notice_sent as record_notice_by_kind
from irflow.engine.services.errors import Conflict, NotFound, messages
from irflow.engine.services.principals import Principal
from irflow.engine.services.views import DeadlineView, Facts, NoticeSentView, Page
from irflow.store.db import Database
from irflow.store.models import Deadline, Incident, Notification

DeadlineStatus = Literal["open", "met", "overdue", "tolled", "late", "not_required"]


class DeadlineFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    due_before: date | None = Field(default=None, description="Only obligations due before this date.")
    status: DeadlineStatus | None = None
    incident_id: str | None = Field(default=None, max_length=36)
    limit: int = Field(default=100, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=1_000_000)


def _view(d: Deadline) -> DeadlineView:
    return DeadlineView(
        id=d.id,
        incident_id=d.incident_id,
        kind=d.kind,
        jurisdiction=d.jurisdiction,
        due=d.due,
        basis=d.basis,
        notes=d.notes,
        status=d.status,
        recipient=d.recipient,
        sent_on=d.sent_on,
        outer_bound=d.outer_bound,
        outer_basis=d.outer_basis,
        hipaa_treatment=d.hipaa_treatment,
    )


def list_deadlines(db: Database, query: DeadlineFilter) -> Page[DeadlineView]:
    conditions = []
    if query.due_before:
        conditions.append(Deadline.due < query.due_before)
    if query.status:
        conditions.append(Deadline.status == query.status)
    if query.incident_id:
        conditions.append(Deadline.incident_id == query.incident_id)
    with db.transaction() as session:
        total = session.execute(select(func.count()).select_from(Deadline).where(*conditions)).scalar_one()
        rows = session.execute(
            select(Deadline)
            .where(*conditions)
            .order_by(Deadline.due, Deadline.kind, Deadline.jurisdiction, Deadline.id)
            .limit(query.limit)
            .offset(query.offset)
        ).scalars()
        items = [_view(d) for d in rows]
    return Page[DeadlineView](items=items, total=total, limit=query.limit, offset=query.offset)


class NotificationView(BaseModel):
    id: str
    status: str
    channel: str
    template: str
    recipient: str = Field(description="A fingerprint of the address; drafts name their audience.")
    subject: str
    attempts: int
    created_at: datetime
    sent_at: datetime | None


class NotificationDetail(NotificationView):
    body: str


class IncidentNotices(BaseModel):
    obligations: list[DeadlineView]
    notifications: list[NotificationView]


class NoticeRecordedView(BaseModel):
    notice: NoticeSentView
    deadlines: list[DeadlineView] = Field(description="The incident's obligations after the recording.")
    deadline_changes: list[dict[str, Any]] = Field(
        description="Each obligation whose due date or status moved: kind, jurisdiction, old_due, new_due."
    )
    warnings: list[str]


def _notification_view(n: Notification, cls: type[NotificationView] = NotificationView) -> NotificationView:
    extra = {"body": n.body} if cls is NotificationDetail else {}
    return cls(
        id=n.id,
        status=n.status,
        channel=n.channel,
        template=n.template,
        recipient=n.recipient if n.channel == "draft" else n.recipient_fingerprint,
        subject=n.subject,
        attempts=n.attempts,
        created_at=n.created_at,
        sent_at=n.sent_at,
        **extra,
    )


def incident_notices(db: Database, incident_id: str) -> IncidentNotices:
    with db.transaction() as session:
        if session.get(Incident, incident_id) is None:
            raise NotFound(f"no incident {incident_id}")
        deadlines = session.execute(
            select(Deadline).where(Deadline.incident_id == incident_id).order_by(Deadline.due, Deadline.kind)
        ).scalars()
        notifications = session.execute(
            select(Notification)
            .where(Notification.incident_id == incident_id)
            .order_by(Notification.created_at, Notification.id)
        ).scalars()
        return IncidentNotices(
            obligations=[_view(d) for d in deadlines],
            notifications=[_notification_view(n) for n in notifications],
        )


def show_notification(
    db: Database, notification_id: str, incident_id: str | None = None
) -> NotificationDetail:
    """One notification; with *incident_id*, only if it belongs to that incident."""
    with db.transaction() as session:
        n = session.get(Notification, notification_id)
        if n is None or (incident_id is not None and n.incident_id != incident_id):
            where = f" for incident {incident_id}" if incident_id else ""
            raise NotFound(f"no notification {notification_id}{where}")
        return _notification_view(n, NotificationDetail)  # type: ignore[return-value]


def record_notice_sent(
    db: Database, incident_id: str, obligation_id: str, command: ObligationSent, *, by: Principal
) -> NoticeRecordedView:
    """The obligation becomes met (or late) and the deadlines that run from its send date move (audited)."""
    return _recorded(
        incident_id, lambda: record_obligation_sent(db, incident_id, obligation_id, command, author=by.actor)
    )


def _recorded(incident_id: str, record: Any) -> NoticeRecordedView:
    """Run *record* (a notice recording), mapping its refusals to service errors, and view what it changed."""
    try:
        recorded = record()
    except LookupError as exc:  # no incident, or no such obligation
        raise NotFound(str(exc)) from None
    except ValidationError as exc:  # the facts no longer make a whole
        raise Conflict(messages(exc)) from None
    except ValueError as exc:  # future date, before discovery, second recording, count too high
        raise Conflict(str(exc)) from None
    return NoticeRecordedView(
        notice=NoticeSentView.model_validate(recorded.notice),
        deadlines=[
            DeadlineView.model_validate({**row, "incident_id": incident_id}) for row in recorded.deadlines
        ],
        deadline_changes=recorded.deadline_changes,
        warnings=recorded.warnings,
    )


class NoticeRecord(NoticeSentInput):
    """A notice as sent, named by its obligation's kind, jurisdiction and (when the jurisdiction names several
    regulators) recipient; with the SHA-256 and size of the copy as sent, when one is kept."""

    copy_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    copy_size: int | None = Field(default=None, ge=0, le=2**53)

    @model_validator(mode="after")
    def _copy_whole(self) -> NoticeRecord:
        if (self.copy_sha256 is None) != (self.copy_size is None):
            raise ValueError("copy_sha256 and copy_size go together")
        return self


def record_notice(
    db: Database, incident_id: str, command: NoticeRecord, *, by: Principal
) -> NoticeRecordedView:
    """The obligation becomes met (or late) and the deadlines that run from its send date move (audited)."""
    notice = NoticeSentInput.model_validate(command.model_dump(exclude={"copy_sha256", "copy_size"}))
    copy = (
        NoticeCopy(sha256=command.copy_sha256, size=command.copy_size)
        if command.copy_sha256 is not None and command.copy_size is not None
        else None
    )
    return _recorded(
        incident_id, lambda: record_notice_by_kind(db, incident_id, notice, author=by.actor, copy=copy)
    )


class TollingView(BaseModel):
    """A period a law-enforcement delay covers: ``start`` inclusive, ``end`` exclusive (the day it ends)."""

    start: date
    end: date
    source: str


def tolling(facts: Facts) -> list[TollingView]:
    """The periods the incident's law-enforcement delay covers (45 CFR 164.412), merged."""
    if not facts.law_enforcement_delay:
        return []
    delay = LawEnforcementDelay.model_validate(facts.law_enforcement_delay)
    periods, _warnings = tolling_periods(delay)
    return [TollingView(start=p.start, end=p.end, source=p.source) for p in periods]
