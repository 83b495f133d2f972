"""The process's engine: settings, database, state store and Azure clients, plus the DBOS lifecycle.

Submitting is not executing. :func:`submit` puts a run's workflow on the ``irflow-runs`` queue through a
:class:`dbos.DBOSClient` (any process may do it, without becoming an executor); :func:`launch` makes this
process a worker (a DBOS executor and replica, see :mod:`irflow.engine.replicas`) that dequeues runs and
their fan-out, recovers its own pending workflows, and runs the scheduled work
(:mod:`irflow.engine.scheduled`).

Entry points (CLI commands, API routes, the dashboard) are handed their :class:`Services` explicitly (the
CLI's ``engine()``/``reader()`` contexts, the app's ``ApiContext``). Only DBOS workflows and steps reach them
through :func:`services`: DBOS registers and replays module-level functions by name, so they cannot be given
an object; :func:`launch` sets it before DBOS recovers any workflow.
"""

from __future__ import annotations

import fcntl
import gc
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy.engine import make_url

from irflow import __version__
from irflow.engine.state import StateStore
from irflow.logs import get_logger
from irflow.settings import Settings
from irflow.store.db import Database, ensure_schema, sqlite_connector
from irflow.store.installation import install_keys

FANOUT_QUEUE = "irflow-targets"
FANOUT_WORKER_CONCURRENCY = 64
RUN_QUEUE = "irflow-runs"
APPLICATION = "irflow"
# The registered name of the run workflow (irflow.engine.interpreter.playbook_workflow), for the client.
RUN_WORKFLOW = "playbook_workflow"
RETRY_WORKFLOW = "retry_workflow"
# Targets (or pipeline chains) running at once across every replica: with the ARM rate limiter per
# subscription (irflow.azure.ratelimit), what keeps N replicas from multiplying the load on Azure by N.
FANOUT_GLOBAL_CONCURRENCY = 128

log = get_logger("irflow.engine")


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
_monitor: Any = None


def services() -> Services:
    """The launched engine's services, for DBOS workflows and steps only (see the module's docstring)."""
    if _services is None:
        raise RuntimeError("the irflow engine is not launched in this process")
    return _services


def launched() -> bool:
    """Whether this process runs the engine (is a worker)."""
    return _services is not None


def serves(svc: Services) -> bool:
    """Whether *svc* are the services of the engine this process launched."""
    return _services is not None and _services is svc


def system_database_url(app_url: str) -> str:
    """DBOS's system database, beside the application database."""
    url = make_url(app_url)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "irflow.db")
        return f"sqlite:///{path.with_name(path.stem + '.dbos' + (path.suffix or '.db'))}"
    return app_url


def open_database(settings: Settings) -> Database:
    db = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    ensure_schema(db.engine)
    install_keys(settings, db)  # keyed fingerprints (one key per installation), sealing of sensitive inputs
    return db


