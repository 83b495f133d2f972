"""``irflow run`` as a user runs it: real processes, the HTTPS simulator, dry run then containment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.slow
TARGETS = ("phipatientexports", "phiimaging")


def _writes(info: dict) -> list[dict]:  # type: ignore[type-arg]
    answer = requests.get(
        f"{info['endpoint']}/_sim/journal",
        params={"writes": "true"},
        headers={"Authorization": f"Bearer {info['token']}"},
        verify=info["ca_file"],
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()


def test_dry_run_prints_every_plan_and_writes_nothing_then_the_run_contains(
    sim_process, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    info = sim_process
    env = {
        **os.environ,
        **info["env"],
        "IRFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'irflow.db'}",
        "IRFLOW_QUEUE_POLLING_INTERVAL": "0.05",
        "IRFLOW_ONCALL_RECIPIENTS": "soc-oncall@example.org",
    }
    accounts = ",".join(
        f"/subscriptions/{info['subscription_id']}/resourceGroups/rg-phi-prod/providers/Microsoft.Storage/"
        f"storageAccounts/{name}"
        for name in TARGETS
    )
    command = [
        sys.executable,
        "-m",
        "irflow",
        "run",
        "storage-sas-exfiltration",
        "--param",
        f"storage_accounts={accounts}",
    ]
    dry = subprocess.run([*command, "--dry-run"], env=env, capture_output=True, text=True, timeout=180)
    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing was changed" in dry.stdout
    for line in ('properties.networkAcls.defaultAction: "Allow" -> "Deny"', "keys.key1", "keys.key2"):
        assert line in dry.stdout, line
    assert _writes(info) == []

    run = subprocess.run([*command, "--yes", "--json"], env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    view = json.loads(run.stdout)
    assert view["status"] == "succeeded" and not view["dry_run"]
    # isolation and the user-delegation revocation's marker tag, per account
    assert len([w for w in _writes(info) if w["method"] == "PATCH"]) == 2 * len(TARGETS)
