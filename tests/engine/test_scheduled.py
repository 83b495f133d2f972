"""Scheduled work inside the workers: two ``irflow worker`` processes on PostgreSQL fire the outbox schedule
once per interval between them, and a queued e-mail is delivered once (a real SMTP server, aiosmtpd)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, text

from irflow.notify.outbox import enqueue
from irflow.store.db import Database

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Sink:
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        self.messages.append(message_from_bytes(envelope.content, policy=default_policy))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Sink]]:
    sink = Sink()
    for _ in range(5):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        controller = Controller(sink, hostname="127.0.0.1", port=port)
        try:
            controller.start()
        except (OSError, RuntimeError):
            continue
        break
    else:
        pytest.fail("could not start the SMTP server")
    yield controller.port, sink
    controller.stop()


def _wait(condition, what: str, limit: float = 90.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


def test_outbox_schedule_fires_once_per_interval_across_two_replicas(
    postgres_url: str, smtp, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp
    env = {
        **os.environ,
        "IRFLOW_DATABASE_URL": postgres_url,
        "IRFLOW_QUEUE_POLLING_INTERVAL": "0.05",
        "IRFLOW_REPLICA_LEASE": "3",
        "IRFLOW_OUTBOX_SCHEDULE": "*/2 * * * * *",  # every 2 s
        "IRFLOW_SMTP_HOST": "127.0.0.1",
        "IRFLOW_SMTP_PORT": str(port),
        "IRFLOW_SMTP_FROM": "irflow@example.org",
        "IRFLOW_SMTP_STARTTLS": "false",
        "IRFLOW_LOG_LEVEL": "WARNING",
    }
    assert (
        subprocess.run([sys.executable, "-m", "irflow", "db", "upgrade"], env=env, timeout=120).returncode
        == 0
    )
    db = Database(postgres_url)
    with db.transaction() as session:
        enqueue(
            session,
            channel="email",
            template="internal-escalation",
            recipient="soc-oncall@example.org",
            context={
                "incident": {
                    "id": "inc-1",
                    "title": "Scheduled delivery",
                    "severity": "high",
                    "status": "open",
                },
                "reason": "a test of the outbox schedule",
                "actions": [],
            },
            dedupe_key="test:scheduled-delivery",
            actor="cli:tester",
        )
    workers = []
    logs = []
    sql = create_engine(postgres_url)
    try:
        for name in ("replica-a", "replica-b"):
            logs.append(open(tmp_path / f"{name}.log", "w"))  # noqa: SIM115
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "irflow", "worker"],
                    env={**env, "IRFLOW_EXECUTOR_ID": name},
                    cwd=REPO,
                    stdout=logs[-1],
                    stderr=subprocess.STDOUT,
                )
            )
            if name == "replica-a":  # the first creates DBOS's tables; then the second joins
                _wait(lambda: _has_dbos(sql), "DBOS's tables")

        def firings() -> list[tuple[str, str, str]]:
            with sql.connect() as conn:
                return [
                    tuple(row)
                    for row in conn.execute(
                        text(
                            "SELECT workflow_uuid, status, executor_id FROM dbos.workflow_status "
                            "WHERE name LIKE '%outbox_workflow' ORDER BY workflow_uuid"
                        )
                    ).all()
                ]

        _wait(
            lambda: len([f for f in firings() if f[1] == "SUCCESS"]) >= 6, "six outbox intervals", limit=120
        )
        _wait(lambda: sink.messages, "the e-mail")
        time.sleep(4)  # two more intervals: nothing is sent again
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=30)
        for log in logs:
            log.close()
    fired = firings()
    with sql.connect() as conn:
        passes = Counter(
            conn.execute(
                text(
                    "SELECT o.workflow_uuid FROM dbos.operation_outputs o JOIN dbos.workflow_status w "
                    "ON w.workflow_uuid = o.workflow_uuid WHERE w.name LIKE '%outbox_workflow' "
                    "AND o.function_name LIKE '%deliver_outbox_pass'"
                )
            ).scalars()
        )
        sent = conn.execute(
            text("SELECT count(*) FROM audit_events WHERE type = 'notification.sent'")
        ).scalar_one()
        schedules = conn.execute(text("SELECT count(*) FROM dbos.workflow_schedules")).scalar_one()
    sql.dispose()
    db.dispose()
    # one workflow per scheduled time (its id names the time), each with one delivery pass, on either replica
    assert len(fired) >= 6
    assert all(workflow_id.startswith("sched-irflow-outbox-") for workflow_id, _, _ in fired)
    # every finished firing made exactly one pass; a firing cut off by SIGTERM may have made its one pass too
    succeeded = {workflow_id for workflow_id, status, _ in fired if status == "SUCCESS"}
    assert set(passes.values()) == {1}
    assert succeeded <= set(passes) <= {workflow_id for workflow_id, _, _ in fired}
    ran = [executor for _, status, executor in fired if status == "SUCCESS"]
    assert set(ran) <= {
        "replica-a",
        "replica-b",
    }  # a firing enqueued as the workers stopped waits for the next
    assert schedules == 2  # outbox and reminders, created once though both replicas installed them
    assert len(sink.messages) == 1 and sent == 1
    assert sink.messages[0]["Subject"].startswith("[irflow][HIGH] Escalation")


def _has_dbos(sql) -> bool:  # type: ignore[no-untyped-def]
    with sql.connect() as conn:
        return bool(conn.execute(text("SELECT to_regclass('dbos.workflow_schedules')")).scalar())