def launch(
    settings: Settings, db: Database | None = None, *, kind: str = "run", ephemeral: bool = False
) -> Services:
    """Make this process a worker: DBOS starts here, this replica's pending runs resume from their last
    completed step, and queued runs, fan-out and scheduled work are executed here.

    *kind* is what the replica is: ``serve`` and ``worker`` also install the scheduled work (outbox,
    reminders); ``run`` (a command's or a test's own worker) executes runs only.
    An *ephemeral* worker (a foreground ``irflow run``) takes a per-process executor id on PostgreSQL, so
    that it never shares one with a long-lived replica of the same host; on SQLite the engine lock already
    makes it the only executor.
    """
    global _services, _monitor
    from dbos import DBOS, DBOSConfig

    import irflow.engine.interpreter  # noqa: F401  (registers the workflows before recovery)
    import irflow.engine.scheduled  # noqa: F401
    from irflow.engine import replicas
    from irflow.engine.sealing import SealedDBOSSerializer

    if _services is not None:
        return _services
    if db is None:
        db = open_database(settings)
    else:
        install_keys(settings, db)
    embedded = _lock_embedded(settings)
    if ephemeral and not embedded:
        settings = settings.model_copy(
            update={"executor_id": f"{settings.executor_id}-{kind}-{os.getpid()}"[:100]}
        )
    try:
        replicas.claim(db, settings.executor_id, kind, settings.replica_lease)
    except Exception:
        _unlock_embedded()
        raise
    _services = Services(settings=settings, db=db, state=StateStore(db))
    config: DBOSConfig = {
        "name": APPLICATION,
        "system_database_url": system_database_url(settings.database_url),
        "application_version": __version__,
        "executor_id": settings.executor_id,
        "log_level": "WARNING",
        # How soon a replica sees schedules another one created or changed.
        "scheduler_polling_interval_sec": max(1.0, min(30.0, settings.replica_lease)),
        "serializer": SealedDBOSSerializer(),  # DBOS's tables hold program data sealed, never readable
    }
    if make_url(settings.database_url).get_backend_name() == "sqlite":
        # DBOS's system database keeps the journal settings of irflow's own (irflow.store.db).
        connect = sqlite_connector(
            config["system_database_url"], sqlite_synchronous=settings.sqlite_synchronous
        )
        config["db_engine_kwargs"] = {"creator": connect}
    DBOS(config=config)
    DBOS.launch()
    DBOS.register_queue(
        FANOUT_QUEUE,
        worker_concurrency=FANOUT_WORKER_CONCURRENCY,
        global_concurrency=FANOUT_GLOBAL_CONCURRENCY,
        polling_interval_sec=settings.queue_polling_interval,
    )
    DBOS.register_queue(
        RUN_QUEUE,
        worker_concurrency=settings.run_worker_concurrency,
        polling_interval_sec=settings.queue_polling_interval,
    )
    if embedded:  # the only executor: whatever another executor id left pending is dead, and resumes here
        recover_others(_services)
    if kind in ("serve", "worker"):
        from irflow.engine import scheduled

        scheduled.install(settings.outbox_schedule, settings.reminder_schedule, settings.timezone)
    _monitor = replicas.ReplicaMonitor(db, settings.executor_id, settings.replica_lease, recover_executors)
    _monitor.start()
    from irflow.engine.interpreter import start_orphaned_runs

    start_orphaned_runs()
    # What is loaded by now (modules, SQLAlchemy's and pydantic's metadata, the SDKs' clients) lives as long
    # as the worker: out of the cyclic collector's reach, a collection no longer walks it all again for
    # every few hundred objects the fan-out allocates (https://docs.python.org/3/library/gc.html#gc.freeze).
    gc.collect()
    gc.freeze()
    return _services


def recover_executors(executor_ids: list[str]) -> int:
    """DBOS's recovery entry point: the executors' PENDING workflows go back on their queues."""
    from dbos import DBOS

    return len(DBOS._recover_pending_workflows(executor_ids))


def recover_others(svc: Services) -> list[str]:
    """SQLite: recover the pending workflows of every other executor id (none can be running)."""
    from dbos import DBOS

    from irflow.engine import replicas

    me = svc.settings.executor_id
    others = sorted(
        {
            status.executor_id
            for status in DBOS.list_workflows(status=["PENDING"], load_input=False, load_output=False)
            if status.executor_id and status.executor_id != me
        }
    )
    if others:
        recover_executors(others)
    replicas.mark_recovered(svc.db, others, me)
    return others


def shutdown() -> None:
    global _services, _monitor
    from dbos import DBOS

    from irflow.engine import replicas

    if _monitor is not None:
        _monitor.stop()
        _monitor = None
    DBOS.destroy()
    if _services is not None:
        try:
            replicas.mark_stopped(_services.db, _services.settings.executor_id)
        except Exception as exc:  # the database may be what stopped us; the lease covers it
            log.warning("could not mark this replica stopped", error_type=type(exc).__name__)
        if _services._clients is not None:
            _services._clients.close()
        if _services._target_locks is not None:
            _services._target_locks.close()
        _services = None
    close_clients()
    _unlock_embedded()
    gc.unfreeze()  # a process that launches again (tests) lets what this launch froze be collected


def _unlock_embedded() -> None:
    global _engine_lock
    if _engine_lock is not None:
        _engine_lock.close()
        _engine_lock = None


