"""The outbox from a command: one delivery pass, and the deadline reminders due on a day.

The rules: a delivery pass goes over the configured channels only (a notification for an unconfigured one
waits); reminders need their recipients (``IRFLOW_COMPLIANCE_RECIPIENTS``) and, to be delivered at once, the
e-mail channel. Each reminder is queued once (T-30/14/7/3/1, overdue); see irflow/engine/reminders.py.
"""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from irflow import clock
from irflow.engine.reminders import queue_due_reminders
from irflow.engine.services.errors import Invalid
from irflow.notify.config import channels_from_settings
from irflow.notify.outbox import deliver_due
from irflow.settings import Settings, recipients
from irflow.store.db import Database


class DeliveryPass(BaseModel):
    sent: int
    retry_scheduled: int
    failed: int
    unroutable: int = Field(description="Waiting for a channel that is not configured here.")


class RemindersQueued(BaseModel):
    day: date
    queued: int
    already_queued: int = Field(description="Reminders of this day queued by an earlier pass.")
    marked_overdue: int
    delivery: DeliveryPass | None = Field(description="The delivery pass that followed (none: queue only).")


def _channels(settings: Settings) -> dict[str, object]:
    try:
        return channels_from_settings(settings)
    except ValueError as exc:  # a channel configured incompletely
        raise Invalid(str(exc)) from None


def _deliver(db: Database, channels: dict[str, object]) -> DeliveryPass:
    report = deliver_due(db, channels)  # type: ignore[arg-type]
    return DeliveryPass(
        sent=len(report.sent),
        retry_scheduled=len(report.retry_scheduled),
        failed=len(report.failed),
        unroutable=sum(report.unroutable.values()),
    )


def deliver_outbox(db: Database, settings: Settings) -> DeliveryPass:
    """One delivery pass of the outbox over the channels configured in *settings*."""
    return _deliver(db, _channels(settings))


def organisation_today(settings: Settings) -> date:
    """Today in the organisation's time zone (``IRFLOW_TIMEZONE``): the calendar deadlines count in, and the
    day the scheduled reminders (irflow/engine/scheduled.py) act as."""
    return clock.now().astimezone(ZoneInfo(settings.timezone)).date()


def queue_reminders(
    db: Database, settings: Settings, *, day: date | None = None, deliver: bool
) -> RemindersQueued:
    """Queue the reminders due on *day* (default: :func:`organisation_today`), each exactly once; with
    *deliver*, deliver the outbox next."""
    day = organisation_today(settings) if day is None else day
    addresses = recipients(settings.compliance_recipients)
    if not addresses:
        raise Invalid(
            "IRFLOW_COMPLIANCE_RECIPIENTS is empty: set the addresses that receive deadline reminders"
        )
    channels = _channels(settings) if deliver else {}
    if deliver and "email" not in channels:
        raise Invalid(
            "delivering reminders needs the e-mail channel: set IRFLOW_SMTP_HOST and IRFLOW_SMTP_FROM "
            "(or use --queue-only)"
        )
    report = queue_due_reminders(db, today=day, recipients=addresses)
    return RemindersQueued(
        day=day,
        queued=len(report.queued),
        already_queued=report.already_queued,
        marked_overdue=report.marked_overdue,
        delivery=_deliver(db, channels) if deliver else None,
    )
