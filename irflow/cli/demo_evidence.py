"""The demo's last act: anchor the audit chain in a WORM container of the simulated tenant and export the
incident's evidence package, then re-check the package offline as an auditor would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from irflow.audit.package import verify_package
from irflow.engine import runtime
from irflow.engine.anchor import AnchorConfig, AnchorStore, anchor_chain
from irflow.engine.export import write_evidence_package
from irflow.sim.models import Tenant

ANCHOR_ACCOUNT = "irflowauditanchors"


def export_demo_package(
    svc: runtime.Services, tenant: Tenant, run_dir: Path, incident_id: str
) -> dict[str, Any]:
    account = tenant.find_storage_account(ANCHOR_ACCOUNT)
    if account is None:
        # The anchor account sits beside the breached ones, outside the containment's reach.
        first = tenant.storage_accounts()[0]
        account = tenant.add_storage_account(first.subscription_id, first.resource_group, ANCHOR_ACCOUNT)
    store = AnchorStore(
        svc.clients,
        AnchorConfig(
            account_id=account.id, container="irflow-audit-anchors", retention_days=2190, prefix="chain"
        ),
    )
    anchor = anchor_chain(svc.db, store, actor="system:demo")
    summary = write_evidence_package(
        svc.db, incident_id, run_dir / f"evidence-{incident_id}.zip", anchors=store
    )
    report = verify_package(summary.path)
    return {
        "path": str(summary.path),
        "sha256": summary.sha256,
        "anchored_seq": anchor.anchor.seq,
        "anchor_account": account.id,
        "verified": report.ok,
        "anchored": report.anchored,
        "problems": report.problems,
    }
