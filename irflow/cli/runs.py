"""Running playbooks in the foreground: submit, follow live, approvals at the terminal, the final report.

``irflow run`` submits its run to the runs queue and follows it. It executes it in this process only when no
worker serves the database (:class:`ForegroundWorker`): on SQLite, when no process holds the engine lock; on
PostgreSQL, when no replica heartbeats within the lease. That is checked again while following, so a run whose
worker stops is picked up here.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter
from contextlib import contextmanager
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.text import Text

from irflow.cli.common import EXIT_FAILED, EXIT_WAITING, console, errors, fail, is_tty
from irflow.cli.display import plan_lines, short_target, steps_table
from irflow.engine.machines import RUN_TERMINAL, STEP_TERMINAL
from irflow.engine.runs import run_view, settle_run, workflow_states
from irflow.settings import Settings

# The follower's pause between two looks at the run: short right after a change, longer while nothing moves
# (the live view itself refreshes on its own; this bounds how stale it can be).
FIRST_POLL_S = 0.1
LAST_POLL_S = 1.0
BACKOFF = 1.5
WORKFLOW_CHECK_S = 2.0
TERMINAL = RUN_TERMINAL


class ForegroundWorker:
    """The engine of a foreground ``irflow run``: a worker here only while none serves the database."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.local = False
        self.serving: list[str] = []
        self.services: Any = None

    def __enter__(self) -> ForegroundWorker:
        from irflow.engine.runtime import Services, open_database
        from irflow.engine.state import StateStore
        from irflow.store.db import SchemaOutOfDate

        try:
            self.db = open_database(self.settings)
        except SchemaOutOfDate as exc:
            fail(str(exc))
        self.services = Services(settings=self.settings, db=self.db, state=StateStore(self.db))
        self.ensure_served()
        return self

    def ensure_served(self) -> None:
        """Start a worker in this process unless another one serves the database now."""
        from irflow.engine import replicas, runtime

        if self.local:
            return
        self.serving = replicas.live_replicas(self.db, self.settings.replica_lease)
        if runtime.is_embedded(self.settings):
            busy = not runtime.engine_lock_free(self.settings)
        else:
            busy = bool(self.serving)
        if busy and self._engine_ready():
            self.serving = self.serving or ["(the process holding the engine lock)"]
            return
        try:
            self.services = runtime.launch(self.settings, db=self.db, kind="run", ephemeral=True)
        except runtime.EngineBusy:  # a worker started this very moment: it serves the run
            return
        except replicas.ExecutorIdInUse as exc:
            fail(str(exc))
        self.local = True

    def _engine_ready(self) -> bool:
        """A worker that is starting has not yet created DBOS's tables: wait for them (bounded)."""
        from irflow.engine import runtime

        deadline = time.monotonic() + 60
        while not runtime.engine_ready(self.settings):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True

    def finish(self) -> None:
        """Before exiting: the workflows this process executes (other runs' included) are let finish, except
        those waiting for a human (they are durable and resume on any worker); bounded."""
        if not self.local:
            return
        from irflow.cli.main import _finish_own_workflows

        _finish_own_workflows(self.services)

    def __exit__(self, *exc: object) -> None:
        from irflow.engine import runtime

        if self.local:
            runtime.shutdown()
        else:
            runtime.close_clients()
        self.db.dispose()


def follow(
    svc: Any, run_id: str, *, quiet: bool = False, live: bool | None = None, keeper: Any = None
) -> dict[str, Any]:
    """Show the run as it changes until it ends or waits for a human; returns the last view.

    On a terminal: a live view (a progress bar per fan-out step, its targets by state, errors printed above
    as they happen, log lines kept above it too). Otherwise one plain line per target state change.
    """
    live = is_tty() if live is None else live
    if quiet:
        return _wait(svc, run_id, lambda view: None, keeper)
    if live:
        board = _LiveBoard()
        stderr = sys.stderr
        with (
            Live(console=console, refresh_per_second=8, transient=False, redirect_stderr=True) as screen,
            _logs_above_live(stderr),
        ):
            return _wait(svc, run_id, lambda view: screen.update(board.render(view, screen)), keeper)
    seen: dict[str, str] = {}

    def print_changes(view: dict[str, Any]) -> None:
        for step in view["steps"]:
            if seen.get(step["id"]) != step["state"]:
                seen[step["id"]] = step["state"]
                console.print(f"  {step['step']:<20} {short_target(step['target']):<26} {step['state']}")

    return _wait(svc, run_id, print_changes, keeper)


