"""A run whose process is killed (SIGKILL) resumes from its last completed step when irflow starts again.

Real processes: ``irflow sim serve`` over HTTPS with latency, ``irflow run`` killed mid-run, then
``irflow runs resume``. The simulator's journal proves no completed change was made twice.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.slow

TARGETS = ("phipatientexports", "phiclaimsarchive", "phiimaging")


def irflow_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "irflow", *args]


def _journal(info: dict) -> list[dict]:  # type: ignore[type-arg]
    answer = requests.get(
        f"{info['endpoint']}/_sim/journal",
        headers={"Authorization": f"Bearer {info['token']}"},
        verify=info["ca_file"],
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()


def _succeeded_steps(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM steps WHERE state = 'succeeded'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_killed_run_resumes_from_its_last_completed_step(sim_process, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    info = sim_process
    db = tmp_path / "irflow.db"
    env = {
        **os.environ,
        **info["env"],
        "IRFLOW_DATABASE_URL": f"sqlite:///{db}",
        "IRFLOW_QUEUE_POLLING_INTERVAL": "0.05",
        "IRFLOW_ONCALL_RECIPIENTS": "soc-oncall@example.org",
    }
    accounts = ",".join(
        f"/subscriptions/{info['subscription_id']}/resourceGroups/rg-phi-prod/providers/Microsoft.Storage/"
        f"storageAccounts/{name}"
        for name in TARGETS
    )
    run = subprocess.Popen(
        irflow_command(
            "run", "storage-sas-exfiltration", "--param", f"storage_accounts={accounts}", "--yes", "--json"
        ),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    deadline = time.monotonic() + 120
    while _succeeded_steps(db) < 8:  # every account read, the accounts' chains under way, not all done
        assert run.poll() is None, run.stderr.read().decode() if run.stderr else ""
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.05)
    run.kill()
    run.wait(timeout=10)
    with sqlite3.connect(db) as conn:
        status = conn.execute("SELECT status FROM runs").fetchone()[0]
        done_before = conn.execute("SELECT count(*) FROM steps WHERE state = 'succeeded'").fetchone()[0]
    assert status == "running" and done_before < 22

    resumed = subprocess.run(
        irflow_command("runs", "resume"),
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "succeeded" in resumed.stdout

    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status FROM runs").fetchone()[0] == "succeeded"
        states = conn.execute("SELECT state, count(*) FROM steps GROUP BY state").fetchall()
    assert states == [("succeeded", 22)]

    writes = [entry for entry in _journal(info) if entry["is_write"]]
    regenerated = Counter(
        (e["path"].split("/")[8], e["body"]["keyName"])
        for e in writes
        if e["route"] == "storage.accounts.regenerate_key"
    )
    assert regenerated == Counter({(name, key): 1 for name in TARGETS for key in ("key1", "key2")})
    arm = [e for e in writes if e["path"].startswith("/subscriptions/")]
    for method, times in (("PATCH", 2), ("PUT", 1)):  # isolation + revocation tag; data protection
        changed = Counter(e["path"].split("/")[8] for e in arm if e["method"] == method)
        assert changed == Counter({name: times for name in TARGETS}), method
    revocations = [e for e in arm if e["route"].endswith("revoke_user_delegation_keys")]
    assert Counter(e["path"].split("/")[8] for e in revocations) == Counter({name: 1 for name in TARGETS})
    acl_writes = [e for e in writes if not e["path"].startswith("/subscriptions/")]
    assert len(acl_writes) == 1  # the one stored access policy, removed once

    verify = subprocess.run(
        irflow_command("audit", "verify"), env=env, capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
