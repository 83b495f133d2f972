"""Deadline reminders fire at T-30, T-14, T-7, T-3, T-1 and when overdue, each exactly once."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from irflow.audit import AuditChain
from irflow.compliance.reminders import reminder_stage
from irflow.engine.incidents import FactsUpdate, NoticeSentInput, record_notice_sent, update_facts
from irflow.engine.reminders import queue_due_reminders
from irflow.engine.state import StateStore
from irflow.store.db import Database
from irflow.store.models import Deadline, Notification

DUE = date(2026, 5, 1)


@pytest.mark.parametrize(
    ("days_left", "stage"),
    [
        (45, None),
        (31, None),
        (30, "T-30"),
        (15, "T-30"),
        (14, "T-14"),
        (8, "T-14"),
        (7, "T-7"),
        (4, "T-7"),
        (3, "T-3"),
        (2, "T-3"),
        (1, "T-1"),
        (0, "T-1"),
        (-1, "overdue"),
        (-30, "overdue"),
    ],
)
def test_stages(days_left: int, stage: str | None) -> None:
    assert reminder_stage(DUE, DUE - timedelta(days=days_left)) == stage


@pytest.fixture
def incident_with_deadlines(database: Database) -> str:
    created = StateStore(database).open_incident(
        title="PHI export exposed", severity="high", source="cli", actor="cli:ic"
    )
    update_facts(  # 40 patients in Colorado: individuals + HHS log + Colorado's 30 days
        database,
        created,
        FactsUpdate(
            discovered_at=datetime(2026, 3, 2, 9, tzinfo=ZoneInfo("America/New_York")),
            affected_total=40,
            affected_by_state={"CO": 40},
        ),
        actor="cli:privacy",
    )
    return created


def test_every_stage_fires_exactly_once_over_the_life_of_a_deadline(
    database: Database, incident_with_deadlines: str
) -> None:
    recipients = ["privacy-officer@example.org", "counsel@example.org"]
    day = date(2026, 3, 2)
    while day <= date(2026, 5, 10):
        for _ in range(2):  # hourly runs, replicas, retries: the same day twice changes nothing
            queue_due_reminders(database, today=day, recipients=recipients)
        day += timedelta(days=1)
    with database.transaction() as session:
        keys = [n.dedupe_key for n in session.execute(select(Notification)).scalars()]
        deadlines = {d.id: d for d in session.execute(select(Deadline)).scalars()}
        overdue_events = [e for e in AuditChain().events(session) if e.type == "deadline.overdue"]
        assert AuditChain().verify(session).ok
    per_deadline = Counter((key.split(":")[1], key.split(":")[2]) for key in keys)
    individuals = next(d for d in deadlines.values() if d.kind == "individuals")
    colorado = next(d for d in deadlines.values() if d.kind == "state_residents")
    for deadline in (individuals, colorado):
        stages = {stage for (deadline_id, stage), count in per_deadline.items() if deadline_id == deadline.id}
        assert stages == {"T-30", "T-14", "T-7", "T-3", "T-1", "overdue"}, deadline.kind
        assert all(count == len(recipients) for (d, _), count in per_deadline.items() if d == deadline.id)
    # the annual HHS log is due 2027-03-01: no reminder yet
    hhs_log = next(d for d in deadlines.values() if d.kind == "hhs_annual_log")
    assert all(d != hhs_log.id for d, _ in per_deadline)
    assert individuals.status == "overdue" and colorado.status == "overdue"
    assert len(overdue_events) == 2


def test_a_late_deadline_skips_the_stages_already_past(
    database: Database, incident_with_deadlines: str
) -> None:
    report = queue_due_reminders(
        database, today=date(2026, 4, 28), recipients=["privacy-officer@example.org"]
    )
    with database.transaction() as session:
        stages = sorted(n.dedupe_key.split(":")[2] for n in session.execute(select(Notification)).scalars())
        payloads = [
            json.loads(e.payload) for e in AuditChain().events(session) if e.type == "notification.queued"
        ]
    assert stages == ["T-3", "overdue"]  # individuals due 05-01 (3 days), Colorado due 04-01 (overdue)
    assert len(report.queued) == 2
    assert all("privacy-officer@example.org" not in json.dumps(p) for p in payloads)


def test_reminders_stop_once_the_notice_is_recorded_as_sent(
    database: Database, incident_with_deadlines: str
) -> None:
    record_notice_sent(
        database,
        incident_with_deadlines,
        NoticeSentInput(kind="individuals", sent_on=date(2026, 3, 20), method="first_class_mail", count=40),
        author="cli:privacy",
    )
    for day in (date(2026, 4, 1), date(2026, 4, 28), date(2026, 5, 2)):
        queue_due_reminders(database, today=day, recipients=["privacy-officer@example.org"])
    with database.transaction() as session:
        individuals = session.execute(select(Deadline).where(Deadline.kind == "individuals")).scalar_one()
        reminded = {n.dedupe_key.split(":")[1] for n in session.execute(select(Notification)).scalars()}
    assert individuals.status == "met"  # never marked overdue after it was met
    assert individuals.id not in reminded


def test_a_reminder_names_the_outer_bound_of_a_delayed_deadline(database: Database) -> None:
    created = StateStore(database).open_incident(
        title="PHI export", severity="high", source="cli", actor="cli:ic"
    )
    update_facts(
        database,
        created,
        FactsUpdate.model_validate(
            {
                "discovered_at": datetime(2026, 3, 2, 9, tzinfo=ZoneInfo("America/New_York")),
                "affected_total": 40,
                "law_enforcement_delay": {"oral": {"given_on": "2026-03-10"}},
            }
        ),
        actor="cli:privacy",
    )
    queue_due_reminders(database, today=date(2026, 4, 28), recipients=["privacy-officer@example.org"])
    with database.transaction() as session:
        [body] = [n.body for n in session.execute(select(Notification)).scalars()]
    # 164.412: due 2026-05-01 (the oral delay ended 2026-04-09); the tolling reading allows 2026-05-31
    assert "Due date: May 1, 2026" in body
    assert "Another reading of the rules allows until May 31, 2026" in body
