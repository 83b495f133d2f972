"""``irflow run`` while ``irflow serve`` runs on the same SQLite database: the run is submitted to the runs
queue and executed by serve's worker (the engine lock keeps SQLite to one executor); ``irflow run`` only
follows it, and exits with the run's outcome."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from procs import irflow_env, start_serve

pytestmark = pytest.mark.slow


def test_run_is_executed_by_the_serving_worker(sim_process, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    info = sim_process
    db = tmp_path / "irflow.db"
    env = irflow_env(info, f"sqlite:///{db}")
    serve = start_serve(
        {**env, "IRFLOW_EXECUTOR_ID": "serve-1"}, tmp_path, log=tmp_path / "serve.log", ready_within=60
    )
    try:
        account = (
            f"/subscriptions/{info['subscription_id']}/resourceGroups/rg-phi-prod/providers/"
            "Microsoft.Storage/storageAccounts/phiimaging"
        )
        command = [
            sys.executable,
            "-m",
            "irflow",
            "run",
            "storage-sas-exfiltration",
            "-p",
            f"storage_accounts={account}",
        ]
        human = subprocess.run(
            [*command, "--dry-run"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180
        )
        assert human.returncode == 0, human.stderr
        assert "executed by worker serve-1" in human.stdout
        assert "dry run: nothing was changed" in human.stdout
        run = subprocess.run(
            [*command, "--yes", "--json"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180
        )
        assert run.returncode == 0, run.stderr
        view = json.loads(run.stdout)
        assert view["status"] == "succeeded"
        assert serve.process.poll() is None  # serve kept running: no EngineBusy, no second executor
    finally:
        serve.stop()
    with sqlite3.connect(tmp_path / "irflow.dbos.db") as conn:
        executors = dict(
            conn.execute(
                "SELECT workflow_uuid, executor_id FROM workflow_status WHERE workflow_uuid = ?",
                (view["id"],),
            ).fetchall()
        )
        all_executors = {row[0] for row in conn.execute("SELECT DISTINCT executor_id FROM workflow_status")}
    assert executors == {view["id"]: "serve-1"}
    assert all_executors == {"serve-1"}  # the fan-out too: irflow run never executed anything
