"""Facts updates, approvals, step and run transitions and a cancel of ONE incident, from several OS processes
at once, on PostgreSQL: no deadlock, every run ends, the audit chain verifies.

Each contender is a real process (tests/store/uow_contender.py) with its own connections, as replicas and the
API would be. Before the unit of work (irflow/engine/uow.py) fixed one lock order, ``transition_run`` locked
Run -> AuditHead -> Incident while ``update_facts`` locked Incident -> AuditHead: PostgreSQL aborted one of
them with ``DeadlockDetected``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from irflow.audit import AuditChain
from irflow.engine.state import StateStore
from irflow.store.db import Database, upgrade
from irflow.store.models import AuditEvent, Run, Step

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]
CONTENDER = Path(__file__).with_name("uow_contender.py")
RUN_WORKERS = 3
RUNS_PER_WORKER = 4
TARGETS_PER_RUN = 6
FACT_ROUNDS = 60


def _new_run(state: StateStore, incident_id: str | None, playbook: str) -> tuple[str, str]:
    created = state.open_incident_and_run(
        title="concurrency",
        severity="high",
        source="cli",
        actor="test",
        playbook_name="compromised-identity",
        playbook_version=2,
        playbook_hash="0" * 64,
        playbook_content=playbook,
        params={},
        dry_run=False,
        auto_approve=False,
        incident_id=incident_id,
    )
    state.ensure_steps(
        created.run_id,
        position=0,
        step_key="contain",
        action="identity.revoke_sessions",
        requires_approval=True,
        max_attempts=1,
        items=[{"item_index": i, "target": f"t-{i}", "params": {}} for i in range(TARGETS_PER_RUN // 2)],
    )
    state.ensure_steps(
        created.run_id,
        position=1,
        step_key="fan-out",
        action="identity.revoke_sessions",
        requires_approval=False,
        max_attempts=1,
        items=[{"item_index": i, "target": f"u-{i}", "params": {}} for i in range(TARGETS_PER_RUN // 2)],
    )
    return created.incident_id, created.run_id


def _wait_all(contenders: list[tuple[str, subprocess.Popen[bytes], Path]], *, limit_s: float) -> list[str]:
    """Wait for every contender; once one fails (or the limit passes) stop the others, so no contender waits
    on a partner that died."""
    deadline = time.monotonic() + limit_s
    while any(process.poll() is None for _, process, _ in contenders):
        failed = any(process.poll() not in (None, 0) for _, process, _ in contenders)
        if failed or time.monotonic() > deadline:
            for _, process, _ in contenders:
                if process.poll() is None:
                    process.kill()
            break
        time.sleep(0.1)
    failures = []
    for role, process, log in contenders:
        process.wait()
        if process.returncode == -signal.SIGKILL:
            failures.append(f"{role} stopped while still running")
        elif process.returncode != 0:
            failures.append(f"{role} exited {process.returncode}: {log.read_text()[-1500:]}")
    return failures


def test_one_incident_from_many_processes_no_deadlock_chain_verifies(
    postgres_url: str, tmp_path: Path
) -> None:
    db = Database(postgres_url)
    upgrade(db.engine)
    state = StateStore(db)
    playbook = (REPO / "playbooks" / "compromised-identity.yaml").read_text()
    incident_id, first = _new_run(state, None, playbook)
    runs = [first] + [
        _new_run(state, incident_id, playbook)[1] for _ in range(RUN_WORKERS * RUNS_PER_WORKER - 1)
    ]
    per_worker = [runs[i::RUN_WORKERS] for i in range(RUN_WORKERS)]
    cancelled = [batch[-1] for batch in per_worker]  # one run of each worker is cancelled while it runs

    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def start(*args: str) -> tuple[str, subprocess.Popen[bytes], Path]:
        log = tmp_path / f"contender-{len(list(tmp_path.glob('contender-*')))}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen([sys.executable, str(CONTENDER), *args], env=env, stderr=sink)
        return args[0], process, log

    contenders = [
        start("facts", postgres_url, incident_id, str(FACT_ROUNDS)),
        start("facts", postgres_url, incident_id, str(FACT_ROUNDS)),
        *(start("runs", postgres_url, incident_id, *batch) for batch in per_worker),
        start("approver", postgres_url, incident_id),
        start("canceller", postgres_url, incident_id, *cancelled),
    ]
    failures = _wait_all(contenders, limit_s=300)
    assert not failures, "\n".join(failures)

    with db.transaction() as session:
        report = AuditChain().verify(session)
        statuses = dict(
            session.execute(select(Run.id, Run.status).where(Run.incident_id == incident_id)).all()
        )
        step_states = dict(
            session.execute(select(Step.state, func.count()).join(Run).group_by(Step.state)).all()
        )
        facts_changes = session.scalar(
            select(func.count()).where(AuditEvent.type == "incident.facts_changed")
        )
    db.dispose()
    assert report.ok, report.describe()
    assert {statuses[run] for run in cancelled} <= {"cancelled", "succeeded"}
    assert {statuses[run] for run in runs if run not in cancelled} == {"succeeded"}
    assert set(step_states) <= {"succeeded", "cancelled"}
    assert facts_changes >= FACT_ROUNDS  # both contenders' changes, none lost (equal values write nothing)
