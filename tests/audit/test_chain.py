"""The hash chain: appends, verification, and tampering done directly in the database."""

from __future__ import annotations

import json
import multiprocessing

import pytest
from sqlalchemy import select, text

from irflow.audit import GENESIS_HASH, AuditChain, canonical_json
from irflow.store.db import Database
from irflow.store.models import AuditEvent, AuditHead


def _append(db: Database, count: int, incident_id: str = "inc-1") -> None:
    chain = AuditChain()
    for index in range(count):
        with db.transaction() as session:
            chain.append(
                session, actor="tester", type="test.event", incident_id=incident_id, payload={"i": index}
            )


def _verify(db: Database):  # type: ignore[no-untyped-def]
    with db.transaction() as session:
        return AuditChain().verify(session)


def test_canonical_json_is_stable() -> None:
    assert canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'


def test_empty_chain_verifies(database: Database) -> None:
    report = _verify(database)
    assert report.ok and report.events == 0 and report.head_seq == 0


def test_appends_link_and_verify(database: Database) -> None:
    _append(database, 5)
    with database.transaction() as session:
        events = list(AuditChain().events(session))
        head = session.get(AuditHead, 1)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert events[0].prev_hash == GENESIS_HASH
    assert all(later.prev_hash == earlier.hash for earlier, later in zip(events, events[1:], strict=False))
    assert head is not None and head.seq == 5 and head.hash == events[-1].hash
    assert all(e.ts.tzinfo is not None for e in events)
    report = _verify(database)
    assert report.ok and report.events == 5


def test_payload_is_redacted_before_it_is_hashed(database: Database) -> None:
    with database.transaction() as session:
        event = AuditChain().append(
            session,
            actor="tester",
            type="test.secret",
            payload={
                "url": "https://a.blob.core.windows.net/c?sv=2024&sig=abcdEFGH1234%3D",
                "password": "hunter2",
            },
        )
    stored = json.loads(event.payload)
    assert "abcdEFGH1234" not in event.payload and "hunter2" not in event.payload
    assert stored["url"].startswith("https://a.blob.core.windows.net/c?")
    assert _verify(database).ok


def test_a_rolled_back_append_leaves_no_trace(database: Database) -> None:
    _append(database, 2)
    with pytest.raises(RuntimeError), database.transaction() as session:
        AuditChain().append(session, actor="tester", type="test.event", payload={})
        raise RuntimeError("the state change failed")
    _append(database, 1)
    report = _verify(database)
    assert report.ok and report.events == 3


@pytest.mark.parametrize(
    ("statement", "bad_seq", "words"),
    [
        ("UPDATE audit_events SET payload = '{\"i\":99}' WHERE seq = 3", 3, "edited"),
        ("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2", 2, "edited"),
        ("UPDATE audit_events SET type = 'test.other' WHERE seq = 4", 4, "edited"),
        ("DELETE FROM audit_events WHERE seq = 3", 3, "missing"),
        ("DELETE FROM audit_events WHERE seq = 5", 5, "missing"),
        ("DELETE FROM audit_events WHERE seq = 1", 1, "missing"),
    ],
)
def test_tampering_is_detected_and_named(
    database: Database, statement: str, bad_seq: int, words: str
) -> None:
    _append(database, 5)
    with database.engine.begin() as conn:
        conn.exec_driver_sql(statement)
    report = _verify(database)
    assert not report.ok
    assert report.first_bad_seq == bad_seq
    assert words in (report.reason or "")
    assert f"#{bad_seq}" in report.describe()


def test_edited_timestamp_is_detected(database: Database) -> None:
    _append(database, 3)
    with database.transaction() as session:
        event = session.execute(select(AuditEvent).where(AuditEvent.seq == 2)).scalar_one()
        event.ts = event.ts.replace(microsecond=(event.ts.microsecond + 1) % 1_000_000)
    report = _verify(database)
    assert not report.ok and report.first_bad_seq == 2


def test_swapped_rows_are_detected(database: Database) -> None:
    """Swap the contents of events 2 and 3 (each keeps its seq): the chain breaks at #2."""
    _append(database, 4)
    with database.transaction() as session:
        two, three = (
            session.execute(select(AuditEvent).where(AuditEvent.seq == n)).scalar_one() for n in (2, 3)
        )
        fields = ("ts", "actor", "type", "payload", "prev_hash")
        saved = {f: getattr(two, f) for f in fields}
        for f in fields:
            setattr(two, f, getattr(three, f))
            setattr(three, f, saved[f])
        two_hash, three_hash = two.hash, three.hash
        two.hash, three.hash = "x" * 64, "y" * 64
        session.flush()
        two.hash, three.hash = three_hash, two_hash
    report = _verify(database)
    assert not report.ok and report.first_bad_seq == 2


def test_renumbered_rows_are_detected(database: Database) -> None:
    """Reorder by exchanging seq numbers of events 2 and 3."""
    _append(database, 4)
    with database.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET seq = -2 WHERE seq = 2"))
        conn.execute(text("UPDATE audit_events SET seq = 2 WHERE seq = 3"))
        conn.execute(text("UPDATE audit_events SET seq = 3 WHERE seq = -2"))
    report = _verify(database)
    assert not report.ok and report.first_bad_seq == 2


def _append_in_process(url: str, count: int, worker: int) -> None:
    db = Database(url)
    chain = AuditChain()
    for index in range(count):
        with db.transaction() as session:
            chain.append(session, actor=f"worker-{worker}", type="test.concurrent", payload={"i": index})
    db.dispose()


def test_appends_are_serialized_across_processes(database: Database, database_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_in_process, args=(database_url, 25, n)) for n in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
        assert process.exitcode == 0
    report = _verify(database)
    assert report.ok, report.describe()
    assert report.events == 100
    with database.transaction() as session:
        actors = {e.actor for e in AuditChain().events(session)}
    assert actors == {f"worker-{n}" for n in range(4)}
