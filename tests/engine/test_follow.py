"""The foreground follower reads the whole run only when its fingerprint (one aggregate query) moved."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from irflow.cli.runs import _wait
from irflow.engine.runtime import Services, open_database
from irflow.engine.services.errors import NotFound
from irflow.engine.services.runs import run_progress
from irflow.engine.state import StateStore
from irflow.settings import Settings

PLAYBOOK = (
    "name: p\nversion: 1\nsteps:\n  - id: escalate\n    action: notify.escalate\n    with: {reason: t}\n"
)


@pytest.fixture
def svc(database_url: str) -> Iterator[Services]:
    settings = Settings(database_url=database_url)
    db = open_database(settings)
    yield Services(settings=settings, db=db, state=StateStore(db))
    db.dispose()


def _run_with_steps(svc: Services, targets: int) -> tuple[str, list[str]]:
    run_id = svc.state.open_incident_and_run(
        title="follow",
        severity="low",
        source="cli",
        actor="test",
        playbook_name="p",
        playbook_version=1,
        playbook_hash="0" * 64,
        playbook_content=PLAYBOOK,
        params={},
        dry_run=True,
        auto_approve=False,
    ).run_id
    steps = svc.state.ensure_steps(
        run_id,
        position=0,
        step_key="escalate",
        action="notify.escalate",
        requires_approval=False,
        max_attempts=1,
        items=[{"item_index": i, "target": f"t{i}", "params": {}} for i in range(targets)],
    )
    return run_id, steps


def test_the_fingerprint_moves_with_every_change_and_only_then(svc: Services) -> None:
    run_id, steps = _run_with_steps(svc, 3)
    first = run_progress(svc.db, run_id)
    assert run_progress(svc.db, run_id) == first
    assert first.steps == ((("pending", 3, 0, first.steps[0][3])),)
    svc.state.transition_run(run_id, "start")
    started = run_progress(svc.db, run_id)
    assert started != first and started.status == "running"
    svc.state.transition_step(steps[0], "plan")
    planned = run_progress(svc.db, run_id)
    assert planned != started and [g[:2] for g in planned.steps] == [("pending", 2), ("planned", 1)]
    svc.state.transition_step(steps[0], "start", attempts=1)
    running = run_progress(svc.db, run_id)
    assert running != planned and running.steps[-1][:3] == ("running", 1, 1)
    assert run_progress(svc.db, run_id) == running
    with pytest.raises(NotFound):
        run_progress(svc.db, "no-such-run")


def test_the_follower_reads_the_run_once_per_change_not_once_per_poll(svc: Services) -> None:
    run_id, steps = _run_with_steps(svc, 2)
    svc.state.transition_run(run_id, "start")
    changes = [(step, trigger) for step in steps for trigger in ("plan", "start", "succeed")]

    def worker() -> None:  # a change now and then, with quiet spells the follower polls through
        for step, trigger in changes:
            time.sleep(0.3)
            svc.state.transition_step(step, trigger)
        time.sleep(0.3)
        svc.state.transition_run(run_id, "succeed")

    shown: list[dict[str, Any]] = []
    thread = threading.Thread(target=worker)
    thread.start()
    try:
        last = _wait(svc, run_id, shown.append)
    finally:
        thread.join(timeout=60)
    assert last["status"] == "succeeded"
    assert [s["state"] for s in last["steps"]] == ["succeeded", "succeeded"]
    # one full read at the start and at most one per change (7 changes over ~2.4 s: polling every 0.1-1 s,
    # a follower reading the whole run on every poll would have read it more often)
    assert 2 <= len(shown) <= 1 + len(changes) + 1, len(shown)
    # what it showed moved forward each time: no read repeated an unchanged run
    assert all(a != b for a, b in zip(shown, shown[1:], strict=False))
