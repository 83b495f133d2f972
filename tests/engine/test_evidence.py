"""Forensics through the engine: evidence rows, ``evidence.captured`` audit events, an intact chain."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sqlalchemy import select

from irflow.audit import AuditChain
from irflow.engine import runtime
from irflow.engine.runs import run_view, submit_run
from irflow.redaction import fingerprint
from irflow.sim.server import SimServer
from irflow.store.models import AuditEvent, Evidence

PLAYBOOK = """
name: evidence-drill
version: 1
description: Capture state and preserve the PHI blobs as evidence.
inputs:
  account: {type: resource_id, description: PHI storage account}
  evidence_account: {type: resource_id, description: Evidence storage account}
steps:
  - id: capture-before
    action: forensics.capture_resource_state
    with: {resources: ["{{ inputs.account }}"], phase: before}
  - id: preserve
    action: forensics.snapshot_containers
    with: {account: "{{ inputs.account }}", evidence_account: "{{ inputs.evidence_account }}"}
"""


def test_playbook_captures_evidence_with_a_chain_of_custody(
    svc: runtime.Services, sim: SimServer, tmp_path: Path
) -> None:
    path = tmp_path / "evidence-drill.yaml"
    path.write_text(PLAYBOOK)
    params = {
        "account": sim.tenant.storage_account("phipatientexports").id,
        "evidence_account": sim.tenant.storage_account("webassetscdn").id,
    }
    first = submit_run(svc, str(path), params, actor="cli:tester", auto_approve=True)
    assert first.handle.get_result() == "succeeded", run_view(svc, first.run_id)
    writes = len(sim.tenant.journal.writes())
    assert writes == 3 + 2 * 3  # evidence container, legal hold, immutability; per blob a snapshot and copy

    again = submit_run(
        svc, str(path), params, actor="cli:tester", auto_approve=True, incident_id=first.incident_id
    )
    assert again.handle.get_result() == "succeeded"
    assert len(sim.tenant.journal.writes()) == writes
    assert all(not step["result"]["changed"] for step in run_view(svc, again.run_id)["steps"])

    with svc.db.transaction() as session:
        rows = list(session.scalars(select(Evidence).where(Evidence.incident_id == first.incident_id)))
        assert sorted(r.kind for r in rows) == ["blob_copy"] * 3 + ["resource_state"]
        state = next(r for r in rows if r.kind == "resource_state")
        assert state.content is not None
        assert hashlib.sha256(state.content.encode("utf-8")).hexdigest() == state.sha256
        events = list(
            session.scalars(
                select(AuditEvent).where(
                    AuditEvent.type == "evidence.captured", AuditEvent.incident_id == first.incident_id
                )
            )
        )
        payloads = {json.loads(e.payload)["evidence_id"]: json.loads(e.payload) for e in events}
        assert set(payloads) == {r.id for r in rows}
        for row in rows:
            assert payloads[row.id]["sha256"] == row.sha256
            # Blob names may hold PHI: the chain of custody names source and location by fingerprint.
            assert payloads[row.id]["location_fingerprint"] == fingerprint(row.location)
            assert payloads[row.id]["source_fingerprint"] == fingerprint(row.source)
            assert "location" not in payloads[row.id] and "source" not in payloads[row.id]
        assert AuditChain().verify(session).ok
