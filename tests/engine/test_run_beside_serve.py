"""``irflow run`` while ``irflow serve`` runs on the same SQLite database: the run is submitted to the runs
queue and executed by serve's worker (the engine lock keeps SQLite to one executor); ``irflow run`` only
follows it, and exits with the run's outcome."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_run_is_executed_by_the_serving_worker(sim_process, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    info = sim_process
    db = tmp_path / "irflow.db"
    env = {
        **os.environ,
        **info["env"],
        "IRFLOW_DATABASE_URL": f"sqlite:///{db}",
        "IRFLOW_QUEUE_POLLING_INTERVAL": "0.05",
        "IRFLOW_ONCALL_RECIPIENTS": "soc-oncall@example.org",
        "IRFLOW_PLAYBOOKS_DIR": str(REPO / "playbooks"),
    }
    port = _free_port()
    serve_log = open(tmp_path / "serve.log", "w")  # noqa: SIM115
    serve = subprocess.Popen(
        [sys.executable, "-m", "irflow", "serve", "--port", str(port)],
        env={**env, "IRFLOW_EXECUTOR_ID": "serve-1"},
        cwd=tmp_path,
        stdout=serve_log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "serve never became ready"
            time.sleep(0.2)
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
        assert serve.poll() is None  # serve kept running: no EngineBusy, no second executor
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)
        serve_log.close()
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
