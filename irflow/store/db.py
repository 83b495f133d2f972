"""Engine, sessions and schema migrations for the application database (SQLite or PostgreSQL)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from irflow.store.sealed import DataKeyring

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class SchemaOutOfDate(RuntimeError):
    """The database exists but is not at the revision this irflow needs."""


SqliteSynchronous = Literal["full", "normal"]
READ_ONLY = "irflow_read_only"


def make_engine(url: str, *, sqlite_synchronous: SqliteSynchronous = "full") -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _sqlite_serializable(engine, sqlite_synchronous)
        return engine
    # At most 30 connections per process as before, but 20 of them kept open: the webhook's 16 intake slots
    # and the fan-out's state changes no longer open and close overflow connections at every burst.
    return create_engine(url, pool_pre_ping=True, pool_size=20, max_overflow=10)


def _journal(cursor: Any, synchronous: SqliteSynchronous) -> None:
    """WAL, and how a commit reaches the disk.

    ``full`` (the default): the WAL is synced at every commit, so a commit survives an OS crash or a power
    loss. ``normal`` syncs only at checkpoints: a commit survives the process being killed, but the last
    commits may roll back after an OS crash or power loss (https://www.sqlite.org/pragma.html#pragma_synchronous).
    irflow keeps two databases that depend on each other (its own and DBOS's, whose completed steps say what
    was written here): SQLite warns that NORMAL across such databases can leave them disagreeing after a power
    loss, so ``normal`` is an opt-in (IRFLOW_SQLITE_SYNCHRONOUS) for drills, demos and benchmarks.
    """
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA synchronous={'NORMAL' if synchronous == 'normal' else 'FULL'}")


def _sqlite_serializable(engine: Engine, synchronous: SqliteSynchronous) -> None:
    """Every transaction takes SQLite's write lock up front (BEGIN IMMEDIATE).

    pysqlite's own deferred BEGIN lets two writers both read the audit head and then fail to upgrade
    their locks; taking the lock first makes read-modify-write transactions serial across processes.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        _journal(cursor, synchronous)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):  # type: ignore[no-untyped-def]
        # A read-only transaction (Database.read) reads a WAL snapshot without the write lock.
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def sqlite_connector(
    url: str, *, sqlite_synchronous: SqliteSynchronous = "full"
) -> Callable[[], sqlite3.Connection]:
    """DBAPI connections to a SQLite file for an engine irflow does not create (DBOS's system database), with
    the journal of irflow's own (see :func:`_journal`): WAL rather than a rollback journal, so a commit costs
    one sync instead of several and readers do not block the writer."""
    path = make_url(url).database or ""

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(path, timeout=30, check_same_thread=False)
        cursor = connection.cursor()
        _journal(cursor, sqlite_synchronous)
        cursor.close()
        return connection

    return connect


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Apply every pending migration."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def ensure_schema(engine: Engine) -> None:
    """Upgrade a new (empty) database; refuse one that is behind, with the command that fixes it."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if current is None and not inspect(engine).get_table_names():
        upgrade(engine)
        return
    raise SchemaOutOfDate(
        f"database schema is at revision {current or 'none'}, this irflow needs {head}: "
        "run `irflow db upgrade`"
    )


class Database:
    """The application database: one engine and a session factory."""

    def __init__(self, url: str, *, sqlite_synchronous: SqliteSynchronous = "full") -> None:
        self.url = url
        self.engine = make_engine(url, sqlite_synchronous=sqlite_synchronous)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._reads = sessionmaker(self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)
        # SQLite has one writer at a time and every transaction takes the write lock (BEGIN IMMEDIATE).
        # Threads of this process queue here and each wakes as soon as the previous one commits; left to
        # SQLite's busy handler they would poll the lock with sleeps of up to 100 ms (the fan-out runs up to
        # 64 threads). Other processes still meet the busy handler.
        self._writer = threading.RLock() if self.engine.url.get_backend_name() == "sqlite" else None
        self.keyring = DataKeyring(self.engine)  # opens the sealed columns (irflow/store/sealed.py)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on any error."""
        self.keyring.ensure()  # before BEGIN: loading a generated key may write (SQLite has one writer)
        with self._serial(), self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session that only reads: on SQLite a snapshot of the last commit, taken without the write lock
        (WAL lets readers and the one writer proceed together); on PostgreSQL a plain transaction. Writing in
        it is a programming error (SQLite refuses the upgrade while another writer holds the lock)."""
        self.keyring.ensure()
        with self._reads() as session, session.begin():
            yield session

    def _serial(self) -> Any:
        return self._writer if self._writer is not None else nullcontext()

    def describe(self) -> str:
        """Where the data lives, without credentials."""
        url = self.engine.url
        if url.get_backend_name() == "sqlite":
            return str(Path(url.database or "").resolve())
        return url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()
