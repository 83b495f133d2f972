"""The replicas table: executor ids are claimed by one live process; on PostgreSQL a silent replica is taken
over once, by one elected replica, however many sweep at the same moment."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from irflow.engine import replicas
from irflow.store.db import Database
from irflow.store.models import Replica


def _age(db: Database, executor_id: str, seconds: float) -> None:
    with db.engine.begin() as conn:
        now = replicas.db_now(conn)
        conn.execute(
            update(Replica)
            .where(Replica.executor_id == executor_id)
            .values(heartbeat_at=now - timedelta(seconds=seconds))
        )


def test_an_executor_id_is_claimed_by_one_live_process(database: Database) -> None:
    replicas.claim(database, "replica-a", "worker", lease=30)
    replicas.claim(database, "replica-a", "worker", lease=30)  # this process again (a restart): allowed
    with database.engine.begin() as conn:
        conn.execute(update(Replica).values(host="another-host"))
    with pytest.raises(replicas.ExecutorIdInUse, match="replica-a.*another-host"):
        replicas.claim(database, "replica-a", "worker", lease=30)
    assert replicas.live_replicas(database, 30) == ["replica-a"]
    _age(database, "replica-a", 31)  # silent past the lease: the id is free again
    assert replicas.live_replicas(database, 30) == []
    replicas.claim(database, "replica-a", "serve", lease=30)
    replicas.mark_stopped(database, "replica-a")
    assert replicas.live_replicas(database, 30) == []
    with pytest.raises(ValueError, match="unknown replica kind"):
        replicas.claim(database, "replica-b", "dashboard", lease=30)


def test_sqlite_never_sweeps(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from irflow.store.db import upgrade

    db = Database(f"sqlite:///{tmp_path / 'irflow.db'}")
    upgrade(db.engine)
    replicas.claim(db, "dead", "worker", lease=1)
    _age(db, "dead", 60)
    assert replicas.take_over(db, "me", 1, lambda ids: pytest.fail("recovered on SQLite")) == []
    db.dispose()


@pytest.mark.postgres
def test_a_silent_replica_is_taken_over_once_by_one_elected_replica(postgres_url: str) -> None:
    from irflow.store.db import upgrade

    db = Database(postgres_url)
    upgrade(db.engine)
    replicas.claim(db, "dead", "worker", lease=2)
    replicas.claim(db, "quiet-but-alive", "worker", lease=2)
    _age(db, "dead", 5)
    recovered: list[tuple[str, list[str]]] = []
    start = threading.Barrier(4)

    def sweeper(me: str) -> None:
        def recover(ids: list[str]) -> int:
            recovered.append((me, ids))
            time.sleep(0.5)  # hold the election while the others try
            return 3

        start.wait()
        replicas.take_over(db, me, 2, recover)

    threads = [threading.Thread(target=sweeper, args=(f"live-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(recovered) == 1 and recovered[0][1] == ["dead"]
    with db.engine.connect() as conn:
        row = conn.execute(Replica.__table__.select().where(Replica.executor_id == "dead")).one()
    assert row.recovered_by == recovered[0][0] and row.recovered_at is not None
    # a later sweep finds nothing left to do; the dead replica beating again is alive again
    assert replicas.take_over(db, "live-0", 2, lambda ids: pytest.fail("recovered twice")) == []
    replicas.beat(db, "dead")
    assert set(replicas.live_replicas(db, 2)) == {"dead", "quiet-but-alive"}
    db.dispose()


def test_the_executor_id_defaults_to_the_host_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from pydantic import ValidationError

    from irflow.settings import Settings

    monkeypatch.setattr(socket, "gethostname", lambda: "ir-worker_0.example")
    assert Settings().executor_id == "ir-worker-0.example"
    monkeypatch.setenv("IRFLOW_EXECUTOR_ID", "replica-b")
    assert Settings().executor_id == "replica-b"
    monkeypatch.setenv("IRFLOW_EXECUTOR_ID", "two words")
    with pytest.raises(ValidationError, match="executor_id"):
        Settings()
