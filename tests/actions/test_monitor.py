"""Azure Monitor actions through the official SDKs against the simulated tenant (in-process mount)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from pydantic import ValidationError

from irflow.actions.base import ActionError, PermissionDenied, ResourceMissing
from irflow.actions.monitor import (
    EnsureDiagnosticSettings,
    EnsureDiagnosticSettingsParams,
    QueryStorageAccess,
    QueryStorageAccessParams,
    iso_duration,
)
from irflow.sim.mock import mount
from irflow.sim.models import Tenant

EXFIL_WORKSPACE = "7e3a9c51-2b4d-4f6e-9a8c-1d3e5f7a9b2c"
QUERY_READ = "Microsoft.OperationalInsights/workspaces/query/read"


@pytest.fixture
def exfil() -> Iterator[Tenant]:
    """The ``sas-exfiltration`` scenario: a leaked SAS used from 198.51.100.23 to download 300 exports."""
    tenant = Tenant.from_scenario("sas-exfiltration")
    with mount(tenant):
        yield tenant


class TestQueryStorageAccess:
    @pytest.fixture
    def tenant(self, exfil: Tenant) -> Tenant:  # overrides conftest's demo tenant for this class
        return exfil

    def test_plan_shows_the_query_and_touches_nothing(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        account = tenant.storage_account("phiexportsnw").id
        ctx = make_context(
            "monitor.query_storage_access", workspace_id=EXFIL_WORKSPACE, accounts=[account], lookback="P7D"
        )
        plan = QueryStorageAccess().plan(ctx)
        assert plan.is_noop and plan.target == EXFIL_WORKSPACE
        assert "last P7D" in plan.notes[0]
        assert plan.notes[1].startswith("StorageBlobLogs") and '"phiexportsnw"' in plan.notes[1]
        assert tenant.journal.entries() == []

    def test_numbers_match_the_seeded_rows(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        account = tenant.storage_account("phiexportsnw").id
        ctx = make_context(
            "monitor.query_storage_access",
            workspace_id=EXFIL_WORKSPACE,
            accounts=[account],
            lookback="P7D",
            expected_ip_prefixes=["10.20."],
        )
        action = QueryStorageAccess()
        result = action.apply(ctx)
        assert result.changed is False and result.outputs["complete"] is True
        [row] = result.outputs["containers"]
        # 12 ETL writes (OAuth, 10.20.4.17), 1 ListBlobs + 300 GetBlob by SAS from 198.51.100.23
        assert row["account"] == account and row["container"] == "partner-exports"
        assert row["requests"] == 313
        assert row["reads"] == 301 and row["downloads"] == 300
        assert row["reads_by_auth"] == {"SAS": 301, "AccountKey": 0, "Anonymous": 0, "OAuth": 0}
        assert row["unexpected_ip_reads"] == 301
        assert row["bytes_read"] == 412330 + 300 * 1048576
        assert row["distinct_callers"] == 2  # the ETL identity and the leaked SAS
        assert row["first_access"] < row["last_access"]
        assert result.outputs["accounts"][account]["reads"] == 301
        assert result.outputs["accessed"] == ["phiexportsnw/partner-exports"]
        # no blob names, URIs or caller identities leave the action
        dumped = result.model_dump_json()
        for forbidden in ("export-0", "blob.core.windows.net", "198.51.100.23", "4b7d2e19", "sas-partner"):
            assert forbidden not in dumped
        # read-only: a second apply makes no write either, and verify holds
        assert action.apply(ctx).outputs == result.outputs
        assert tenant.journal.writes() == []
        assert action.verify(ctx) is True
        [query] = [e for e in tenant.journal.entries() if e.route == "loganalytics.query"][:1]
        assert query.status == 200

    def test_lookback_limits_the_window_and_no_prefixes_means_no_ip_verdict(
        self, tenant: Tenant, make_context
    ) -> None:  # type: ignore[no-untyped-def]
        account = tenant.storage_account("phiexportsnw").id
        ctx = make_context(
            "monitor.query_storage_access", workspace_id=EXFIL_WORKSPACE, accounts=[account], lookback="PT2H"
        )
        [row] = QueryStorageAccess().apply(ctx).outputs["containers"]
        assert row["requests"] == 301 and row["reads_by_auth"]["OAuth"] == 0  # the ETL writes are 20 h old
        assert row["distinct_callers"] == 1
        assert row["unexpected_ip_reads"] is None

    def test_an_account_without_logs_has_zero_totals(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        account = tenant.storage_account("phiexportsnw").id.replace("phiexportsnw", "phiquiet")
        ctx = make_context("monitor.query_storage_access", workspace_id=EXFIL_WORKSPACE, accounts=[account])
        outputs = QueryStorageAccess().apply(ctx).outputs
        assert outputs["containers"] == [] and outputs["accounts"][account]["reads"] == 0

    def test_a_partial_answer_fails_unless_allowed(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        # Log Analytics cuts an answer at 500,000 rows / 64 MB / 10 minutes and says so (a partial result);
        # the one summary row here is cut by a limit lowered to 0.
        tenant.logs.max_records = 0
        account = tenant.storage_account("phiexportsnw").id
        params = {"workspace_id": EXFIL_WORKSPACE, "accounts": [account], "lookback": "P7D"}
        ctx = make_context("monitor.query_storage_access", **params)
        with pytest.raises(ActionError, match="partial result .*record count limit 0.*undercount"):
            QueryStorageAccess().apply(ctx)
        kept = QueryStorageAccess().apply(
            make_context("monitor.query_storage_access", allow_partial=True, **params)
        )
        assert kept.outputs["complete"] is False and kept.outputs["containers"] == []
        assert any("counts are incomplete" in n for n in kept.notes)
        tenant.logs.max_records, tenant.logs.query_seconds = 500_000, 601
        with pytest.raises(ActionError, match="maximum query running time is 10 minutes"):
            QueryStorageAccess().apply(ctx)

    def test_403_names_permission_and_workspace(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        tenant.deny(QUERY_READ, scope=tenant.logs.workspace(EXFIL_WORKSPACE).resource_id)
        ctx = make_context(
            "monitor.query_storage_access",
            workspace_id=EXFIL_WORKSPACE,
            accounts=[tenant.storage_account("phiexportsnw").id],
        )
        with pytest.raises(
            PermissionDenied, match=f"{QUERY_READ} on Log Analytics workspace {EXFIL_WORKSPACE}"
        ):
            QueryStorageAccess().apply(ctx)

    def test_missing_workspace_is_named(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        missing = "00000000-0000-4000-8000-000000000000"
        ctx = make_context(
            "monitor.query_storage_access",
            workspace_id=missing,
            accounts=[tenant.storage_account("phiexportsnw").id],
        )
        with pytest.raises(ResourceMissing, match=missing):
            QueryStorageAccess().apply(ctx)


def test_query_params_are_validated(tenant: Tenant) -> None:
    account = tenant.storage_account("phiimaging").id
    ok = QueryStorageAccessParams(workspace_id=EXFIL_WORKSPACE.upper(), accounts=[account], lookback="P1DT6H")
    assert ok.workspace_id == EXFIL_WORKSPACE and iso_duration(ok.lookback) == "P1DT6H"
    assert iso_duration(timedelta(days=7)) == "P7D" and iso_duration(timedelta(minutes=90)) == "PT1H30M"
    with pytest.raises(ValidationError, match="Log Analytics workspace id"):
        QueryStorageAccessParams(workspace_id="law-security", accounts=[account])
    with pytest.raises(ValidationError, match="IP address prefix"):
        QueryStorageAccessParams(
            workspace_id=EXFIL_WORKSPACE, accounts=[account], expected_ip_prefixes=['1" or']
        )
    with pytest.raises(ValidationError, match="positive"):
        QueryStorageAccessParams(workspace_id=EXFIL_WORKSPACE, accounts=[account], lookback="PT0S")
    with pytest.raises(ValidationError, match="at least 1"):
        QueryStorageAccessParams(workspace_id=EXFIL_WORKSPACE, accounts=[])


# ------------------------------------------------------------------------------ ensure_diagnostic_settings
def _workspace_id(tenant: Tenant) -> str:
    sub = tenant.default_subscription_id
    rg = f"/subscriptions/{sub}/resourceGroups/rg-phi-prod"
    return f"{rg}/providers/Microsoft.OperationalInsights/workspaces/law-ir"


def _settings(tenant: Tenant, resource_id: str) -> list[dict]:  # type: ignore[type-arg]
    return tenant.diagnostic_settings.list(resource_id)


class TestEnsureDiagnosticSettings:
    def test_plan_apply_twice_verify(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        account = tenant.storage_account("phipatientexports").id
        vault = tenant.key_vault("kv-phi-prod").id
        workspace = _workspace_id(tenant)
        ctx = make_context(
            "monitor.ensure_diagnostic_settings",
            workspace=workspace,
            storage_accounts=[account],
            key_vaults=[vault],
        )
        action = EnsureDiagnosticSettings()
        plan = action.plan(ctx)
        assert [c.field.rsplit("/", 1)[-1] for c in plan.changes] == ["irflow-security-logs"] * 2
        assert plan.changes[0].after == {
            "workspaceId": workspace,
            "add_categories": ["StorageRead", "StorageWrite", "StorageDelete"],
        }
        assert plan.changes[1].after["add_categories"] == ["AuditEvent"]
        assert tenant.journal.writes() == []
        assert action.verify(ctx) is False

        result = action.apply(ctx)
        assert result.changed and result.prior_state["diagnosticSettings"] == {
            f"{account}/blobServices/default": [],
            vault: [],
        }
        writes = tenant.journal.writes()
        assert [w.method for w in writes] == ["PUT", "PUT"]
        again = action.apply(ctx)
        assert not again.changed
        assert tenant.journal.writes() == writes
        assert action.verify(ctx) is True
        [blob] = _settings(tenant, f"{account}/blobServices/default")
        assert blob["properties"]["workspaceId"] == workspace
        assert {(e["category"], e["enabled"]) for e in blob["properties"]["logs"]} == {
            ("StorageRead", True),
            ("StorageWrite", True),
            ("StorageDelete", True),
        }
        [kv] = _settings(tenant, vault)
        assert [(e["category"], e["enabled"]) for e in kv["properties"]["logs"]] == [("AuditEvent", True)]

    def test_category_groups_count_as_covered(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        vault = tenant.key_vault("kv-phi-prod").id
        workspace = _workspace_id(tenant)
        tenant.diagnostic_settings.put(
            vault,
            "vaults",
            "audit-to-law",
            {"properties": {"workspaceId": workspace, "logs": [{"categoryGroup": "audit", "enabled": True}]}},
        )
        ctx = make_context("monitor.ensure_diagnostic_settings", workspace=workspace, key_vaults=[vault])
        assert EnsureDiagnosticSettings().plan(ctx).is_noop
        assert not EnsureDiagnosticSettings().apply(ctx).changed
        assert tenant.journal.writes() == []

    def test_403_names_permission_and_scope(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        account = tenant.storage_account("phiimaging").id
        tenant.deny("Microsoft.Insights/diagnosticSettings/write", scope=account)
        ctx = make_context(
            "monitor.ensure_diagnostic_settings", workspace=_workspace_id(tenant), storage_accounts=[account]
        )
        with pytest.raises(
            PermissionDenied, match=f"diagnosticSettings/write on {account}/blobServices/default"
        ):
            EnsureDiagnosticSettings().apply(ctx)
        assert [w.status for w in tenant.journal.writes()] == [403]  # refused, nothing changed

    def test_missing_account_is_named(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        missing = tenant.storage_account("phiimaging").id.replace("phiimaging", "phigone")
        ctx = make_context(
            "monitor.ensure_diagnostic_settings", workspace=_workspace_id(tenant), storage_accounts=[missing]
        )
        with pytest.raises(ResourceMissing, match="phigone"):
            EnsureDiagnosticSettings().plan(ctx)

    def test_params_need_a_resource_and_a_workspace_id(self, tenant: Tenant) -> None:
        with pytest.raises(ValidationError, match="at least one"):
            EnsureDiagnosticSettingsParams(workspace=_workspace_id(tenant))
        with pytest.raises(ValidationError, match="Log Analytics workspace id"):
            EnsureDiagnosticSettingsParams(
                workspace=tenant.storage_account("phiimaging").id,
                storage_accounts=[tenant.storage_account("phiimaging").id],
            )


class TestEnsureDiagnosticSettingsOnExisting:
    @pytest.fixture
    def tenant(self, exfil: Tenant) -> Tenant:
        return exfil

    def test_existing_setting_to_the_workspace_is_extended_not_duplicated(
        self, tenant: Tenant, make_context
    ) -> None:  # type: ignore[no-untyped-def]
        account = tenant.storage_account("phiexportsnw").id
        uri = f"{account}/blobServices/default"
        workspace = _settings(tenant, uri)[0]["properties"]["workspaceId"]
        ctx = make_context(
            "monitor.ensure_diagnostic_settings", workspace=workspace, storage_accounts=[account]
        )
        action = EnsureDiagnosticSettings()
        [change] = action.plan(ctx).changes
        assert change.field.endswith("/to-law-nw-security") and change.after["add_categories"] == [
            "StorageDelete"
        ]
        result = action.apply(ctx)
        assert result.prior_state["diagnosticSettings"][uri][0]["logs"] == [
            {"category": "StorageRead", "categoryGroup": None, "enabled": True},
            {"category": "StorageWrite", "categoryGroup": None, "enabled": True},
        ]
        [setting] = _settings(tenant, uri)
        assert [e["category"] for e in setting["properties"]["logs"]] == [
            "StorageRead",
            "StorageWrite",
            "StorageDelete",
        ]
        assert not action.apply(ctx).changed and len(tenant.journal.writes()) == 1
