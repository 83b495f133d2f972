"""Following a run on a remote irflow: its view read through the API until it ends or waits for a human.

The server's workers execute the run and settle it; this only reads (a little slower as it goes on), and
prints what the local follower prints.
"""

from __future__ import annotations

import time
from typing import Any

from rich.live import Live

from irflow.cli.backend import plain
from irflow.cli.common import console, is_tty
from irflow.cli.display import short_target, steps_table
from irflow.engine.machines import RUN_TERMINAL
from irflow.engine.services.runs import settled_at_gates

FIRST_POLL_S = 0.25
LAST_POLL_S = 2.0


def follow_remote(api: Any, run_id: str, *, quiet: bool = False, live: bool | None = None) -> dict[str, Any]:
    """Show the run's steps as they change until it ends or waits for a human; returns the last view."""
    live = is_tty() if live is None else live
    if quiet:
        return _wait(api, run_id, lambda view: None)
    if live:
        with Live(console=console, refresh_per_second=8, transient=False) as screen:
            return _wait(api, run_id, lambda view: screen.update(steps_table(view)))
    seen: dict[str, str] = {}

    def print_changes(view: dict[str, Any]) -> None:
        for step in view["steps"]:
            if seen.get(step["id"]) != step["state"]:
                seen[step["id"]] = step["state"]
                console.print(f"  {step['step']:<20} {short_target(step['target']):<26} {step['state']}")

    return _wait(api, run_id, print_changes)


def _wait(api: Any, run_id: str, show: Any) -> dict[str, Any]:
    pause = FIRST_POLL_S
    while True:
        view = api.show_run(run_id)
        shown = plain(view)
        show(shown)
        if view.status in RUN_TERMINAL or settled_at_gates(view):
            return shown
        time.sleep(pause)
        pause = min(LAST_POLL_S, pause * 1.25)
