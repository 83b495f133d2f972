"""Nothing hangs, nothing gets stuck: every kind of error in a step ends as a clear step failure and a failed
run, and one broken run never blocks the next one."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from irflow.audit import AuditChain
from irflow.engine import runtime
from irflow.engine.runs import run_view, submit_run
from irflow.settings import Settings
from irflow.sim.server import SimServer

ISOLATE = (
    "name: {name}\nversion: 1\ninputs:\n  storage_accounts: {{type: 'list[resource_id]'}}\n"
    "steps:\n"
    "  - id: isolate\n    action: storage.isolate_account\n"
    "    for_each: '{{{{ inputs.storage_accounts }}}}'\n"
    "{extra}"
)


def _playbook(directory: Path, name: str, extra: str = "") -> str:
    path = directory / f"{name}.yaml"
    path.write_text(ISOLATE.format(name=name, extra=extra))
    return str(path)


def _account(sim: SimServer, name: str = "phiimaging") -> dict[str, str]:
    return {"storage_accounts": sim.tenant.storage_account(name).id}


def _events(svc: runtime.Services, run_id: str) -> list[str]:
    with svc.db.transaction() as session:
        return [e.type for e in AuditChain().events(session) if run_id in (e.payload or "")]


@pytest.mark.parametrize(
    "expression",
    ["{{ 1/0 }}", "{{ inputs.storage_accounts[0] + 1 }}", "{{ inputs.storage_accounts[99] }}"],
)
def test_any_exception_while_rendering_fails_the_step_and_the_run(
    svc: runtime.Services, sim: SimServer, tmp_path: Path, expression: str
) -> None:
    path = _playbook(
        tmp_path,
        "broken-template",
        f"  - id: then-lock\n    action: storage.isolate_account\n    with: {{account: '{expression}'}}\n",
    )
    run = submit_run(svc, path, _account(sim), actor="cli:tester", auto_approve=True)
    assert run.handle.get_result() == "failed"
    view = run_view(svc, run.run_id)
    assert view["status"] == "failed"
    assert view["error"].startswith("step then-lock: 1 of 1 targets failed; first error: cannot render")
    assert [(s["step"], s["state"]) for s in view["steps"]] == [
        ("isolate", "succeeded"),
        ("then-lock", "failed"),
    ]
    assert view["steps"][1]["error"].startswith("cannot render")
    assert "run.failed" in _events(svc, run.run_id)
    # the database keeps working: the next run succeeds
    again = submit_run(svc, _playbook(tmp_path, "fine"), _account(sim), actor="cli:tester", auto_approve=True)
    assert again.handle.get_result() == "succeeded"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def unreachable(settings: Settings) -> Iterator[runtime.Services]:
    """The engine pointed at an ARM endpoint where nothing listens: every call is a connection error."""
    broken = settings.model_copy(update={"arm_endpoint": f"https://127.0.0.1:{_closed_port()}"})
    services = runtime.launch(broken)
    yield services
    runtime.shutdown()


def test_connection_error_while_planning_is_retried_then_fails_the_run(
    unreachable: runtime.Services, sim: SimServer, tmp_path: Path
) -> None:
    path = _playbook(tmp_path, "unreachable", "    retry: {max_attempts: 2, backoff: fixed, delay_s: 0}\n")
    run = submit_run(unreachable, path, _account(sim), actor="cli:tester", auto_approve=True)
    assert run.handle.get_result() == "failed"
    view = run_view(unreachable, run.run_id)
    assert view["status"] == "failed" and view["finished_at"] is not None
    [step] = view["steps"]
    assert step["state"] == "failed"
    assert "ServiceRequestError" in step["error"]
    events = _events(unreachable, run.run_id)
    assert events.count("step.plan_retrying") == 1  # two attempts: the policy's max_attempts
    assert events[-1] == "run.failed"
