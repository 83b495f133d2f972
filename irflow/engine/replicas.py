"""Replicas: every process that executes workflows heartbeats; one that stays silent is taken over.

A replica is a DBOS executor (``irflow serve``, ``irflow worker``, or the in-process worker of a foreground
``irflow run``) under a stable executor id. It writes its heartbeat into ``replicas`` every third of the
lease. On PostgreSQL, each beat also tries to become the one replica that recovers the others: it takes a
transaction-scoped advisory lock (``pg_try_advisory_xact_lock``), so at most one replica sweeps at a time,
and for every replica silent past the lease (or stopped) it calls DBOS's recovery entry point
(``DBOS._recover_pending_workflows``), which puts that executor's PENDING workflows back on their queues. The
sweep records ``recovered_at`` / ``recovered_by`` in the same transaction, so a replica is taken over once.
DBOS's re-enqueue matches ``executor_id IN (dead ids)`` and a dequeue rewrites the executor id, so even a
repeated sweep cannot start a workflow twice.

On SQLite there is one executor at a time (the engine file lock, see :mod:`irflow.engine.runtime`): the
lock holder recovers every other executor's pending workflows at launch, and never sweeps afterwards.

Heartbeat times come from the database's clock on PostgreSQL (``now()``), so replicas on hosts with skewed
clocks still agree on who is silent.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, and_, delete, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from irflow import __version__, clock
from irflow.logs import get_logger
from irflow.store.db import Database
from irflow.store.models import Replica

log = get_logger("irflow.replicas")

# pg advisory lock key of the takeover election (any constant; this one spells "irflowrc" in ASCII).
TAKEOVER_LOCK_KEY = 0x6972666C6F777263
KINDS = ("serve", "worker", "run")


class ExecutorIdInUse(RuntimeError):
    """Another live process heartbeats under this executor id."""


@dataclass(frozen=True)
class TakenOver:
    executor_id: str
    silent_since: datetime
    workflows: int


def is_postgres(db: Database) -> bool:
    return db.engine.dialect.name == "postgresql"


def db_now(conn: Connection) -> datetime:
    """The time every replica agrees on: the database server's on PostgreSQL, the clock on SQLite."""
    if conn.dialect.name == "postgresql":
        value = conn.execute(text("SELECT now()")).scalar_one()
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return clock.now()


def heartbeat_interval(lease: float) -> float:
    return min(max(lease / 3, 0.1), 10.0)


