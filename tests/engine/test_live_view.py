"""The live view of ``irflow run`` on a terminal: a progress bar per playbook step with its targets by state,
and each error printed above the view once, as it happens."""

from __future__ import annotations

import io

from rich.console import Console
from rich.live import Live

from irflow.cli.runs import _LiveBoard


def _view(states: list[tuple[str, str, str | None]], status: str = "running") -> dict:  # type: ignore[type-arg]
    return {
        "id": "run-1",
        "playbook": "storage-sas-exfiltration",
        "version": 6,
        "status": status,
        "steps": [
            {
                "id": f"s{n}",
                "step": step,
                "target": f"/subscriptions/x/storageAccounts/acct{n}",
                "state": state,
                "error": error,
            }
            for n, (step, state, error) in enumerate(states)
        ],
    }


def test_progress_per_step_targets_by_state_and_errors_once() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=140, color_system=None)
    board = _LiveBoard()
    with Live(console=console, auto_refresh=False) as screen:
        first = _view(
            [("isolate", "succeeded", None), ("isolate", "running", None), ("isolate", "failed", "boom: 403")]
        )
        screen.update(board.render(first, screen), refresh=True)
        screen.update(board.render(first, screen), refresh=True)  # the same error is not printed again
        later = _view(
            [
                ("isolate", "succeeded", None),
                ("isolate", "succeeded", None),
                ("isolate", "failed", "boom: 403"),
                ("rotate-keys", "pending", None),
            ]
        )
        screen.update(board.render(later, screen), refresh=True)
    text = out.getvalue()
    assert text.count("error isolate on acct2: boom: 403") == 1
    assert "2/3 failed 1 · running 1 · succeeded 1" in text
    assert "3/3 failed 1 · succeeded 2" in text
    assert "rotate-keys" in text and "0/1 pending 1" in text
    assert "run run-1 · storage-sas-exfiltration v6 · running" in text
