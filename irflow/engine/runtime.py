"""The process's engine: settings, database, state store and Azure clients, plus the DBOS lifecycle.

DBOS steps are module-level functions; they reach these services through :func:`services`, which is set
by :func:`launch` before DBOS recovers any workflow.
"""

from __future__ import annotations

import fcntl
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy.engine import make_url

from irflow import __version__
from irflow.engine.state import StateStore
from irflow.settings import Settings
from irflow.store.db import Database, ensure_schema
from irflow.store.installation import install_keys

FANOUT_QUEUE = "irflow-targets"
FANOUT_WORKER_CONCURRENCY = 64


class EngineBusy(RuntimeError):
    """Another irflow process runs the engine on this embedded (SQLite) database."""


@dataclass
class Services:
    settings: Settings
    db: Database
    state: StateStore
    _clients: Any = None
    _target_locks: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def target_locks(self) -> Any:
        """Per (action, target) locks: concurrent runs never apply the same change twice."""
        with self._lock:
            if self._target_locks is None:
                from irflow.engine.target_locks import TargetLocks

                self._target_locks = TargetLocks(self.db.engine, max_holders=FANOUT_WORKER_CONCURRENCY)
            return self._target_locks

    @property
    def clients(self) -> Any:
        with self._lock:
            if self._clients is None:
                from irflow.azure import AzureClients

                self._clients = AzureClients(self.settings)
            return self._clients


_services: Services | None = None
_engine_lock: IO[str] | None = None


def services() -> Services:
    if _services is None:
        raise RuntimeError("the irflow engine is not launched in this process")
    return _services


def system_database_url(app_url: str) -> str:
    """DBOS's system database, beside the application database."""
    url = make_url(app_url)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "irflow.db")
        return f"sqlite:///{path.with_name(path.stem + '.dbos' + (path.suffix or '.db'))}"
    return app_url


def open_database(settings: Settings) -> Database:
    db = Database(settings.database_url)
    ensure_schema(db.engine)
    install_keys(settings, db)  # keyed fingerprints (one key per installation), sealing of sensitive inputs
    return db


def launch(settings: Settings, db: Database | None = None) -> Services:
    """Start DBOS here: pending runs of this executor resume now, from their last completed step."""
    global _services
    from dbos import DBOS, DBOSConfig

    import irflow.engine.interpreter  # noqa: F401  (registers the workflows before recovery)
    from irflow.engine.sealing import SealedDBOSSerializer

    if _services is not None:
        return _services
    if db is None:
        db = open_database(settings)
    else:
        install_keys(settings, db)
    _lock_embedded(settings)
    _services = Services(settings=settings, db=db, state=StateStore(db))
    config: DBOSConfig = {
        "name": "irflow",
        "system_database_url": system_database_url(settings.database_url),
        "application_version": __version__,
        "executor_id": settings.executor_id,
        "log_level": "WARNING",
        "serializer": SealedDBOSSerializer(),  # DBOS's tables hold program data sealed, never readable
    }
    DBOS(config=config)
    DBOS.launch()
    DBOS.register_queue(
        FANOUT_QUEUE,
        worker_concurrency=FANOUT_WORKER_CONCURRENCY,
        polling_interval_sec=settings.queue_polling_interval,
    )
    from irflow.engine.interpreter import start_orphaned_runs

    start_orphaned_runs()
    return _services


def shutdown() -> None:
    global _services, _engine_lock
    from dbos import DBOS

    DBOS.destroy()
    if _services is not None:
        if _services._clients is not None:
            _services._clients.close()
        if _services._target_locks is not None:
            _services._target_locks.close()
        _services = None
    if _engine_lock is not None:
        _engine_lock.close()
        _engine_lock = None


def _lock_embedded(settings: Settings) -> None:
    """SQLite mode runs one replica: two processes recovering each other's runs would run them twice."""
    global _engine_lock
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    path = Path(url.database).with_suffix(".engine.lock")
    handle = open(path, "a+")  # noqa: SIM115  (held for the process's life)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise EngineBusy(
            f"another irflow process (see {path}) is running the engine on {Path(url.database).resolve()}; "
            "wait for it, or point IRFLOW_DATABASE_URL elsewhere"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _engine_lock = handle
