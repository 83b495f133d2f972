"""Nothing hangs, nothing gets stuck: every kind of error in a step ends as a clear step failure and a failed
run, and one broken run never blocks the next one."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dbos import DBOS, SetWorkflowID
from dbos._error import DBOSAwaitedWorkflowCancelledError

from irflow.audit import AuditChain
from irflow.engine import runtime
from irflow.engine.playbook import coerce_inputs, load_playbook
from irflow.engine.runs import run_view, submit_run
from irflow.redaction import fingerprint
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
    [
        "{{ 1 / (inputs.storage_accounts | length - 1) }}",  # 1/0 once an input is known
        "{{ inputs.storage_accounts[0] + 1 }}",
        "{{ inputs.storage_accounts[99] }}",
    ],
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


@DBOS.workflow()
def _workflow_that_errors(run_id: str) -> str:
    """Stands for a workflow that errored before it could end its run (its database unreachable then)."""
    raise RuntimeError(f"lost the database while running {run_id}")


def _stuck_run(svc: runtime.Services, sim: SimServer, tmp_path: Path) -> str:
    """A run left ``pending`` whose workflow ended in ERROR: what a crashed workflow used to leave behind."""
    loaded = load_playbook(Path(_playbook(tmp_path, "stuck")))
    run = svc.state.open_incident_and_run(
        title="stuck",
        severity="high",
        source="cli",
        actor="cli:tester",
        playbook_name=loaded.spec.name,
        playbook_version=loaded.spec.version,
        playbook_hash=loaded.content_hash,
        playbook_content=loaded.content,
        params=coerce_inputs(loaded.spec, _account(sim)),
        dry_run=False,
        auto_approve=True,
    )
    with SetWorkflowID(run.run_id):
        handle = DBOS.start_workflow(_workflow_that_errors, run.run_id)
    with pytest.raises(RuntimeError):
        handle.get_result()
    return run.run_id


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "IRFLOW_DATABASE_URL": settings.database_url,
        "IRFLOW_AZURE_CLOUD": "custom",
        "IRFLOW_ARM_ENDPOINT": settings.arm_endpoint or "",
        "IRFLOW_AZURE_CA_BUNDLE": str(settings.azure_ca_bundle),
        "IRFLOW_AZURE_TOKEN": settings.azure_token.get_secret_value() if settings.azure_token else "",
        "IRFLOW_QUEUE_POLLING_INTERVAL": "0.05",
        "IRFLOW_ONCALL_RECIPIENTS": "soc-oncall@example.org",
        "IRFLOW_PLAYBOOKS_DIR": str(settings.playbooks_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "irflow", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


def test_a_run_whose_workflow_errored_is_settled_failed_and_blocks_nothing(
    settings: Settings, sim: SimServer, tmp_path: Path
) -> None:
    svc = runtime.launch(settings)
    try:
        stuck = _stuck_run(svc, sim, tmp_path)
    finally:
        runtime.shutdown()

    listed = _cli(settings, "runs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [item] = json.loads(listed.stdout)["items"]
    assert item["id"] == stuck and item["status"] == "pending" and item["workflow"]["status"] == "ERROR"

    resumed = _cli(settings, "runs", "resume")
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    assert f"run {stuck}: failed" in resumed.stdout
    assert "Traceback" not in resumed.stderr

    fine = _cli(
        settings,
        "run",
        _playbook(tmp_path, "fine"),
        "--param",
        f"storage_accounts={sim.tenant.storage_account('phiimaging').id}",
        "--json",
    )
    assert fine.returncode == 0, fine.stdout + fine.stderr
    assert json.loads(fine.stdout)["status"] == "succeeded"
    assert json.loads(_cli(settings, "runs", "list", "--json").stdout)["items"] == []

    retried = _cli(settings, "runs", "retry", stuck, "--json")  # the settled run, once more, to success
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert json.loads(retried.stdout)["status"] == "succeeded"
    assert _cli(settings, "runs", "retry", stuck).returncode == 2  # only a failed run can be retried

    services = runtime.launch(settings)
    try:
        assert run_view(services, stuck)["status"] == "succeeded"
        with services.db.transaction() as session:
            assert AuditChain().verify(session).ok
            [retried] = [e for e in AuditChain().events(session) if e.type == "run.retried"]
            failed = [
                e for e in AuditChain().events(session) if e.type == "run.failed" and stuck in e.payload
            ]
        assert retried.actor.startswith("cli:")
        assert "workflow ended (ERROR)" in failed[0].payload and "lost the database" in failed[0].payload
    finally:
        runtime.shutdown()


def test_cancel_stops_a_waiting_run_audited_with_its_actor(
    svc: runtime.Services, sim: SimServer, tmp_path: Path
) -> None:
    gated = _playbook(tmp_path, "gated", "    requires_approval: true\n")
    run = submit_run(svc, gated, _account(sim), actor="cli:responder")
    deadline = time.monotonic() + 60
    while run_view(svc, run.run_id)["status"] != "awaiting_approval":
        assert time.monotonic() < deadline
        time.sleep(0.05)

    # another process cancels while this one runs the engine
    cancelled = _cli(svc.settings, "runs", "cancel", run.run_id, "--reason", "false positive", "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout) == {
        "run_id": run.run_id,
        "from": "awaiting_approval",
        "status": "cancelled",
        "steps_cancelled": 1,
    }
    with pytest.raises(DBOSAwaitedWorkflowCancelledError):
        run.handle.get_result()
    view = run_view(svc, run.run_id)
    assert view["status"] == "cancelled" and [s["state"] for s in view["steps"]] == ["cancelled"]
    assert sim.tenant.journal.writes() == []
    with svc.db.transaction() as session:
        events = [e for e in AuditChain().events(session) if run.run_id in e.payload]
        assert AuditChain().verify(session).ok
    by_type = {e.type: e for e in events}
    assert by_type["run.cancelled"].actor.startswith("cli:") and by_type["step.cancelled"].actor.startswith(
        "cli:"
    )
    # The reason is free text: the trail holds its fingerprint, the run row the reason (sealed).
    assert json.loads(by_type["run.cancelled"].payload)["reason_fingerprint"] == fingerprint("false positive")
    assert run_view(svc, run.run_id)["error"].endswith(": false positive")

    again = _cli(svc.settings, "runs", "cancel", run.run_id)
    assert again.returncode == 2 and "already ended (cancelled)" in again.stderr
    missing = _cli(svc.settings, "runs", "cancel", "no-such-run")
    assert missing.returncode == 2 and "no run no-such-run" in missing.stderr
