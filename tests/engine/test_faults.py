"""The fault test: shipped playbooks through the real CLI against ``irflow sim serve`` misbehaving like a
loaded Azure (10 % 5xx and 429 bursts with Retry-After; 50 % connection timeouts). Every run completes or ends
failed with a clear error per step; none hangs (each CLI call has a bounded wait); no step reports success
that Azure does not show; a step's ``timeout`` fires; a failed run never blocks the next one;
``irflow runs resume`` exits non-zero when the run it resumed failed.

Fault draws are seeded: the seed is printed, ``IRFLOW_FAULT_SEED`` fixes it to replay a failure.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from irflow_procs import (
    ACCOUNTS,
    SimProcess,
    irflow_command,
    irflow_env,
    run_cli,
    seed_from_env,
    sim_serve,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

TERMINAL = {"succeeded", "failed", "skipped", "cancelled"}
TARGETS = ACCOUNTS[:2]  # two accounts: every kind of call, half the suite's time of three


def _containment(sim: SimProcess, db: Path, playbook: str = "storage-sas-exfiltration") -> Any:
    accounts = ",".join(sim.account_id(name) for name in TARGETS)
    return run_cli(
        irflow_env(sim, db), "run", playbook, "--param", f"storage_accounts={accounts}", "--yes", "--json"
    )


def _accounts(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {account["id"].lower(): account for account in state["storage_accounts"]}


def assert_clear_outcome(
    result: subprocess.CompletedProcess[str], sim: SimProcess, before: dict[str, Any]
) -> dict[str, Any]:
    """The run ended, said so truthfully, and every succeeded step is visible in Azure's own state."""
    assert result.returncode in (0, 1), result.stdout[-2000:] + result.stderr[-2000:]
    view = json.loads(result.stdout)
    assert view["status"] in ("succeeded", "failed")
    assert (result.returncode == 0) == (view["status"] == "succeeded")  # exit 0 only for a succeeded run
    assert view["finished_at"] is not None
    for step in view["steps"]:
        assert step["state"] in TERMINAL, step
        if step["state"] == "failed":  # a clear reason, per step
            assert step["error"] and "Traceback" not in step["error"] and len(step["error"]) <= 1000, step
    if view["status"] == "failed":
        assert view["error"].startswith("step "), view["error"]
        assert any(step["state"] == "failed" for step in view["steps"])
    else:
        assert view["error"] is None and all(s["state"] == "succeeded" for s in view["steps"])

    # No step reports a success Azure does not show (Azure's own record: state and accepted writes).
    now, then = _accounts(sim.state()), _accounts(before)
    mutations = sim.journal(mutations=True)
    for step in view["steps"]:
        if step["state"] != "succeeded" or not step["target"] or not step["action"].startswith("storage."):
            continue
        target = step["target"].lower()
        name = target.rsplit("/", 1)[-1]
        if step["result"]["changed"]:
            assert any(
                m["path"].lower().startswith(target) or f"/{name}/" in m["path"].lower() + "/"
                for m in mutations
            ), f"{step['step']} on {name} reports a change Azure never accepted"
        account, baseline = now[target], then[target]
        if step["action"] == "storage.isolate_account":
            assert (
                account["networkAcls"]["defaultAction"] == "Deny"
                and account["allowBlobPublicAccess"] is False
            )
        elif step["action"] == "storage.rotate_account_keys":
            for key in ("key1", "key2"):
                assert account["keyCreationTime"][key] != baseline["keyCreationTime"][key], (name, key)
        elif step["action"] == "storage.revoke_user_delegation_keys":
            assert account["user_delegation_keys_revoked_at"] is not None
        elif step["action"] == "storage.block_public_containers":
            assert all(c["publicAccess"] in (None, "None") for c in account["containers"]), name
        elif step["action"] == "storage.remove_stored_access_policies":
            assert all(not c["storedAccessPolicies"] for c in account["containers"]), name
    return dict(view)


