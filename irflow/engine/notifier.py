"""The outbox port handed to notify.* actions: preview, queue (idempotent by key), look up, deliver."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select

from irflow import clock
from irflow.audit import AuditChain
from irflow.engine.reminders import queue_due_reminders
from irflow.engine.state import ENGINE_ACTOR
from irflow.notify.config import channels_from_settings
from irflow.notify.outbox import DeliveryReport, deliver_due, enqueue
from irflow.notify.render import render
from irflow.redaction import fingerprint
from irflow.settings import Settings, recipients
from irflow.store.db import Database
from irflow.store.models import Notification
from irflow.store.unique import insert_unique


class OutboxNotifier:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    @staticmethod
    def dedupe_key(*parts: str) -> str:
        """A stable key for one message; hashed, so no recipient or text appears in it."""
        return "notify:" + hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()

    def oncall_recipients(self) -> list[str]:
        return recipients(self.settings.oncall_recipients)

    def preview(self, template: str, context: dict[str, Any]) -> str:
        return render(template, context, templates_dir=self.settings.templates_dir).subject

    def exists(self, dedupe_key: str) -> bool:
        with self.db.transaction() as session:
            return (
                session.scalar(select(Notification.id).where(Notification.dedupe_key == dedupe_key))
                is not None
            )

    def queue(
        self,
        *,
        channel: str,
        template: str,
        recipient: str,
        context: dict[str, Any],
        incident_id: str | None,
        dedupe_key: str,
    ) -> str:
        with self.db.transaction() as session:
            notification = enqueue(
                session,
                channel=channel,
                template=template,
                recipient=recipient,
                context=context,
                incident_id=incident_id,
                dedupe_key=dedupe_key,
                actor=ENGINE_ACTOR,
                templates_dir=self.settings.templates_dir,
            )
            return notification.id

    def compliance_recipients(self) -> list[str]:
        return recipients(self.settings.compliance_recipients)

    def reminders(self, incident_id: str, addresses: list[str], *, preview: bool) -> list[str]:
        """Today's reminders of one incident: what would be queued (preview), or the queued ids."""
        report = queue_due_reminders(
            self.db, today=clock.now().date(), recipients=addresses, incident_id=incident_id, preview=preview
        )
        return report.queued

    def incident_facts(self, incident_id: str) -> dict[str, Any]:
        """Facts and deadlines of the incident (no PHI: dates, counts, obligations)."""
        from irflow.engine.incidents import incident_view

        return incident_view(self.db, incident_id)

    def draft(
        self, *, template: str, context: dict[str, Any], incident_id: str, dedupe_key: str, label: str
    ) -> str | None:
        """Store a rendered notice for review (status ``draft``: never delivered). None when it exists."""
        rendered = render(template, context, templates_dir=self.settings.templates_dir)
        with self.db.transaction() as session:
            now = clock.now()
            notification = Notification(
                incident_id=incident_id,
                dedupe_key=dedupe_key,
                channel="draft",
                template=template,
                recipient=label,
                recipient_fingerprint=fingerprint(label),
                subject=rendered.subject,
                body=rendered.body,
                status="draft",
                attempts=0,
                max_attempts=0,
                created_at=now,
            )
            notification, created = insert_unique(
                session, notification, select(Notification).where(Notification.dedupe_key == dedupe_key)
            )
            if not created:
                return None
            AuditChain().append(
                session,
                actor=ENGINE_ACTOR,
                type="notice.drafted",
                incident_id=incident_id,
                payload={"notification_id": notification.id, "template": template, "for": label},
            )
            return notification.id

    def deliver_pending(self) -> DeliveryReport:
        return deliver_due(self.db, channels_from_settings(self.settings))