# --- submitting (no executor needed) ---------------------------------------------------------------------
_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def dbos_client(settings: Settings) -> Any:
    """This process's DBOS client of the configured system database (one per URL, reused)."""
    from dbos import DBOSClient

    from irflow.engine.sealing import SealedDBOSSerializer

    url = system_database_url(settings.database_url)
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            # DBOS data sealed as the engine seals it: what a submitter enqueues, a worker can read
            client = DBOSClient(
                system_database_url=url, application_name=APPLICATION, serializer=SealedDBOSSerializer()
            )
            _clients[url] = client
        return client


def close_clients() -> None:
    with _clients_lock:
        for client in _clients.values():
            client.destroy()
        _clients.clear()


_ready: set[str] = set()


def engine_ready(settings: Settings) -> bool:
    """Whether a worker has ever launched on this database (DBOS's system tables exist)."""
    if settings.database_url in _ready:
        return True
    ready = _has_dbos_tables(settings)
    if ready:
        _ready.add(settings.database_url)
    return ready


def _has_dbos_tables(settings: Settings) -> bool:
    from sqlalchemy import create_engine, inspect

    url = make_url(system_database_url(settings.database_url))
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
        return False
    engine = create_engine(url)
    try:
        inspector = inspect(engine)
        if url.get_backend_name() == "sqlite":
            return "workflow_status" in inspector.get_table_names()
        return "workflow_status" in inspector.get_table_names(schema="dbos")
    finally:
        engine.dispose()


def submit(settings: Settings, run_id: str, *, dedupe_key: str | None = None) -> str:
    """Queue the run's workflow (its id is the run id, so a second submit is a no-op); any process may.

    *dedupe_key* (a Sentinel incident id) makes DBOS refuse a second active run for the same key: the id
    of the workflow already holding the key is returned instead of *run_id*.
    """
    from dbos import EnqueueOptions

    options: EnqueueOptions = {"workflow_name": RUN_WORKFLOW, "queue_name": RUN_QUEUE, "workflow_id": run_id}
    if dedupe_key is not None:
        options["deduplication_id"] = dedupe_key[:200]
        options["duplication_policy"] = "return-existing"
    handle = dbos_client(settings).enqueue(options, run_id)
    return str(handle.get_workflow_id())


def submit_retry(settings: Settings, run_id: str, actor: str, workflow_id: str) -> str:
    """Queue a retry of a failed run (``retry_workflow``) under *workflow_id*; any process may."""
    from dbos import EnqueueOptions

    options: EnqueueOptions = {
        "workflow_name": RETRY_WORKFLOW,
        "queue_name": RUN_QUEUE,
        "workflow_id": workflow_id,
    }
    return str(dbos_client(settings).enqueue(options, run_id, actor).get_workflow_id())


def run_handle(settings: Settings, workflow_id: str) -> Any:
    """A handle on a run's workflow: DBOS's own in a worker, the client's elsewhere."""
    if _services is not None:
        from dbos import DBOS

        return DBOS.retrieve_workflow(workflow_id, existing_workflow=False)
    return dbos_client(settings).retrieve_workflow(workflow_id)


def is_embedded(settings: Settings) -> bool:
    url = make_url(settings.database_url)
    return url.get_backend_name() == "sqlite" and bool(url.database) and url.database != ":memory:"


def engine_lock_path(settings: Settings) -> Path:
    return Path(make_url(settings.database_url).database or "irflow.db").with_suffix(".engine.lock")


def engine_lock_free(settings: Settings) -> bool:
    """SQLite: whether no process runs the engine on this database now (probed without keeping the lock)."""
    if not is_embedded(settings):
        return True
    path = engine_lock_path(settings)
    if not path.exists():
        return True
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def _lock_embedded(settings: Settings) -> bool:
    """SQLite mode runs one replica: two processes recovering each other's runs would run them twice.

    Returns whether this process now holds the engine lock (False on PostgreSQL, where replicas share)."""
    global _engine_lock
    if not is_embedded(settings):
        return False
    url = make_url(settings.database_url)
    path = engine_lock_path(settings)
    handle = open(path, "a+")  # noqa: SIM115  (held for the process's life)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise EngineBusy(
            f"another irflow process (see {path}) is running the engine on "
            f"{Path(str(url.database)).resolve()}; wait for it, or point IRFLOW_DATABASE_URL elsewhere"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _engine_lock = handle
    return True
