"""Forensics actions through the official SDKs against the simulated tenant, recording into a database."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from irflow.actions.base import PermissionDenied, ResourceMissing
from irflow.actions.forensics import (
    CaptureResourceState,
    CaptureResourceStateParams,
    ExportLogs,
    SnapshotContainers,
)
from irflow.audit import AuditChain
from irflow.engine.evidence import EvidenceRecorder
from irflow.engine.state import StateStore
from irflow.redaction import fingerprint
from irflow.sim.mock import mount
from irflow.sim.models import Tenant
from irflow.store.db import Database
from irflow.store.models import AuditEvent, Evidence

EXFIL_WORKSPACE = "7e3a9c51-2b4d-4f6e-9a8c-1d3e5f7a9b2c"
QUERY_READ = "Microsoft.OperationalInsights/workspaces/query/read"
BLOB_WRITE = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write"


@pytest.fixture
def incident_id(database: Database) -> str:
    return StateStore(database).open_incident(title="drill", severity="high", source="manual", actor="t")


@pytest.fixture
def forensic_context(make_context, database: Database, incident_id: str):  # type: ignore[no-untyped-def]
    def build(action: str, **params: object):  # type: ignore[no-untyped-def]
        ctx = make_context(action, **params)
        ctx.incident = {"id": incident_id}
        ctx.evidence = EvidenceRecorder(database)
        return ctx

    return build


def _rows(database: Database) -> list[Evidence]:
    with database.transaction() as session:
        return list(session.scalars(select(Evidence).order_by(Evidence.captured_at, Evidence.source)))


def _captured_events(database: Database) -> list[dict]:  # type: ignore[type-arg]
    with database.transaction() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.type == "evidence.captured"))
        return [json.loads(e.payload) for e in events]


def _writes(tenant: Tenant) -> list:  # type: ignore[type-arg]
    return [w for w in tenant.journal.writes() if w.status < 400]


class TestCaptureResourceState:
    def test_plan_apply_twice_verify_and_no_azure_write(  # type: ignore[no-untyped-def]
        self, tenant: Tenant, forensic_context, database: Database
    ) -> None:
        account = tenant.storage_account("phipatientexports").id
        ctx = forensic_context("forensics.capture_resource_state", resources=[account], phase="before")
        action = CaptureResourceState()
        plan = action.plan(ctx)
        assert [c.field for c in plan.changes] == [f"evidence.resource_state.before.{account}"]
        assert _rows(database) == [] and action.verify(ctx) is False
        first = action.apply(ctx)
        assert first.changed and len(first.outputs["evidence"]) == 1
        second = action.apply(ctx)
        assert not second.changed and second.outputs["evidence"] == []
        assert action.verify(ctx) is True
        assert tenant.journal.writes() == []
        (row,) = _rows(database)
        assert row.kind == "resource_state" and row.location == "database" and row.source == account
        assert row.content is not None
        data = row.content.encode("utf-8")
        assert hashlib.sha256(data).hexdigest() == row.sha256 and len(data) == row.size
        assert json.loads(row.content)["name"] == "phipatientexports"
        assert row.content == json.dumps(json.loads(row.content), sort_keys=True, separators=(",", ":"))
        (event,) = _captured_events(database)
        assert event == {
            "evidence_id": row.id,
            "kind": "resource_state",
            "source_fingerprint": fingerprint(account),  # ids only: a resource name may say what it holds
            "location_fingerprint": fingerprint("database"),
            "sha256": row.sha256,
            "size": row.size,
        }
        # "after" is another capture of the same resource
        after = forensic_context("forensics.capture_resource_state", resources=[account], phase="after")
        assert action.apply(after).changed and len(_rows(database)) == 2

    def test_every_supported_kind(self, tenant: Tenant, forensic_context, database: Database) -> None:  # type: ignore[no-untyped-def]
        vault = tenant.key_vault("kv-phi-prod").id
        group = vault.split("/providers/")[0]
        nsg = f"{group}/providers/Microsoft.Network/networkSecurityGroups/nsg-phi-data"
        vnet = f"{group}/providers/Microsoft.Network/virtualNetworks/vnet-phi"
        subnet = f"{vnet}/subnets/snet-phi-data"
        peering = f"{vnet}/virtualNetworkPeerings/peer-to-analytics"
        ctx = forensic_context(
            "forensics.capture_resource_state", resources=[vault, nsg, vnet, subnet, peering]
        )
        result = CaptureResourceState().apply(ctx)
        assert len(result.changes) == 5 and tenant.journal.writes() == []
        names = {json.loads(r.content or "{}")["name"] for r in _rows(database)}
        assert names == {"kv-phi-prod", "nsg-phi-data", "vnet-phi", "snet-phi-data", "peer-to-analytics"}

    def test_403_names_permission_and_scope(self, tenant: Tenant, forensic_context) -> None:  # type: ignore[no-untyped-def]
        account = tenant.storage_account("phipatientexports").id
        tenant.deny("Microsoft.Storage/storageAccounts/read", scope=account)
        ctx = forensic_context("forensics.capture_resource_state", resources=[account])
        with pytest.raises(PermissionDenied) as caught:
            CaptureResourceState().apply(ctx)
        assert "Microsoft.Storage/storageAccounts/read" in str(caught.value) and account in str(caught.value)

    def test_404_names_the_resource(self, tenant: Tenant, forensic_context) -> None:  # type: ignore[no-untyped-def]
        missing = tenant.storage_account("phipatientexports").id.replace("phipatientexports", "phigone")
        ctx = forensic_context("forensics.capture_resource_state", resources=[missing])
        with pytest.raises(ResourceMissing, match="phigone"):
            CaptureResourceState().plan(ctx)

    def test_after_containment_a_deleted_resource_is_recorded_as_absent(  # type: ignore[no-untyped-def]
        self, tenant: Tenant, forensic_context, database: Database
    ) -> None:
        missing = tenant.storage_account("phipatientexports").id.replace("phipatientexports", "phigone")
        ctx = forensic_context("forensics.capture_resource_state", resources=[missing], phase="after")
        assert CaptureResourceState().apply(ctx).changed
        [row] = _rows(database)
        assert json.loads(row.content or "{}") == {"id": missing, "absent": True}

    def test_params_are_validated(self) -> None:
        with pytest.raises(ValidationError, match="cannot capture"):
            CaptureResourceStateParams(
                resources=[
                    "/subscriptions/9b2f6c1d-4e8a-4f3b-a1c7-2d5e8f0a6b3c/resourceGroups/rg/providers/"
                    "Microsoft.Compute/virtualMachines/vm1"
                ]
            )
        with pytest.raises(ValidationError):
            CaptureResourceStateParams(resources=[])


class TestSnapshotContainers:
    def _ctx(self, tenant: Tenant, forensic_context, **extra):  # type: ignore[no-untyped-def]
        return forensic_context(
            "forensics.snapshot_containers",
            account=tenant.storage_account("phipatientexports").id,
            evidence_account=tenant.storage_account("webassetscdn").id,
            **extra,
        )

    def test_plan_writes_nothing(self, tenant: Tenant, forensic_context) -> None:  # type: ignore[no-untyped-def]
        plan = SnapshotContainers().plan(self._ctx(tenant, forensic_context))
        fields = [c.field for c in plan.changes]
        assert fields[:3] == [
            "evidence_container.irflow-evidence",
            "evidence_container.irflow-evidence.legalHold.tags",
            "evidence_container.irflow-evidence.immutabilityPolicy.immutabilityPeriodSinceCreationInDays",
        ]
        assert len(fields) == 6 and all(f.startswith("evidence.blob_copy.") for f in fields[3:])
        assert tenant.journal.writes() == []

    def test_apply_twice_copies_each_blob_once_into_immutable_storage(  # type: ignore[no-untyped-def]
        self, tenant: Tenant, forensic_context, database: Database
    ) -> None:
        ctx = self._ctx(tenant, forensic_context)
        action = SnapshotContainers()
        assert action.verify(ctx) is False
        first = action.apply(ctx)
        assert first.changed and len(first.outputs["evidence"]) == 3
        writes = _writes(tenant)
        # create container, legal hold, immutability policy, then per blob a snapshot and a copy
        assert len(writes) == 3 + 2 * 3
        second = action.apply(ctx)
        assert not second.changed and _writes(tenant) == writes
        assert action.verify(ctx) is True

        container = tenant.storage_account("webassetscdn").container("irflow-evidence")
        assert container.has_legal_hold and "irflowincident" in container.legal_hold_tags
        assert container.immutability is not None and container.immutability.days == 2190
        source = tenant.storage_account("phipatientexports").container("patient-exports")
        rows = _rows(database)
        assert len(rows) == 3 and {r.kind for r in rows} == {"blob_copy"}
        for row in rows:
            assert "?" not in row.source and "?" not in row.location and row.content is None
            blob_name = row.source.split("/patient-exports/", 1)[1].replace("%2F", "/")
            original = source.blobs[blob_name].content
            assert row.sha256 == hashlib.sha256(original).hexdigest() and row.size == len(original)
            assert row.meta["snapshot"] and "/irflow-evidence/" in row.location
        assert len(_captured_events(database)) == 3
        with database.transaction() as session:
            assert AuditChain().verify(session).ok

    def test_an_isolated_source_is_copied_over_irflows_path_in_blocks(  # type: ignore[no-untyped-def]
        self, tenant: Tenant, forensic_context, make_context, database: Database
    ) -> None:
        """After isolation Azure refuses server-side copies from the account (its firewall does not admit the
        storage service): the bytes travel over irflow's allow-listed path, staged in blocks, hashed on the
        way (copy-blobs-between-storage-accounts-network-restriction)."""
        from irflow.actions.storage import IsolateAccount

        account = tenant.storage_account("phipatientexports")
        IsolateAccount().apply(make_context("storage.isolate_account", account=account.id))
        tenant.journal.clear()
        ctx = self._ctx(tenant, forensic_context)
        action = SnapshotContainers()
        first = action.apply(ctx)
        assert first.changed and len(first.outputs["evidence"]) == 3
        routes = [w.route for w in _writes(tenant)]
        assert "storage.blob.put_block_list" in routes and "storage.blob.put_blob" not in routes
        assert not action.apply(ctx).changed and action.verify(ctx)
        evidence = tenant.storage_account("webassetscdn").container("irflow-evidence")
        source = account.container("patient-exports")
        for row in _rows(database):
            assert row.meta["path"] == "streamed over irflow's path"
            blob_name = row.source.split("/patient-exports/", 1)[1].replace("%2F", "/")
            copy = next(b for n, b in evidence.blobs.items() if n.endswith(f"/patient-exports/{blob_name}"))
            assert copy.content == source.blobs[blob_name].content
            assert row.sha256 == hashlib.sha256(copy.content).hexdigest() and row.size == len(copy.content)

    def test_a_private_source_is_copied_with_a_user_delegation_sas(  # type: ignore[no-untyped-def]
        self, tenant: Tenant, forensic_context, database: Database
    ) -> None:
        """Copy Blob across accounts: the destination's token does not authorise the source; irflow signs a
        short-lived, read-only user-delegation SAS (else Azure answers 404 CannotVerifyCopySource)."""
        tenant.storage_account("phipatientexports").container("patient-exports").public_access = "None"
        action = SnapshotContainers()
        assert action.apply(self._ctx(tenant, forensic_context)).changed
        rows = _rows(database)
        assert len(rows) == 3 and {r.meta["path"] for r in rows} == {"server-side copy (user-delegation SAS)"}
        assert all("sig=" not in r.source and "sig=" not in r.location for r in rows)
        keys = tenant.storage_account("phipatientexports").user_delegation_keys
        assert len(keys) == 1 and keys[0].expiry - keys[0].start <= timedelta(minutes=31)

    def test_locking_the_retention_is_optional_stated_as_irreversible_and_done_once(  # type: ignore[no-untyped-def]
        self, tenant: Tenant, forensic_context, database: Database
    ) -> None:
        ctx = self._ctx(tenant, forensic_context, lock_immutability=True, containers=["patient-exports"])
        action = SnapshotContainers()
        plan = action.plan(ctx)
        assert "evidence_container.irflow-evidence.immutabilityPolicy.state" in [
            c.field for c in plan.changes
        ]
        assert plan.notes and plan.notes[0].startswith("IRREVERSIBLE")
        assert action.apply(ctx).changed
        container = tenant.storage_account("webassetscdn").container("irflow-evidence")
        assert container.immutability is not None and container.immutability.state == "Locked"
        writes = _writes(tenant)
        assert [w.route for w in writes].count("storage.containers.lock_immutability_policy") == 1
        assert not action.apply(ctx).changed and _writes(tenant) == writes
        assert action.verify(ctx) and action.plan(ctx).notes == []

    def test_a_source_copy_irflow_cannot_authorise_is_named_for_what_it_is(  # type: ignore[no-untyped-def]
        self, tenant: Tenant, forensic_context
    ) -> None:
        from irflow.actions.forensics import GENERATE_USER_DELEGATION_KEY

        account = tenant.storage_account("phipatientexports")
        account.container("patient-exports").public_access = "None"
        tenant.deny(GENERATE_USER_DELEGATION_KEY, scope=account.id)
        with pytest.raises(PermissionDenied) as caught:
            SnapshotContainers().apply(self._ctx(tenant, forensic_context))
        assert GENERATE_USER_DELEGATION_KEY in str(caught.value) and account.id in str(caught.value)
        assert "not found" not in str(caught.value)

    def test_a_copy_without_its_row_is_recorded_not_rewritten(  # type: ignore[no-untyped-def]
        self, tenant: Tenant, forensic_context, database: Database
    ) -> None:
        ctx = self._ctx(tenant, forensic_context, containers=["patient-exports"])
        SnapshotContainers().apply(ctx)
        with database.transaction() as session:  # as if the process died between the copy and the record
            victim = session.scalars(select(Evidence)).first()
            assert victim is not None
            source, digest = victim.source, victim.sha256
            session.delete(victim)
        writes = _writes(tenant)
        again = SnapshotContainers().apply(ctx)
        assert again.changed and len(again.outputs["evidence"]) == 1
        assert _writes(tenant) == writes
        assert {r.source: r.sha256 for r in _rows(database)}[source] == digest

    def test_403_names_permission_and_scope(self, tenant: Tenant, forensic_context) -> None:  # type: ignore[no-untyped-def]
        account = tenant.storage_account("phipatientexports").id
        scope = f"{account}/blobServices/default/containers/patient-exports"
        tenant.deny(BLOB_WRITE, scope=scope)
        with pytest.raises(PermissionDenied) as caught:
            SnapshotContainers().apply(self._ctx(tenant, forensic_context))
        assert BLOB_WRITE in str(caught.value) and scope in str(caught.value)

    def test_404_names_the_missing_account_and_container(self, tenant: Tenant, forensic_context) -> None:  # type: ignore[no-untyped-def]
        missing = tenant.storage_account("phipatientexports").id.replace("phipatientexports", "phigone")
        ctx = forensic_context(
            "forensics.snapshot_containers",
            account=missing,
            evidence_account=tenant.storage_account("webassetscdn").id,
        )
        with pytest.raises(ResourceMissing, match="phigone"):
            SnapshotContainers().plan(ctx)
        with pytest.raises(ResourceMissing, match="no-such-container"):
            SnapshotContainers().plan(self._ctx(tenant, forensic_context, containers=["no-such-container"]))
        assert tenant.journal.writes() == []


@pytest.fixture
def exfil() -> Iterator[Tenant]:
    tenant = Tenant.from_scenario("sas-exfiltration")
    with mount(tenant):
        yield tenant


class TestExportLogs:
    QUERY = (
        "StorageBlobLogs | where OperationName == 'GetBlob' "
        "| project TimeGenerated, AccountName, CallerIpAddress"
    )

    @pytest.fixture
    def tenant(self, exfil: Tenant) -> Tenant:
        return exfil

    def test_plan_apply_twice_verify(self, tenant: Tenant, forensic_context, database: Database) -> None:  # type: ignore[no-untyped-def]
        ctx = forensic_context(
            "forensics.export_logs", workspace_id=EXFIL_WORKSPACE, query=self.QUERY, timespan="P30D"
        )
        action = ExportLogs()
        plan = action.plan(ctx)
        assert len(plan.changes) == 1 and plan.notes == [self.QUERY]
        assert action.verify(ctx) is False
        first = action.apply(ctx)
        assert first.changed
        assert not action.apply(ctx).changed and action.verify(ctx) is True
        assert tenant.journal.writes() == []
        (row,) = _rows(database)
        assert row.kind == "log_export" and row.location == "database" and row.content is not None
        assert (
            hashlib.sha256(row.content.encode("utf-8")).hexdigest() == row.sha256 == first.outputs["sha256"]
        )
        body = json.loads(row.content)
        assert body["tables"][0]["columns"] == ["TimeGenerated", "AccountName", "CallerIpAddress"]
        assert len(body["tables"][0]["rows"]) > 0 and body["redacted"] is True
        assert EXFIL_WORKSPACE in row.source and hashlib.sha256(self.QUERY.encode()).hexdigest() in row.source
        assert len(_captured_events(database)) == 1

    def test_403_and_404(self, tenant: Tenant, forensic_context) -> None:  # type: ignore[no-untyped-def]
        missing = "00000000-0000-4000-8000-000000000000"
        ctx = forensic_context(
            "forensics.export_logs", workspace_id=missing, query=self.QUERY, timespan="P1D"
        )
        with pytest.raises(ResourceMissing, match=missing):
            ExportLogs().apply(ctx)
        tenant.deny(QUERY_READ, scope=tenant.logs.workspace(EXFIL_WORKSPACE).resource_id)
        ctx = forensic_context(
            "forensics.export_logs", workspace_id=EXFIL_WORKSPACE, query=self.QUERY, timespan="P1D"
        )
        with pytest.raises(
            PermissionDenied, match=f"{QUERY_READ} on Log Analytics workspace {EXFIL_WORKSPACE}"
        ):
            ExportLogs().apply(ctx)


def test_actions_refuse_to_run_without_the_engine(tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
    from irflow.actions.base import ActionError

    ctx = make_context(
        "forensics.capture_resource_state", resources=[tenant.storage_account("phipatientexports").id]
    )
    with pytest.raises(ActionError, match="inside the engine"):
        CaptureResourceState().plan(ctx)