def claim(db: Database, executor_id: str, kind: str, lease: float) -> None:
    """Register this process under *executor_id* (before it executes anything).

    Refused when another process, alive within the lease, already heartbeats under the same id: two
    executors sharing an id would recover each other's workflows while they run.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown replica kind {kind!r}")
    host, pid = socket.gethostname()[:255], os.getpid()
    with db.engine.begin() as conn:
        now = db_now(conn)
        row = conn.execute(select(Replica).where(Replica.executor_id == executor_id)).first()
        if row is not None and row.stopped_at is None and row.heartbeat_at > now - timedelta(seconds=lease):
            same_process_slot = row.host == host and (row.pid == pid or not _pid_alive(row.pid))
            if not same_process_slot:
                raise ExecutorIdInUse(
                    f"executor id {executor_id!r} is in use by process {row.pid} on {row.host} "
                    f"(heartbeat {(now - row.heartbeat_at).total_seconds():.0f} s ago): "
                    "give each replica its own IRFLOW_EXECUTOR_ID"
                )
        values = {
            "kind": kind,
            "host": host,
            "pid": pid,
            "version": __version__[:40],
            "started_at": now,
            "heartbeat_at": now,
            "stopped_at": None,
            "recovered_at": None,
            "recovered_by": None,
        }
        if row is None:
            try:
                with conn.begin_nested():
                    conn.execute(insert(Replica).values(executor_id=executor_id, **values))
                return
            except IntegrityError:  # a process registering the same id this very moment: it won
                raise ExecutorIdInUse(
                    f"executor id {executor_id!r} is being registered by another process"
                ) from None
        conn.execute(update(Replica).where(Replica.executor_id == executor_id).values(**values))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def beat(db: Database, executor_id: str) -> None:
    with db.engine.begin() as conn:
        now = db_now(conn)
        conn.execute(
            update(Replica)
            .where(Replica.executor_id == executor_id)
            .values(heartbeat_at=now, stopped_at=None, recovered_at=None, recovered_by=None)
        )


def mark_stopped(db: Database, executor_id: str) -> None:
    """A clean stop: a live replica takes over at its next beat rather than after the lease."""
    with db.engine.begin() as conn:
        conn.execute(
            update(Replica).where(Replica.executor_id == executor_id).values(stopped_at=db_now(conn))
        )


def live_replicas(db: Database, lease: float, *, kinds: tuple[str, ...] = KINDS) -> list[str]:
    """Executor ids that heartbeat within the lease and have not stopped."""
    with db.engine.connect() as conn:
        now = db_now(conn)
        return list(
            conn.execute(
                select(Replica.executor_id).where(
                    Replica.kind.in_(kinds),
                    Replica.stopped_at.is_(None),
                    Replica.heartbeat_at > now - timedelta(seconds=lease),
                )
            ).scalars()
        )


def take_over(db: Database, me: str, lease: float, recover: Callable[[list[str]], int]) -> list[TakenOver]:
    """On PostgreSQL: if elected (the advisory lock is free), recover every silent or stopped replica once.

    *recover* is DBOS's recovery entry point for a list of executor ids; it returns how many workflows it
    put back on their queues.
    """
    if not is_postgres(db):
        return []
    taken: list[TakenOver] = []
    with db.engine.connect() as conn, conn.begin():
        if not conn.execute(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": TAKEOVER_LOCK_KEY}
        ).scalar():
            return []  # another replica sweeps right now
        now = db_now(conn)
        silent = conn.execute(
            select(Replica.executor_id, Replica.heartbeat_at, Replica.stopped_at)
            .where(
                Replica.executor_id != me,
                Replica.recovered_at.is_(None),
                or_(
                    Replica.stopped_at.is_not(None),
                    Replica.heartbeat_at <= now - timedelta(seconds=lease),
                ),
            )
            .with_for_update()
        ).all()
        for executor_id, heartbeat_at, stopped_at in silent:
            workflows = recover([executor_id])
            conn.execute(
                update(Replica)
                .where(and_(Replica.executor_id == executor_id, Replica.recovered_at.is_(None)))
                .values(recovered_at=now, recovered_by=me)
            )
            taken.append(TakenOver(executor_id, stopped_at or heartbeat_at, workflows))
            log.warning(
                "replica taken over",
                executor_id=executor_id,
                stopped=stopped_at is not None,
                silent_s=round((now - heartbeat_at).total_seconds(), 1),
                workflows=workflows,
            )
        # Foreground runs' own replicas come and go: their rows are dropped a day after they were taken over.
        conn.execute(
            delete(Replica).where(Replica.kind == "run", Replica.recovered_at < now - timedelta(days=1))
        )
    return taken


def mark_recovered(db: Database, executor_ids: list[str], me: str) -> None:
    if not executor_ids:
        return
    with db.engine.begin() as conn:
        conn.execute(
            update(Replica)
            .where(Replica.executor_id.in_(executor_ids), Replica.executor_id != me)
            .values(recovered_at=db_now(conn), recovered_by=me, stopped_at=db_now(conn))
        )


class ReplicaMonitor:
    """The heartbeat (and, on PostgreSQL, the takeover sweep) of this replica, on a daemon thread."""

    def __init__(
        self, db: Database, executor_id: str, lease: float, recover: Callable[[list[str]], int]
    ) -> None:
        self.db = db
        self.executor_id = executor_id
        self.lease = lease
        self.recover = recover
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="irflow-replica", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        interval = heartbeat_interval(self.lease)
        while True:  # a first sweep at once: a replica that stopped cleanly is taken over without delay
            try:
                beat(self.db, self.executor_id)
                take_over(self.db, self.executor_id, self.lease, self.recover)
            except Exception as exc:  # a database blip: the next beat tries again
                log.warning("replica heartbeat failed", error_type=type(exc).__name__)
            if self._stop.wait(interval):
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
