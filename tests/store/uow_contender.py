"""One contender of the PostgreSQL concurrency test (tests/store/test_uow_concurrency.py), as its own process.

    python tests/store/uow_contender.py ROLE DATABASE_URL INCIDENT_ID [RUN_ID ...]

Roles: ``facts`` changes the incident's facts again and again; ``runs`` drives each run it is given through
its steps (plan, approval gate, start, succeed) and ends it; ``approver`` approves every step waiting for
approval on the incident until every run has ended; ``canceller`` cancels the runs it is given once they are
under way. Exits non-zero (with the error on stderr) on any error, a deadlock included.
"""

from __future__ import annotations

import contextlib
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sqlalchemy import select  # noqa: E402

from irflow.engine.incidents import FactsUpdate, update_facts  # noqa: E402
from irflow.engine.machines import RUN_TERMINAL  # noqa: E402
from irflow.engine.state import StateStore  # noqa: E402
from irflow.store.db import Database  # noqa: E402
from irflow.store.models import Run, Step  # noqa: E402

DEADLINE_S = 240.0


def _facts(db: Database, incident_id: str, rounds: int) -> None:
    for index in range(rounds):
        update_facts(
            db,
            incident_id,
            FactsUpdate(affected_total=600 + index, affected_by_state={"CA": 10 + index, "TX": index % 7}),
            actor="contender-facts",
        )


def _steps(db: Database, run_id: str) -> list[tuple[str, bool]]:
    with db.transaction() as session:
        rows = session.execute(
            select(Step.id, Step.requires_approval).where(Step.run_id == run_id).order_by(Step.item_index)
        ).all()
    return [(row[0], row[1]) for row in rows]


def _wait_while_gated(state: StateStore, step_id: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while state.step_states([step_id])[0]["state"] == "awaiting_approval":
        if time.monotonic() > deadline:
            raise TimeoutError(f"step {step_id} never approved")
        time.sleep(0.01)


def _runs(db: Database, run_ids: list[str]) -> None:
    state = StateStore(db)
    for run_id in run_ids:
        state.transition_run(run_id, "start")
        for step_id, gated in _steps(db, run_id):
            state.transition_step(step_id, "plan", plan={"changes": []}, payload={"changes": []})
            if gated:
                state.transition_step(step_id, "request_approval", workflow_id=f"wf-{step_id}")
                _wait_while_gated(state, step_id)
            state.transition_step(step_id, "start")
            state.transition_step(step_id, "succeed", result={"changed": False}, payload={"changed": False})
        state.transition_run(run_id, "succeed")


def _open_runs(db: Database, incident_id: str) -> list[str]:
    with db.transaction() as session:
        return list(
            session.execute(
                select(Run.id).where(Run.incident_id == incident_id, Run.status.not_in(tuple(RUN_TERMINAL)))
            ).scalars()
        )


def _approver(db: Database, incident_id: str) -> None:
    state = StateStore(db)
    deadline = time.monotonic() + DEADLINE_S
    while open_runs := _open_runs(db, incident_id):
        if time.monotonic() > deadline:
            raise TimeoutError("runs never ended")
        for run_id in open_runs:
            for gate in state.steps_awaiting_approval(run_id):
                state.transition_step(gate["id"], "approve", actor="contender-approver", payload={"by": "x"})
        time.sleep(random.uniform(0, 0.01))


def _canceller(db: Database, run_ids: list[str]) -> None:
    state = StateStore(db)
    deadline = time.monotonic() + DEADLINE_S
    for run_id in run_ids:
        while state.run_snapshot(run_id)["status"] == "pending":
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} never started")
            time.sleep(0.005)
        with contextlib.suppress(ValueError):  # it ended first
            state.cancel_run(run_id, actor="contender-canceller", reason="test")


def main() -> None:
    role, url, incident_id, *run_ids = sys.argv[1:]
    db = Database(url)
    try:
        if role == "facts":
            _facts(db, incident_id, int(run_ids[0]))
        elif role == "runs":
            _runs(db, run_ids)
        elif role == "approver":
            _approver(db, incident_id)
        elif role == "canceller":
            _canceller(db, run_ids)
        else:
            raise SystemExit(f"unknown role {role}")
    finally:
        db.dispose()


if __name__ == "__main__":
    main()
