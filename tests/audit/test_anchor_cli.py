"""``irflow audit anchor`` / ``irflow audit verify`` as processes, against the simulator served over HTTPS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import delete

from irflow.audit import AuditChain
from irflow.sim.models import Tenant
from irflow.sim.server import SimServer
from irflow.store.db import Database, upgrade
from irflow.store.models import AuditEvent, AuditHead

ANCHOR_ACCOUNT = "irflowauditanchors"


def irflow(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IRFLOW_")}
    return subprocess.run(
        [sys.executable, "-m", "irflow", *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_anchor_then_a_tail_and_head_rewrite_fails_verify(tmp_path: Path) -> None:
    tenant = Tenant.demo()
    bystander = tenant.storage_account("webassetscdn")
    tenant.add_storage_account(bystander.subscription_id, bystander.resource_group, ANCHOR_ACCOUNT)
    url = f"sqlite:///{tmp_path / 'irflow.db'}"
    db = Database(url)
    upgrade(db.engine)
    for index in range(5):
        with db.transaction() as session:
            AuditChain().append(
                session, actor="tester", type="test.event", incident_id="inc-1", payload={"i": index}
            )

    with SimServer(tenant) as server:
        env = {
            "IRFLOW_DATABASE_URL": url,
            "IRFLOW_AZURE_CLOUD": "custom",
            "IRFLOW_ARM_ENDPOINT": server.endpoint,
            "IRFLOW_AUTHORITY": server.endpoint,
            "IRFLOW_AZURE_CA_BUNDLE": str(server.ca_file),
            "IRFLOW_AZURE_TOKEN": server.token,
        }
        unset = irflow("audit", "anchor", cwd=tmp_path, env={"IRFLOW_DATABASE_URL": url})
        assert unset.returncode == 2 and "IRFLOW_ANCHOR_ACCOUNT_ID" in unset.stderr

        env["IRFLOW_ANCHOR_ACCOUNT_ID"] = tenant.storage_account(ANCHOR_ACCOUNT).id
        anchored = irflow("audit", "anchor", "--json", cwd=tmp_path, env=env)
        assert anchored.returncode == 0, anchored.stderr
        assert json.loads(anchored.stdout)["seq"] == 5 and json.loads(anchored.stdout)["created"] is True
        verified = irflow("audit", "verify", cwd=tmp_path, env=env)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "anchors: 1 checked, last anchors event #5" in verified.stdout

        # Drop the tail (#4..#6, the anchor event included) and point the head row at #3.
        with db.transaction() as session:
            session.execute(delete(AuditEvent).where(AuditEvent.seq > 3))
            head = session.get(AuditHead, 1)
            head.seq, head.hash = 3, session.get(AuditEvent, 3).hash  # type: ignore[union-attr]
        plain = irflow("audit", "verify", cwd=tmp_path, env={"IRFLOW_DATABASE_URL": url})
        assert plain.returncode == 0  # without the anchors the rewrite is invisible
        caught = irflow("audit", "verify", "--json", cwd=tmp_path, env=env)
        assert caught.returncode == 1
        report = json.loads(caught.stdout)
        assert report["ok"] is False and report["first_bad_seq"] == 5
        assert "rewritten before the last anchor" in report["reason"]
        refused = irflow("audit", "anchor", cwd=tmp_path, env=env)
        assert refused.returncode == 1 and "fails verification" in refused.stderr
        assert "Traceback" not in refused.stderr
    db.dispose()
