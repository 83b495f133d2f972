"""The unit of work's rules (irflow/engine/uow.py) and the one dedupe-then-insert (irflow/store/unique.py)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from irflow import clock
from irflow.audit import AuditChain
from irflow.engine.state import StateStore
from irflow.engine.uow import LockOrderViolation, unit_of_work
from irflow.store.db import Database
from irflow.store.models import AuditEvent, Incident, InstallationSecret, Run, Step
from irflow.store.unique import insert_unique


def _events(db: Database) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def test_a_lock_against_the_order_is_refused_and_nothing_is_written(database: Database) -> None:
    incident_id = StateStore(database).open_incident(title="t", severity="high", source="cli", actor="a")
    before = _events(database)
    with pytest.raises(LockOrderViolation, match="Incident locked after Run"), unit_of_work(database) as work:
        work.audit(actor="a", type="test.event", incident_id=incident_id, payload={})
        work.lock(Run, "no-such-run")
        work.lock(Incident, incident_id)
    assert _events(database) == before  # rolled back, the collected event with it


def test_steps_after_run_after_incident_is_the_order(database: Database) -> None:
    with unit_of_work(database) as work:
        work.lock(Incident, "i")
        work.lock(Run, "r")
        work.lock_steps(select(Step).where(Step.run_id == "r"))
        with pytest.raises(LockOrderViolation):
            work.lock(Run, "r")


def test_audit_events_are_appended_when_the_work_commits(database: Database) -> None:
    incident_id = StateStore(database).open_incident(title="t", severity="high", source="cli", actor="a")
    before = _events(database)
    with unit_of_work(database) as work:
        work.audit(actor="a", type="test.first", incident_id=incident_id, payload={"n": 1})
        AuditChain().append(work.session, actor="a", type="test.second", incident_id=incident_id)
        assert work.session.scalar(select(func.count()).select_from(AuditEvent)) == before  # collected only
    with database.read() as session:
        types = list(session.execute(select(AuditEvent.type).order_by(AuditEvent.seq)).scalars())
        assert types[-2:] == ["test.first", "test.second"]  # in the order they were collected
        assert AuditChain().verify(session).ok


def test_concurrent_inserts_of_one_key_make_one_row_and_every_caller_gets_it(database: Database) -> None:
    barrier = threading.Barrier(8)
    results: list[tuple[str, bool]] = []
    errors: list[BaseException] = []

    def claim(index: int) -> None:
        barrier.wait()
        try:
            with database.transaction() as session:
                row, created = insert_unique(
                    session,
                    InstallationSecret(name="k", value=f"v{index}", created_at=clock.now()),
                    select(InstallationSecret).where(InstallationSecret.name == "k"),
                )
                results.append((row.value, created))
        except BaseException as exc:  # noqa: BLE001  (surfaced below)
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert [created for _, created in results].count(True) == 1
    assert len({value for value, _ in results}) == 1  # the winner's row, for everyone
