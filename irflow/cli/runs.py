"""Running playbooks in the foreground: progress, approvals at the terminal, the final report."""

from __future__ import annotations

import json
import time
from typing import Any

from rich.live import Live

from irflow.cli.common import EXIT_FAILED, EXIT_WAITING, console, errors, is_tty
from irflow.cli.display import plan_lines, short_target, steps_table
from irflow.engine.machines import RUN_TERMINAL, STEP_TERMINAL
from irflow.engine.runs import run_view, settle_if_workflow_ended

POLL_S = 0.25
WORKFLOW_CHECK_S = 2.0
TERMINAL = RUN_TERMINAL


def follow(svc: Any, run_id: str, *, quiet: bool = False, live: bool | None = None) -> dict[str, Any]:
    """Show the run's steps as they change until it ends or waits for a human; returns the last view."""
    live = is_tty() if live is None else live
    if quiet:
        return _wait(svc, run_id, lambda view: None)
    if live:
        with Live(console=console, refresh_per_second=8, transient=False) as screen:
            return _wait(svc, run_id, lambda view: screen.update(steps_table(view)))
    seen: dict[str, str] = {}

    def print_changes(view: dict[str, Any]) -> None:
        for step in view["steps"]:
            if seen.get(step["id"]) != step["state"]:
                seen[step["id"]] = step["state"]
                console.print(f"  {step['step']:<20} {short_target(step['target']):<26} {step['state']}")

    return _wait(svc, run_id, print_changes)


def _wait(svc: Any, run_id: str, show: Any) -> dict[str, Any]:
    checked = time.monotonic()
    while True:
        view = run_view(svc, run_id)
        show(view)
        if view["status"] in TERMINAL or _settled_at_gates(view):
            return view
        if time.monotonic() - checked >= WORKFLOW_CHECK_S:
            # A workflow that ended without ending its run (it could not write) would leave this loop
            # waiting forever: the run is settled from the workflow's own outcome instead.
            checked = time.monotonic()
            if settle_if_workflow_ended(svc, run_id) in TERMINAL:
                continue
        time.sleep(POLL_S)


def _settled_at_gates(view: dict[str, Any]) -> bool:
    """Waiting for approval, with every sibling target either at its gate too or finished; in a pipeline
    (``pipeline: true``) an item's later steps wait, pending, behind the item's gate."""
    gated = {step["item"] for step in view["steps"] if step["state"] == "awaiting_approval"}
    return view["status"] == "awaiting_approval" and all(
        step["state"] == "awaiting_approval"
        or step["state"] in STEP_TERMINAL
        or (step["state"] == "pending" and step["item"] in gated)
        for step in view["steps"]
    )


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
