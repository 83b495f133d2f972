"""The notification outbox: store first, deliver later with retries, audit every outcome.

Lifecycle of a row in ``notifications`` (status):

- ``pending``: stored by :func:`enqueue` (audited ``notification.queued``), due at ``next_attempt_at``.
- ``sending``: claimed by a :func:`deliver_due` worker for one attempt (``attempts`` counts it); the claim
  is a lease that ends at ``next_attempt_at``. A worker that dies mid-send leaves the row to be claimed
  again when the lease ends (audited ``notification.attempt_abandoned``): delivery is at least once.
- ``sent``: the channel accepted it (``notification.sent``).
- back to ``pending`` with a later ``next_attempt_at`` after a retryable error while attempts remain
  (``notification.retry_scheduled``; backoff 30 s × 2^(attempt-1), capped at 1 h, never shorter than the
  peer's ``Retry-After``).
- ``failed``: a permanent error, or the last attempt failed (``notification.failed``). Failed rows are
  listed by every :class:`DeliveryReport` that produced them and by :func:`failed_notifications`;
  :func:`requeue` sends one again.

Rows are claimed in short transactions (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so replicas never claim
the same row; SQLite: every transaction holds the write lock), the network send happens outside any
transaction, and each outcome is written with its audit event in one transaction. The recipient address
is stored only in ``recipient``; logs and audit payloads carry ``recipient_fingerprint``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from irflow import clock
from irflow.audit.chain import AuditChain
from irflow.logs import get_logger
from irflow.notify.channels import Channel, DeliveryError, Message, scrub
from irflow.notify.render import content_type_of, render
from irflow.redaction import fingerprint
from irflow.store.db import Database
from irflow.store.models import Notification, new_id
from irflow.store.unique import insert_unique

log = get_logger(__name__)

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"
STATUSES = (PENDING, SENDING, SENT, FAILED)
DEFAULT_MAX_ATTEMPTS = 5
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)
LEASE = timedelta(minutes=5)
SYSTEM_ACTOR = "system:notify"
_MAX_ERROR = 500
_CHANNEL_NAME_MAX = 24


@dataclass(frozen=True)
class FailedNotification:
    id: str
    channel: str
    template: str
    recipient_fingerprint: str
    incident_id: str | None
    attempts: int
    error: str


@dataclass
class DeliveryReport:
    """What one :func:`deliver_due` pass did (notification ids)."""

    sent: list[str] = field(default_factory=list)
    retry_scheduled: list[str] = field(default_factory=list)
    failed: list[FailedNotification] = field(default_factory=list)
    lost_lease: list[str] = field(default_factory=list)
    # Due notifications whose channel has no configured Channel: left pending, counted per channel.
    unroutable: dict[str, int] = field(default_factory=dict)

    @property
    def attempted(self) -> int:
        return len(self.sent) + len(self.retry_scheduled) + len(self.failed) + len(self.lost_lease)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.unroutable


def backoff(attempt: int, *, base: timedelta = BACKOFF_BASE, cap: timedelta = BACKOFF_CAP) -> timedelta:
    """The wait after failed attempt number *attempt* (1-based): base × 2^(attempt-1), at most *cap*."""
    exponent = max(0, attempt - 1)
    if exponent >= 32:
        return cap
    return min(base * (2**exponent), cap)


# ------------------------------------------------------------------------------------------------
# Enqueue
# ------------------------------------------------------------------------------------------------


def enqueue(
    session: Session,
    *,
    channel: str,
    template: str,
    recipient: str,
    context: Mapping[str, Any],
    incident_id: str | None = None,
    dedupe_key: str | None = None,
    actor: str,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    templates_dir: Path | None = None,
    new_key: bool = False,
) -> Notification:
    """Render *template* with *context* and store it as a pending notification, audited
    ``notification.queued``, in the caller's transaction. With a *dedupe_key* already used, return that
    notification and write nothing. Raises :class:`~irflow.notify.render.RenderError` (nothing stored)
    when the template does not render.

    ``new_key=True`` is for a caller whose *dedupe_key* cannot have been used (it names an incident created
    in the caller's transaction): the row is added without a look-up or a savepoint and written by the
    transaction's next flush; a taken key would fail the whole transaction, never write a second row."""
    if not channel or len(channel) > _CHANNEL_NAME_MAX:
        raise ValueError(f"channel name must be 1 to {_CHANNEL_NAME_MAX} characters")
    if not recipient or not recipient.strip():
        raise ValueError("a notification needs a recipient")
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    rendered = render(template, context, templates_dir=templates_dir)
    now = clock.now()
    notification = Notification(
        incident_id=incident_id,
        dedupe_key=dedupe_key,
        channel=channel,
        template=rendered.template,
        recipient=recipient.strip(),
        recipient_fingerprint=fingerprint(recipient.strip()),
        subject=rendered.subject[:500],
        body=rendered.body,
        status=PENDING,
        attempts=0,
        max_attempts=max_attempts,
        next_attempt_at=now,
        created_at=now,
    )
    if new_key:
        notification.id = new_id()  # the audit event names it before the flush that inserts it
        session.add(notification)
    elif dedupe_key is not None:
        notification, created = insert_unique(
            session, notification, select(Notification).where(Notification.dedupe_key == dedupe_key)
        )
        if not created:
            return notification
    else:
        session.add(notification)
        session.flush()
    AuditChain().append(
        session,
        actor=actor,
        type="notification.queued",
        incident_id=incident_id,
        payload={
            "notification_id": notification.id,
            "channel": channel,
            "template": rendered.template,
            "recipient_fingerprint": notification.recipient_fingerprint,
            "dedupe_key": dedupe_key,
            "max_attempts": max_attempts,
        },
    )
    log.info(
        "notification queued",
        notification_id=notification.id,
        channel=channel,
        template=rendered.template,
        recipient_fingerprint=notification.recipient_fingerprint,
        incident_id=incident_id,
    )
    return notification


# ------------------------------------------------------------------------------------------------
# Delivery
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Claim:
    id: str
    attempt: int
    max_attempts: int
    channel: str
    template: str
    incident_id: str | None
    recipient: str
    recipient_fingerprint: str
    subject: str
    body: str


def deliver_due(
    db: Database,
    channels: Mapping[str, Channel],
    *,
    now: datetime | None = None,
    limit: int = 100,
    actor: str = SYSTEM_ACTOR,
    lease: timedelta = LEASE,
    backoff_base: timedelta = BACKOFF_BASE,
    backoff_cap: timedelta = BACKOFF_CAP,
) -> DeliveryReport:
    """Deliver up to *limit* notifications due at *now* (default ``clock.now()``) through *channels*
    (keyed by ``Notification.channel``) and record every outcome with its audit event."""
    now = now or clock.now()
    report = DeliveryReport()
    claims = _claim(db, list(channels), now=now, limit=limit, actor=actor, lease=lease, report=report)
    for claim in claims:
        error: DeliveryError | None = None
        try:
            channels[claim.channel].send(_message(claim))
        except DeliveryError as exc:
            error = exc
        except Exception as exc:  # a channel bug must not stop the other notifications
            error = DeliveryError(f"unexpected {type(exc).__name__}: {exc}", retryable=True)
        _record(
            db, claim, error, actor=actor, report=report, backoff_base=backoff_base, backoff_cap=backoff_cap
        )
    _count_unroutable(db, list(channels), now=now, report=report)
    return report


def _message(claim: _Claim) -> Message:
    return Message(
        recipient=claim.recipient,
        subject=claim.subject,
        body=claim.body,
        content_type=content_type_of(claim.template),
        notification_id=claim.id,
        incident_id=claim.incident_id,
        template=claim.template,
    )


def _due(now: datetime):  # type: ignore[no-untyped-def]
    return Notification.status.in_((PENDING, SENDING)) & (Notification.next_attempt_at <= now)


def _claim(
    db: Database,
    channel_names: list[str],
    *,
    now: datetime,
    limit: int,
    actor: str,
    lease: timedelta,
    report: DeliveryReport,
) -> list[_Claim]:
    if not channel_names or limit < 1:
        return []
    claims: list[_Claim] = []
    with db.transaction() as session:
        query = (
            select(Notification)
            .where(_due(now), Notification.channel.in_(channel_names))
            .order_by(Notification.next_attempt_at, Notification.created_at, Notification.id)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = session.execute(query).scalars().all()
        chain = AuditChain()
        for row in rows:
            if row.status == SENDING:  # a worker died mid-send: its lease has run out
                chain.append(
                    session,
                    actor=actor,
                    type="notification.attempt_abandoned",
                    incident_id=row.incident_id,
                    payload={
                        "notification_id": row.id,
                        "attempt": row.attempts,
                        "recipient_fingerprint": row.recipient_fingerprint,
                    },
                )
                if row.attempts >= row.max_attempts:
                    row.last_error = "delivery outcome unknown: the worker stopped during the last attempt"
                    _fail(session, chain, row, actor=actor, report=report)
                    continue
            row.status = SENDING
            row.attempts += 1
            row.next_attempt_at = now + lease
            claims.append(
                _Claim(
                    id=row.id,
                    attempt=row.attempts,
                    max_attempts=row.max_attempts,
                    channel=row.channel,
                    template=row.template,
                    incident_id=row.incident_id,
                    recipient=row.recipient,
                    recipient_fingerprint=row.recipient_fingerprint,
                    subject=row.subject,
                    body=row.body,
                )
            )
    return claims


def _record(
    db: Database,
    claim: _Claim,
    error: DeliveryError | None,
    *,
    actor: str,
    report: DeliveryReport,
    backoff_base: timedelta,
    backoff_cap: timedelta,
) -> None:
    with db.transaction() as session:
        row = session.execute(
            select(Notification)
            .where(
                Notification.id == claim.id,
                Notification.status == SENDING,
                Notification.attempts == claim.attempt,
            )
            .with_for_update()
        ).scalar_one_or_none()
        if row is None:  # our lease ran out and another worker took the row over
            report.lost_lease.append(claim.id)
            log.warning("notification lease lost", notification_id=claim.id, attempt=claim.attempt)
            return
        chain = AuditChain()
        now = clock.now()
        base = {
            "notification_id": row.id,
            "channel": row.channel,
            "template": row.template,
            "recipient_fingerprint": row.recipient_fingerprint,
            "attempt": claim.attempt,
        }
        if error is None:
            row.status, row.sent_at, row.next_attempt_at, row.last_error = SENT, now, None, None
            chain.append(
                session, actor=actor, type="notification.sent", incident_id=row.incident_id, payload=base
            )
            report.sent.append(row.id)
            log.info("notification sent", **base)
            return
        message = scrub(str(error), claim.recipient)[:_MAX_ERROR]
        row.last_error = message
        if error.retryable and claim.attempt < row.max_attempts:
            wait = backoff(claim.attempt, base=backoff_base, cap=backoff_cap)
            if error.retry_after is not None:
                wait = max(wait, min(timedelta(seconds=error.retry_after), backoff_cap))
            row.status, row.next_attempt_at = PENDING, now + wait
            chain.append(
                session,
                actor=actor,
                type="notification.retry_scheduled",
                incident_id=row.incident_id,
                payload={
                    **base,
                    "error": message,
                    "retryable": True,
                    "next_attempt_at": row.next_attempt_at.isoformat(),
                    "max_attempts": row.max_attempts,
                },
            )
            report.retry_scheduled.append(row.id)
            log.warning(
                "notification retry scheduled", **base, error=message, wait_seconds=wait.total_seconds()
            )
            return
        _fail(session, chain, row, actor=actor, report=report, retryable=error.retryable)


def _fail(
    session: Session,
    chain: AuditChain,
    row: Notification,
    *,
    actor: str,
    report: DeliveryReport,
    retryable: bool | None = None,
) -> None:
    row.status, row.next_attempt_at = FAILED, None
    error = row.last_error or "unknown error"
    chain.append(
        session,
        actor=actor,
        type="notification.failed",
        incident_id=row.incident_id,
        payload={
            "notification_id": row.id,
            "channel": row.channel,
            "template": row.template,
            "recipient_fingerprint": row.recipient_fingerprint,
            "attempts": row.attempts,
            "max_attempts": row.max_attempts,
            "error": error,
            "retryable": retryable,
        },
    )
    report.failed.append(_failed(row))
    log.error(
        "notification failed",
        notification_id=row.id,
        channel=row.channel,
        template=row.template,
        recipient_fingerprint=row.recipient_fingerprint,
        attempts=row.attempts,
        error=error,
    )


def _failed(row: Notification) -> FailedNotification:
    return FailedNotification(
        id=row.id,
        channel=row.channel,
        template=row.template,
        recipient_fingerprint=row.recipient_fingerprint,
        incident_id=row.incident_id,
        attempts=row.attempts,
        error=row.last_error or "",
    )


def _count_unroutable(
    db: Database, channel_names: list[str], *, now: datetime, report: DeliveryReport
) -> None:
    with db.transaction() as session:
        query = select(Notification.channel, func.count()).where(_due(now)).group_by(Notification.channel)
        if channel_names:
            query = query.where(Notification.channel.not_in(channel_names))
        for name, count in session.execute(query).all():
            report.unroutable[name] = count
    for name, count in report.unroutable.items():
        log.warning("notifications due on an unconfigured channel", channel=name, count=count)


# ------------------------------------------------------------------------------------------------
# Surfacing and re-queueing failures
# ------------------------------------------------------------------------------------------------


def failed_notifications(session: Session, *, incident_id: str | None = None) -> list[FailedNotification]:
    """Every notification that has failed for good (oldest first), for dashboards, reminders and reports."""
    query = select(Notification).where(Notification.status == FAILED)
    if incident_id is not None:
        query = query.where(Notification.incident_id == incident_id)
    return [_failed(row) for row in session.execute(query.order_by(Notification.created_at)).scalars()]


def requeue(
    session: Session, notification_id: str, *, actor: str, max_attempts: int | None = None
) -> Notification:
    """Send a failed notification again: back to ``pending``, due now, with a fresh attempt budget
    (``attempts`` is kept as the total; ``max_attempts`` grows by the budget).
    Audited ``notification.requeued``."""
    row = session.execute(
        select(Notification).where(Notification.id == notification_id).with_for_update()
    ).scalar_one_or_none()
    if row is None:
        raise LookupError(f"no notification {notification_id}")
    if row.status != FAILED:
        raise ValueError(
            f"notification {notification_id} is {row.status}, only a failed one can be re-queued"
        )
    budget = max_attempts if max_attempts is not None else DEFAULT_MAX_ATTEMPTS
    if budget < 1:
        raise ValueError("max_attempts must be at least 1")
    row.status, row.next_attempt_at = PENDING, clock.now()
    row.max_attempts = row.attempts + budget
    AuditChain().append(
        session,
        actor=actor,
        type="notification.requeued",
        incident_id=row.incident_id,
        payload={
            "notification_id": row.id,
            "recipient_fingerprint": row.recipient_fingerprint,
            "attempts": row.attempts,
            "max_attempts": row.max_attempts,
        },
    )
    return row


def pending_count(session: Session) -> int:
    return session.execute(
        select(func.count()).where(or_(Notification.status == PENDING, Notification.status == SENDING))
    ).scalar_one()


__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "DeliveryReport",
    "FailedNotification",
    "backoff",
    "deliver_due",
    "enqueue",
    "failed_notifications",
    "pending_count",
    "requeue",
]
