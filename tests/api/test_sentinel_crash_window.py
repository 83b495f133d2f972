"""The Sentinel intake's crash window: the claim of the incident id and its run commit together.

A real process receives an auto-starting Sentinel incident and is SIGKILLed just before the claim's commit,
or just after it (before the run's workflow starts). Then an engine launches and Sentinel re-delivers the
incident: in both cases exactly one incident and one run exist, the run completes, the audit chain verifies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sentinel_helpers import body_of, incident
from sqlalchemy import func, select

from irflow.audit import AuditChain
from irflow.engine import runtime
from irflow.engine.sentinel import receive
from irflow.engine.sentinel_payload import parse_delivery
from irflow.settings import Settings
from irflow.sim.models import Tenant
from irflow.sim.server import SimServer
from irflow.store.models import Incident, Run

REPO = Path(__file__).resolve().parents[2]
CRASHER = Path(__file__).with_name("sentinel_intake_crash.py")
IRFLOW_EGRESS_IP = "192.0.2.10"


@pytest.fixture
def sim() -> Iterator[SimServer]:
    tenant = Tenant.demo()
    tenant.set_caller_origin(ip=IRFLOW_EGRESS_IP)
    with SimServer(tenant) as server:
        yield server


def _counts(svc: runtime.Services) -> tuple[int, int, list[str]]:
    with svc.db.transaction() as session:
        incidents = session.scalar(select(func.count()).select_from(Incident)) or 0
        statuses = list(session.execute(select(Run.status)).scalars())
        return incidents, len(statuses), statuses


def _wait_for_run(svc: runtime.Services, run_id: str, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    status = "unknown"
    while time.monotonic() < deadline:
        with svc.db.transaction() as session:
            status = session.get(Run, run_id).status  # type: ignore[union-attr]
        if status in ("succeeded", "failed", "cancelled"):
            return status
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} still {status}")


@pytest.mark.parametrize("crash_at", ["before_commit", "after_commit"])
def test_a_crash_around_the_claim_neither_loses_nor_doubles_the_run(
    crash_at: str, database_url: str, sim: SimServer, tmp_path: Path
) -> None:
    assert sim.subscription_id is not None
    body = body_of(incident(sim.subscription_id, incident_name=f"crash-{crash_at}"))
    (tmp_path / "delivery.json").write_bytes(body)
    crashed = subprocess.run(
        [
            sys.executable,
            str(CRASHER),
            database_url,
            str(REPO / "playbooks"),
            str(tmp_path / "delivery.json"),
            crash_at,
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]

    settings = Settings(
        database_url=database_url,
        azure_cloud="custom",
        arm_endpoint=sim.endpoint,
        azure_ca_bundle=Path(sim.ca_file),
        azure_token=SecretStr(sim.token),
        queue_polling_interval=0.05,
        oncall_recipients="soc-oncall@example.org",
        playbooks_dir=REPO / "playbooks",
        egress_ips=IRFLOW_EGRESS_IP,
    )
    svc = runtime.launch(settings)  # a worker starts: runs committed without a workflow start now
    try:
        before = _counts(svc)
        if crash_at == "before_commit":
            assert before == (0, 0, [])  # nothing half-written
        else:
            assert before[:2] == (1, 1)  # the claim and its run, together
        intake = receive(svc, parse_delivery(body), actor="sentinel:redelivery")
        assert intake.deduplicated is (crash_at == "after_commit")
        assert intake.run_id is not None
        assert _wait_for_run(svc, intake.run_id) == "succeeded"
        assert _counts(svc) == (1, 1, ["succeeded"])
        with svc.db.transaction() as session:
            report = AuditChain().verify(session)
        assert report.ok, report.describe()
    finally:
        runtime.shutdown()
