"""Replicas as real processes: three ``irflow worker`` processes on PostgreSQL share queued runs; one is
SIGKILLed mid-run and stays down; a live replica recovers its workflows within the lease; every run
completes and no completed step runs twice (the simulator's journal)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import bindparam, create_engine, text

from irflow.engine import runtime
from irflow.engine.runs import submit_run
from irflow.engine.state import StateStore
from irflow.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]
TARGETS = ("phipatientexports", "phiclaimsarchive", "phiimaging")
LEASE_S = 3.0


def irflow(*args: str) -> list[str]:
    return [sys.executable, "-m", "irflow", *args]


def _journal(info: dict) -> list[dict]:  # type: ignore[type-arg]
    answer = requests.get(
        f"{info['endpoint']}/_sim/journal",
        headers={"Authorization": f"Bearer {info['token']}"},
        verify=info["ca_file"],
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()


class Replicas:
    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.processes: dict[str, subprocess.Popen] = {}  # type: ignore[type-arg]

    def start(self, executor_id: str) -> None:
        log = open(self.logs / f"{executor_id}.log", "w")  # noqa: SIM115
        self.processes[executor_id] = subprocess.Popen(
            irflow("worker"),
            env={**self.env, "IRFLOW_EXECUTOR_ID": executor_id},
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def log_of(self, executor_id: str) -> str:
        return (self.logs / f"{executor_id}.log").read_text()

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def replicas(postgres_url: str, sim_process: dict, tmp_path: Path) -> Iterator[tuple[Replicas, dict]]:  # type: ignore[type-arg]
    env = {
        **os.environ,
        **sim_process["env"],
        "IRFLOW_DATABASE_URL": postgres_url,
        "IRFLOW_QUEUE_POLLING_INTERVAL": "0.05",
        "IRFLOW_REPLICA_LEASE": str(LEASE_S),
        "IRFLOW_RUN_WORKER_CONCURRENCY": "1",  # one run per replica at a time: the runs spread out
        "IRFLOW_LOG_LEVEL": "WARNING",
        "IRFLOW_ONCALL_RECIPIENTS": "soc-oncall@example.org",
        "IRFLOW_PLAYBOOKS_DIR": str(REPO / "playbooks"),
    }
    upgraded = subprocess.run(irflow("db", "upgrade"), env=env, capture_output=True, text=True, timeout=120)
    assert upgraded.returncode == 0, upgraded.stderr
    group = Replicas(env, tmp_path)
    yield group, env
    group.stop_all()
    runtime.close_clients()


def _wait(condition, what: str, limit: float = 120.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_three_replicas_share_runs_and_a_live_one_takes_over_a_killed_one(replicas, sim_process) -> None:  # type: ignore[no-untyped-def]
    group, env = replicas
    info = sim_process
    settings = Settings(database_url=env["IRFLOW_DATABASE_URL"], playbooks_dir=REPO / "playbooks")
    group.start("replica-a")
    _wait(lambda: runtime.engine_ready(settings), "the first worker to create DBOS's tables")
    group.start("replica-b")
    group.start("replica-c")
    db = runtime.open_database(settings)  # with the installation's keys: what it submits is sealed with them
    state = StateStore(db)
    svc = runtime.Services(settings=settings, db=db, state=state)
    sql = create_engine(settings.database_url)

    def live() -> set[str]:
        with sql.connect() as conn:
            return set(
                conn.execute(
                    text("SELECT executor_id FROM replicas WHERE heartbeat_at > now() - interval '2 seconds'")
                ).scalars()
            )

    _wait(lambda: live() == {"replica-a", "replica-b", "replica-c"}, "three replicas heartbeating")

    # This process only submits (a DBOS client, no executor): the workers execute.
    runs = {}
    for name in TARGETS:
        account = (
            f"/subscriptions/{info['subscription_id']}/resourceGroups/rg-phi-prod/providers/"
            f"Microsoft.Storage/storageAccounts/{name}"
        )
        submitted = submit_run(
            svc,
            "storage-sas-exfiltration",
            {"storage_accounts": account},
            actor="cli:tester",
            auto_approve=True,
        )
        runs[submitted.run_id] = name
    assert not runtime.launched()

    def executors() -> dict[str, str]:
        with sql.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT workflow_uuid, executor_id FROM dbos.workflow_status WHERE workflow_uuid IN :ids"
                ).bindparams(bindparam("ids", expanding=True)),
                {"ids": list(runs)},
            ).all()
        return {wid: executor for wid, executor in rows if executor}

    def progress(run_id: str) -> int:
        with sql.connect() as conn:
            return conn.execute(
                text("SELECT count(*) FROM steps WHERE run_id = :r AND state = 'succeeded'"), {"r": run_id}
            ).scalar_one()

    def dequeued() -> dict[str, str] | None:
        owners = executors()
        return owners if len(owners) == len(runs) else None

    owners = _wait(dequeued, "every run dequeued")
    assert len(set(owners.values())) >= 2, f"the runs did not spread over the replicas: {owners}"
    victim_run = next(iter(runs))
    victim = owners[victim_run]
    _wait(lambda: progress(victim_run) >= 2, "the victim's run to complete some steps")
    with sql.connect() as conn:
        assert (
            conn.execute(text("SELECT status FROM runs WHERE id = :r"), {"r": victim_run}).scalar_one()
            == "running"
        )
    group.processes[victim].kill()  # SIGKILL: no clean stop, no stopped_at; it stays down
    group.processes[victim].wait(timeout=10)
    killed_at = time.monotonic()

    def taken_over() -> str | None:
        with sql.connect() as conn:
            return conn.execute(
                text("SELECT recovered_by FROM replicas WHERE executor_id = :e AND recovered_at IS NOT NULL"),
                {"e": victim},
            ).scalar()

    rescuer = _wait(taken_over, "a live replica to take over the killed one", limit=LEASE_S * 5)
    assert rescuer in {"replica-a", "replica-b", "replica-c"} - {victim}
    assert time.monotonic() - killed_at < LEASE_S * 4  # within the lease (plus a heartbeat or two)

    def finished() -> dict[str, str] | None:
        with sql.connect() as conn:
            query = text("SELECT id, status FROM runs WHERE id IN :ids").bindparams(
                bindparam("ids", expanding=True)
            )
            statuses = dict(conn.execute(query, {"ids": list(runs)}).all())
        return statuses if all(s in ("succeeded", "failed", "cancelled") for s in statuses.values()) else None

    statuses = _wait(finished, "every run to end", limit=240)
    with sql.connect() as conn:
        problems = conn.execute(text("SELECT id, error FROM runs WHERE status <> 'succeeded'")).all()
    assert set(statuses.values()) == {"succeeded"}, problems
    with sql.connect() as conn:
        states = dict(conn.execute(text("SELECT state, count(*) FROM steps GROUP BY state")).all())
        pending_of_victim = conn.execute(
            text("SELECT count(*) FROM dbos.workflow_status WHERE executor_id = :e AND status = 'PENDING'"),
            {"e": victim},
        ).scalar_one()
    assert list(states) == ["succeeded"], states
    assert pending_of_victim == 0
    assert "replica taken over" in group.log_of(rescuer)

    # No completed step ran twice: every account's mutations happened exactly as often as one run makes them.
    writes = [entry for entry in _journal(info) if entry["is_write"]]
    regenerated = Counter(
        (e["path"].split("/")[8], e["body"]["keyName"])
        for e in writes
        if e["route"] == "storage.accounts.regenerate_key"
    )
    assert regenerated == Counter({(name, key): 1 for name in TARGETS for key in ("key1", "key2")})
    arm = [e for e in writes if e["path"].startswith("/subscriptions/")]
    for method, times in (("PATCH", 2), ("PUT", 1)):
        changed = Counter(e["path"].split("/")[8] for e in arm if e["method"] == method)
        assert changed == Counter({name: times for name in TARGETS}), method
    revocations = [e for e in arm if e["route"].endswith("revoke_user_delegation_keys")]
    assert Counter(e["path"].split("/")[8] for e in revocations) == Counter({name: 1 for name in TARGETS})

    verify = subprocess.run(irflow("audit", "verify"), env=env, capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    sql.dispose()
    db.dispose()
