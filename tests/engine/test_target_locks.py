"""Concurrent runs of one containment never apply the same change twice (per action + target locks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import requests

from irflow.audit import AuditChain
from irflow.engine import runtime
from irflow.engine.runs import run_view, submit_run
from irflow.engine.state import StateStore
from irflow.engine.target_locks import lock_key
from irflow.sim.server import SimServer
from irflow.store.db import Database, upgrade

PLAYBOOK = "storage-sas-exfiltration"
TARGETS = ("phipatientexports", "phiclaimsarchive", "phiimaging")
REPO = Path(__file__).resolve().parents[2]


def _changes(writes: list[dict]) -> Counter[tuple[str, str, str]]:  # type: ignore[type-arg]
    """Each Azure write as (method, path, body): the same change made twice counts 2. (One account takes two
    different PATCHes: its isolation, and the tag recording that its user-delegation keys were revoked.)"""
    return Counter(
        (w["method"], w["path"], json.dumps(w.get("body"), sort_keys=True, default=str)) for w in writes
    )


def _assert_writes_of_one_run(writes: list[dict]) -> None:  # type: ignore[type-arg]
    changes = _changes(writes)
    assert changes and all(count == 1 for count in changes.values()), changes
    regenerated = Counter(
        (w["path"].split("/")[8], w["body"]["keyName"])
        for w in writes
        if w["route"] == "storage.accounts.regenerate_key"
    )
    assert regenerated == Counter({(name, key): 1 for name in TARGETS for key in ("key1", "key2")})
    isolated = Counter(
        w["path"].split("/")[8]
        for w in writes
        if w["method"] == "PATCH"
        and w["path"].startswith("/sub")
        and "networkAcls" in ((w.get("body") or {}).get("properties") or {})
    )
    assert isolated == Counter({name: 1 for name in TARGETS})
    print(f"\n{len(writes)} Azure writes in the simulator's journal, {len(changes)} distinct")


def test_lock_keys_are_stable_and_distinct() -> None:
    key = lock_key("storage.isolate_account", "/subscriptions/s/x")
    assert key == lock_key("storage.isolate_account", "/subscriptions/s/x")
    assert -(2**63) <= key < 2**63
    assert key != lock_key("storage.rotate_account_keys", "/subscriptions/s/x")
    assert key != lock_key("storage.isolate_account", "/subscriptions/s/y")


def test_two_runs_of_one_incident_in_one_process_write_once(svc: runtime.Services, sim: SimServer) -> None:
    params = {"storage_accounts": ",".join(sim.tenant.storage_account(n).id for n in TARGETS)}
    incident = svc.state.open_incident(title="SAS leak", severity="high", source="cli", actor="cli:tester")
    runs = [
        submit_run(svc, PLAYBOOK, params, actor="cli:tester", auto_approve=True, incident_id=incident)
        for _ in range(2)
    ]
    assert [run.handle.get_result() for run in runs] == ["succeeded", "succeeded"], [
        run_view(svc, run.run_id)["error"] for run in runs
    ]
    writes = [
        {"method": e.method, "path": e.path, "body": e.body, "route": e.route}
        for e in sim.tenant.journal.writes()
    ]
    _assert_writes_of_one_run(writes)


def _gated(directory: Path) -> Path:
    """The shipped containment gated before isolation: both runs wait there, then go at once."""
    text = (REPO / "playbooks" / f"{PLAYBOOK}.yaml").read_text()
    marker = "    action: storage.isolate_account\n"
    assert marker in text
    path = directory / "gated-containment.yaml"
    path.write_text(text.replace(marker, marker + "    requires_approval: true\n"))
    return path


def _finish(process: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        return process.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        pytest.fail(f"irflow hung: {process.args}\n{stderr[-3000:]}")


def _irflow(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "irflow", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )


@pytest.mark.slow
@pytest.mark.postgres
def test_two_processes_running_one_containment_write_once(
    postgres_url: str, sim_process, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    info = sim_process
    db = Database(postgres_url)
    upgrade(db.engine)
    incident = StateStore(db).open_incident(
        title="SAS leak", severity="high", source="cli", actor="cli:tester"
    )
    accounts = ",".join(
        f"/subscriptions/{info['subscription_id']}/resourceGroups/rg-phi-prod/providers/Microsoft.Storage/"
        f"storageAccounts/{name}"
        for name in TARGETS
    )
    playbook = str(_gated(tmp_path))
    envs = [
        {
            **os.environ,
            **info["env"],
            "IRFLOW_DATABASE_URL": postgres_url,
            "IRFLOW_EXECUTOR_ID": replica,
            "IRFLOW_QUEUE_POLLING_INTERVAL": "0.05",
            "IRFLOW_ONCALL_RECIPIENTS": "soc-oncall@example.org",
        }
        for replica in ("replica-a", "replica-b")
    ]
    started = [
        _irflow(
            env, "run", playbook, "--param", f"storage_accounts={accounts}", "--json", "--incident", incident
        )
        for env in envs
    ]
    run_ids = []
    for process in started:
        stdout, stderr = _finish(process)
        assert process.returncode == 3, stderr  # both wait at the gate
        run_ids.append(json.loads(stdout)["id"])
    # each replica resumes its own run and approves it: from here on, both apply the same changes at once
    approving = [
        _irflow(env, "runs", "approve", run_id, "--json") for env, run_id in zip(envs, run_ids, strict=True)
    ]
    for process in approving:
        stdout, stderr = _finish(process)
        assert process.returncode == 0, stderr
        assert json.loads(stdout)["status"] == "succeeded"

    answer = requests.get(
        f"{info['endpoint']}/_sim/journal",
        headers={"Authorization": f"Bearer {info['token']}"},
        verify=info["ca_file"],
        timeout=10,
    )
    answer.raise_for_status()
    _assert_writes_of_one_run([entry for entry in answer.json() if entry["is_write"]])
    with db.transaction() as session:
        assert AuditChain().verify(session).ok
    db.dispose()
