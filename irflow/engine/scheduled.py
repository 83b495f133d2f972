"""Scheduled work inside the workers: outbox delivery (with its retries) and deadline reminders.

Both are DBOS scheduled workflows. DBOS's scheduler, running in every replica, enqueues each firing under
the workflow id ``sched-<schedule>-<scheduled time>``; a second replica firing the same interval finds that
id taken, so each interval runs once across replicas, on whichever replica dequeues it. The logic itself
lives in :mod:`irflow.engine.notifier` (delivery, claim-based: a message is never sent twice) and
:mod:`irflow.engine.reminders` (each stage of each deadline queued once by its dedupe key).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dbos import DBOS

from irflow.logs import get_logger

OUTBOX_SCHEDULE = "irflow-outbox"
REMINDER_SCHEDULE = "irflow-reminders"

log = get_logger("irflow.scheduled")


def _services() -> Any:
    # DBOS schedules these module-level workflows by name: they cannot be handed a Services object.
    from irflow.engine.runtime import services

    return services()


@DBOS.step()
def deliver_outbox_pass() -> dict[str, int]:
    """One delivery pass: messages due now (new ones, and retries whose backoff has passed)."""
    from irflow.engine.notifier import OutboxNotifier

    svc = _services()
    try:
        report = OutboxNotifier(svc.db, svc.settings).deliver_pending()
    except ValueError as exc:  # a channel configured incompletely: the messages wait in the outbox
        log.warning("outbox not delivered", reason=str(exc))
        return {"sent": 0, "retrying": 0, "failed": 0}
    return {"sent": len(report.sent), "retrying": len(report.retry_scheduled), "failed": len(report.failed)}


@DBOS.step()
def queue_reminders() -> dict[str, int]:
    """Today's reminders (T-30/14/7/3/1, overdue), today being the organisation's calendar date."""
    from irflow.engine.reminders import queue_due_reminders
    from irflow.engine.services.outbox import organisation_today
    from irflow.settings import recipients

    svc = _services()
    addresses = recipients(svc.settings.compliance_recipients)
    if not addresses:
        return {"queued": 0, "overdue": 0}
    today = organisation_today(svc.settings)
    report = queue_due_reminders(svc.db, today=today, recipients=addresses)
    return {"queued": len(report.queued), "overdue": report.marked_overdue}


@DBOS.workflow()
def outbox_workflow(scheduled_at: datetime, context: Any) -> None:
    deliver_outbox_pass()  # its counts are recorded as the step's output


@DBOS.workflow()
def reminders_workflow(scheduled_at: datetime, context: Any) -> None:
    if queue_reminders()["queued"]:
        deliver_outbox_pass()


def install(outbox_cron: str, reminder_cron: str, timezone: str) -> None:
    """Create or update the two schedules in the system database (any replica may do it, at launch)."""
    from dbos._error import DBOSException

    wanted = {
        OUTBOX_SCHEDULE: (outbox_workflow, outbox_cron, None),
        REMINDER_SCHEDULE: (reminders_workflow, reminder_cron, timezone),
    }
    existing = {s["schedule_name"]: s for s in DBOS.list_schedules()}
    for name, (workflow, cron, zone) in wanted.items():
        current = existing.get(name)
        if current is not None and current["schedule"] == cron and current.get("cron_timezone") == zone:
            continue
        if current is not None:
            DBOS.delete_schedule(name)
        try:
            DBOS.create_schedule(schedule_name=name, workflow_fn=workflow, schedule=cron, cron_timezone=zone)
        except DBOSException as exc:  # another replica created it at the same moment
            if "already exists" not in str(exc):
                raise
