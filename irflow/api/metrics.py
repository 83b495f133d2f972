"""Prometheus metrics read from the database at scrape time, so every replica reports the same truth."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from irflow.engine.machines import RUN_STATES, STEP_STATES, STEP_TERMINAL
from irflow.store.db import Database
from irflow.store.models import AuditEvent, AuditHead, Notification, Run, Step

# Seconds from a step's first attempt to its end: Azure calls take seconds, long-running operations minutes.
DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600)
WEBHOOK_EVENT_PREFIX = "sentinel."


class StoreCollector(Collector):
    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily | HistogramMetricFamily]:
        runs = GaugeMetricFamily("irflow_runs", "Playbook runs by status.", labels=["status"])
        steps = GaugeMetricFamily("irflow_steps", "Step executions by state.", labels=["state"])
        audit = GaugeMetricFamily("irflow_audit_events", "Events in the audit chain.")
        webhooks = GaugeMetricFamily(
            "irflow_webhook_deliveries", "Sentinel webhook outcomes (audit events).", labels=["outcome"]
        )
        notifications = GaugeMetricFamily(
            "irflow_notifications",
            "Outbox notifications by status and channel.",
            labels=["status", "channel"],
        )
        queue = GaugeMetricFamily(
            "irflow_queue_depth", "Submitted work not started yet: runs and step targets.", labels=["kind"]
        )
        with self.db.transaction() as session:
            run_counts = dict(session.execute(select(Run.status, func.count()).group_by(Run.status)).all())
            step_counts = dict(session.execute(select(Step.state, func.count()).group_by(Step.state)).all())
            head = session.get(AuditHead, 1)
            webhook_counts = session.execute(
                select(AuditEvent.type, func.count())
                .where(AuditEvent.type.startswith(WEBHOOK_EVENT_PREFIX))
                .group_by(AuditEvent.type)
            ).all()
            notification_counts = session.execute(
                select(Notification.status, Notification.channel, func.count()).group_by(
                    Notification.status, Notification.channel
                )
            ).all()
            spans = session.execute(
                select(Step.first_attempt_at, Step.updated_at).where(
                    Step.state.in_(STEP_TERMINAL), Step.first_attempt_at.is_not(None)
                )
            ).all()
        for status in RUN_STATES:
            runs.add_metric([status], run_counts.get(status, 0))
        for state in STEP_STATES:
            steps.add_metric([state], step_counts.get(state, 0))
        audit.add_metric([], head.seq if head else 0)
        for event_type, count in webhook_counts:
            webhooks.add_metric([event_type.removeprefix(WEBHOOK_EVENT_PREFIX)], count)
        for status, channel, count in notification_counts:
            notifications.add_metric([status, channel], count)
        queue.add_metric(["run"], run_counts.get("pending", 0))
        queue.add_metric(["step"], step_counts.get("pending", 0))
        yield runs
        yield steps
        yield audit
        yield webhooks
        yield notifications
        yield queue
        yield _durations([(end - start).total_seconds() for start, end in spans])


def _durations(seconds: list[float]) -> HistogramMetricFamily:
    buckets = [(str(bound), sum(1 for s in seconds if s <= bound)) for bound in DURATION_BUCKETS]
    buckets.append(("+Inf", len(seconds)))
    family = HistogramMetricFamily(
        "irflow_step_duration_seconds", "Finished steps: time from first attempt to the end."
    )
    family.add_metric([], buckets, sum_value=sum(seconds))
    return family
