"""Prometheus metrics read from the database at scrape time, so every replica reports the same truth."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from irflow.engine.machines import RUN_STATES, STEP_STATES
from irflow.store.db import Database
from irflow.store.models import AuditHead, Run, Step


class StoreCollector(Collector):
    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        runs = GaugeMetricFamily("irflow_runs", "Playbook runs by status.", labels=["status"])
        steps = GaugeMetricFamily("irflow_steps", "Step executions by state.", labels=["state"])
        audit = GaugeMetricFamily("irflow_audit_events", "Events in the audit chain.")
        with self.db.transaction() as session:
            run_counts = dict(session.execute(select(Run.status, func.count()).group_by(Run.status)).all())
            step_counts = dict(session.execute(select(Step.state, func.count()).group_by(Step.state)).all())
            head = session.get(AuditHead, 1)
        for status in RUN_STATES:
            runs.add_metric([status], run_counts.get(status, 0))
        for state in STEP_STATES:
            steps.add_metric([state], step_counts.get(state, 0))
        audit.add_metric([], head.seq if head else 0)
        yield runs
        yield steps
        yield audit