def _audit_verifies(env: dict[str, str]) -> None:
    verify = run_cli(env, "audit", "verify", timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_5xx_and_429_bursts_runs_complete_or_fail_clearly(tmp_path: Path) -> None:
    seed = seed_from_env("IRFLOW_FAULT_SEED")
    flags = ("--error-rate", "0.1", "--burst-rate", "0.05", "--burst-retry-after", "1", "--seed", str(seed))
    with sim_serve(*flags) as sim:
        db = tmp_path / "irflow.db"
        before = sim.state()
        view = assert_clear_outcome(_containment(sim, db), sim, before)
        # a second shipped playbook on the same database: the first run, whatever its end, blocks nothing
        again = _containment(sim, db, "public-blob-exposure")
        assert_clear_outcome(again, sim, before)
        # The faults were there. Both runs make about 60 calls: a seed drawing no 500 among them happens
        # (0.9^60, 0.2 %); none of either kind (~0.01 %) would mean the faults were not on.
        statuses = {entry["status"] for entry in sim.journal()}
        assert statuses & {500, 429}, statuses
        _audit_verifies(irflow_env(sim, db))
    second = json.loads(again.stdout)["status"]
    print(f"storage-sas-exfiltration: {view['status']}; public-blob-exposure: {second}")


def test_half_the_calls_timing_out_runs_complete_or_fail_clearly(tmp_path: Path) -> None:
    seed = seed_from_env("IRFLOW_FAULT_SEED")
    # each timed-out call hangs half a second, then its connection closes with no answer
    flags = ("--timeout-rate", "0.5", "--timeout-seconds", "0.5", "--seed", str(seed))
    with sim_serve(*flags) as sim:
        db = tmp_path / "irflow.db"
        before = sim.state()
        # the ARM-only shipped containment (the blob data plane's SDK waits 15 s and more between retries)
        view = assert_clear_outcome(_containment(sim, db, "public-blob-exposure"), sim, before)
        assert 0 in [entry["status"] for entry in sim.journal()]  # calls did time out
        assert all(entry["status"] != 0 for entry in sim.journal(mutations=True))
        # whatever happened, the next run on this database is not blocked: with the network healed it succeeds
        sim.set_faults(timeout_rate=0.0)
        healed = _containment(sim, db, "public-blob-exposure")
        assert healed.returncode == 0, healed.stdout[-2000:] + healed.stderr[-2000:]
        assert_clear_outcome(healed, sim, before)
        _audit_verifies(irflow_env(sim, db))
    print(f"first run {view['status']}")


TIMED = """\
name: isolate-within-a-deadline
version: 1
inputs:
  storage_accounts: {type: 'list[resource_id]'}
steps:
  - id: isolate
    action: storage.isolate_account
    for_each: '{{ inputs.storage_accounts }}'
    with: {account: '{{ item }}'}
    timeout: 2
    retry: {max_attempts: 3, backoff: fixed, delay_s: 0}
"""


def test_a_step_timeout_fires_and_the_failed_run_blocks_nothing(tmp_path: Path) -> None:
    playbook = tmp_path / "timed.yaml"
    playbook.write_text(TIMED)
    # every call hangs 8 s (well past the step's 2 s timeout), then gets no answer
    with sim_serve("--timeout-rate", "1", "--timeout-seconds", "8") as sim:
        db = tmp_path / "irflow.db"
        before = sim.state()
        timed_out = _containment(sim, db, str(playbook))
        view = assert_clear_outcome(timed_out, sim, before)
        assert view["status"] == "failed"
        assert [s["error"] for s in view["steps"]] == ["timed out after 2 s"] * len(TARGETS)
        assert sim.journal(mutations=True) == []
        sim.set_faults(timeout_rate=0.0)
        fine = _containment(sim, db, str(playbook))
        assert fine.returncode == 0, fine.stdout[-2000:] + fine.stderr[-2000:]
        states = [s["state"] for s in assert_clear_outcome(fine, sim, before)["steps"]]
        assert states == ["succeeded"] * len(TARGETS)
        listed = run_cli(irflow_env(sim, db), "runs", "list", "--json", timeout=120)
        assert json.loads(listed.stdout)["items"] == []  # nothing left unfinished


def test_runs_resume_exits_non_zero_when_the_resumed_run_failed(tmp_path: Path) -> None:
    with sim_serve("--latency-ms", "100") as sim:
        db = tmp_path / "irflow.db"
        env = irflow_env(sim, db)
        accounts = ",".join(sim.account_id(name) for name in TARGETS)
        run = subprocess.Popen(
            irflow_command(
                "run", "storage-sas-exfiltration", "--param", f"storage_accounts={accounts}", "--yes"
            ),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        try:
            # killed once the first account is isolated, well before any key is rotated
            wait_until(
                lambda: any(m["route"] == "storage.accounts.update" for m in sim.journal(mutations=True)),
                180,
                "the run isolates an account",
            )
        finally:
            run.kill()
            run.wait(timeout=30)
        # meanwhile irflow lost the right to regenerate keys: rotation fails for good (403)
        sim.deny("Microsoft.Storage/storageAccounts/regeneratekey/action")
        resumed = run_cli(env, "runs", "resume", timeout=240)
        assert resumed.returncode == 1, resumed.stdout + resumed.stderr
        assert ": failed" in resumed.stdout and "Traceback" not in resumed.stderr
        shown = run_cli(env, "runs", "list", "--all", "--json", timeout=120)
        [item] = json.loads(shown.stdout)["items"]
        assert item["status"] == "failed"
        assert not any(m["route"] == "storage.accounts.regenerate_key" for m in sim.journal(mutations=True))
        _audit_verifies(env)