class _LiveBoard:
    """The live view: the run's header and one progress bar per playbook step (its targets by state)."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<22}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[states]}"),
            auto_refresh=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self.errors_shown: set[tuple[str, str]] = set()

    def render(self, view: dict[str, Any], screen: Live) -> Group:
        by_step: dict[str, list[dict[str, Any]]] = {}
        for step in view["steps"]:
            by_step.setdefault(step["step"], []).append(step)
            if step["state"] == "failed" and step.get("error"):
                key = (step["id"], step["error"])
                if key not in self.errors_shown:
                    self.errors_shown.add(key)
                    screen.console.print(
                        f"[red]error[/] {step['step']} on {short_target(step['target'])}: {step['error']}",
                        markup=True,
                        highlight=False,
                    )
        for name, targets in by_step.items():
            counts = Counter(t["state"] for t in targets)
            done = sum(n for state, n in counts.items() if state in STEP_TERMINAL)
            states = " · ".join(f"{state} {n}" for state, n in sorted(counts.items()))
            if name not in self.tasks:
                self.tasks[name] = self.progress.add_task(name[:22], total=len(targets), states=states)
            self.progress.update(self.tasks[name], total=len(targets), completed=done, states=states)
        header = Text(
            f"run {view['id']} · {view['playbook']} v{view['version']} · {view['status']}", style="bold"
        )
        return Group(header, self.progress.get_renderable())


@contextmanager
def _logs_above_live(stderr: Any) -> Any:
    """Log handlers that write to *stderr* write through Live's proxy meanwhile: above the live view, never
    into it."""
    moved = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream in (stderr, sys.__stderr__):
            moved.append((handler, handler.setStream(sys.stderr)))
    try:
        yield
    finally:
        for handler, previous in moved:
            handler.setStream(previous)


def _wait(svc: Any, run_id: str, show: Any, keeper: Any = None) -> dict[str, Any]:
    """Read the whole run only when its fingerprint (one aggregate query) moved; poll faster after a change,
    slower while nothing moves."""
    from irflow.engine.services.runs import run_progress

    checked = time.monotonic()
    seen = None
    pause = FIRST_POLL_S
    while True:
        progress = run_progress(svc.db, run_id)  # read before the view: a change in between is seen next
        if progress != seen:
            seen, pause = progress, FIRST_POLL_S
            view = run_view(svc, run_id)
            show(view)
            if view["status"] in TERMINAL or _settled_at_gates(view):
                return view
        else:
            pause = min(LAST_POLL_S, pause * BACKOFF)
        if time.monotonic() - checked >= WORKFLOW_CHECK_S:
            checked = time.monotonic()
            if keeper is not None:  # the worker that served the run may have stopped: serve it here
                keeper.ensure_served()
            # A workflow that ended without ending its run (it could not write) would leave this loop
            # waiting forever: the run is settled from the workflow's own outcome instead.
            states = workflow_states(svc.settings, [run_id])
            if settle_run(svc, run_id, states.get(run_id)) in TERMINAL:
                continue
        time.sleep(pause)


def _settled_at_gates(view: dict[str, Any]) -> bool:
    """Waiting for approval, with every sibling target either at its gate too or finished."""
    from irflow.engine.services.runs import settled_at_gates
    from irflow.engine.services.views import RunView

    return settled_at_gates(RunView.model_validate(view))


def report(view: dict[str, Any], *, as_json: bool) -> int:
    """Print the outcome; the exit code is 0 only for a succeeded run."""
    if as_json:
        console.print_json(json.dumps(view, default=str))
    else:
        if view["dry_run"]:
            console.print("[bold]dry run[/]: nothing was changed; the plan of every step:")
            for line in plan_lines(view):
                console.print(f"  {line}", markup=False)
        console.print(steps_table(view))
        if view["error"]:
            errors.print(f"run {view['status']}: {view['error']}", markup=False)
    if view["status"] == "succeeded":
        return 0
    if view["status"] == "awaiting_approval":
        return EXIT_WAITING
    return EXIT_FAILED
