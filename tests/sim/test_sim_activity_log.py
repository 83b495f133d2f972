"""The simulated Activity Log (``AzureActivity`` rows for successful ARM writes, only where the subscription
exports it and only after the ingestion delay) and the KQL functions ``extract``, ``coalesce``, ``sumif``.

Azure: the activity log reaches a workspace only through a subscription diagnostic setting
(https://learn.microsoft.com/azure/azure-monitor/essentials/activity-log#send-to-log-analytics-workspace), and
rows arrive minutes after the write (https://learn.microsoft.com/azure/azure-monitor/logs/data-ingestion-time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.monitor import MonitorManagementClient
from sim_helpers import NOW, PHI_RG, Sim

from irflow.azure.clients import StaticTokenCredential
from irflow.clock import FrozenClock
from irflow.sim.loganalytics import kql

REVOKE = "MICROSOFT.STORAGE/STORAGEACCOUNTS/REVOKEUSERDELEGATIONKEYS/ACTION"


def _activity(sim: Sim, workspace: str) -> list[dict]:  # type: ignore[type-arg]
    """The workspace's AzureActivity rows, less those of setting up the export itself (ARM writes too)."""
    with sim.tenant.lock:
        sim.tenant.logs.settle(sim.tenant.now())
        rows = sim.tenant.logs.workspace(workspace).rows("AzureActivity")
    return [r for r in rows if "DIAGNOSTICSETTINGS" not in r["OperationNameValue"]]


def _export(sim: Sim, workspace: str, name: str = "activity-export") -> None:
    """The subscription's activity log exported to ``workspace``, through ARM as an operator would."""
    with sim.tenant.lock:
        resource_id = sim.tenant.logs.workspace(workspace).resource_id
    client = MonitorManagementClient(
        StaticTokenCredential(sim.tenant.token),
        sim.subscription_id,
        base_url=sim.endpoint,
        credential_scopes=[sim.endpoint + "/.default"],
        connection_verify=sim.verify,
    )
    body = {
        "properties": {"workspaceId": resource_id, "logs": [{"category": "Administrative", "enabled": True}]}
    }
    client.subscription_diagnostic_settings.create_or_update(name, body)


@pytest.fixture
def workspaces(sim: Sim) -> list[str]:
    with sim.tenant.lock:
        made = [
            sim.tenant.logs.add_workspace(
                name,
                resource_id=f"/subscriptions/{sim.subscription_id}/resourceGroups/{PHI_RG}/providers/"
                f"Microsoft.OperationalInsights/workspaces/{name}",
            ).workspace_id
            for name in ("law-a", "law-b", "law-not-exported")
        ]
    _export(sim, "law-a", "to-law-a")
    _export(sim, "law-b", "to-law-b")
    return made


def test_a_write_reaches_the_exported_workspaces_after_the_ingestion_delay(
    sim: Sim, workspaces: list[str], clock: FrozenClock
) -> None:
    sim.client().storage_accounts.revoke_user_delegation_keys(PHI_RG, "phiimaging")
    written = sim.tenant.journal.writes()[-1].time
    assert all(_activity(sim, w) == [] for w in workspaces)  # not yet: Activity Log ingestion takes minutes
    clock.advance(sim.tenant.activity_log_delay - timedelta(seconds=1))
    assert _activity(sim, workspaces[0]) == []
    clock.advance(timedelta(seconds=1))
    account_id = sim.tenant.storage_account("phiimaging").id
    for workspace in workspaces[:2]:
        [row] = _activity(sim, workspace)
        assert row["OperationNameValue"] == REVOKE
        assert row["ActivityStatusValue"] == "Success" and row["CategoryValue"] == "Administrative"
        assert row["_ResourceId"] == account_id.lower()
        assert row["Caller"] == sim.tenant.principal_id
        assert row["CorrelationId"] and row["SubscriptionId"] == sim.subscription_id
        assert row["ResourceGroup"] == PHI_RG.upper() and row["ResourceProviderValue"] == "MICROSOFT.STORAGE"
        assert row["TimeGenerated"] == written
    assert _activity(sim, workspaces[2]) == []  # no diagnostic setting sends the activity log there


def test_without_an_export_no_workspace_gets_the_activity_log(sim: Sim, clock: FrozenClock) -> None:
    with sim.tenant.lock:
        workspace = sim.tenant.logs.add_workspace("law-lonely").workspace_id
    sim.client().storage_accounts.revoke_user_delegation_keys(PHI_RG, "phiimaging")
    clock.advance(timedelta(hours=1))
    assert _activity(sim, workspace) == []


def test_a_scenario_relaxes_the_rules_only_by_name(sim: Sim) -> None:
    with sim.tenant.lock:
        workspace = sim.tenant.logs.add_workspace("law-relaxed").workspace_id
    sim.tenant.relax("activity_log_delay", "activity_log_export")
    sim.client().storage_accounts.revoke_user_delegation_keys(PHI_RG, "phiimaging")
    assert len(_activity(sim, workspace)) == 1
    with pytest.raises(ValueError, match="unknown strictness rule 'activity_log'"):
        sim.tenant.relax("activity_log")


def test_reads_refusals_and_failures_are_not_logged(
    sim: Sim, workspaces: list[str], clock: FrozenClock
) -> None:
    client = sim.client()
    client.storage_accounts.get_properties(PHI_RG, "phiimaging")
    client.storage_accounts.list_keys(PHI_RG, "phiimaging")  # a POST that only reads
    sim.tenant.deny("Microsoft.Storage/storageAccounts/write")
    with pytest.raises(HttpResponseError):
        client.storage_accounts.update(PHI_RG, "phiimaging", {"properties": {"allowBlobPublicAccess": False}})
    with pytest.raises(HttpResponseError):
        client.storage_accounts.revoke_user_delegation_keys(PHI_RG, "nosuchaccount")
    clock.advance(timedelta(hours=1))
    assert _activity(sim, workspaces[0]) == []


def test_the_log_is_queryable_once_ingested(sim: Sim, workspaces: list[str], clock: FrozenClock) -> None:
    client = sim.client()
    client.storage_accounts.regenerate_key(PHI_RG, "phiimaging", {"keyName": "key1"})
    client.storage_accounts.revoke_user_delegation_keys(PHI_RG, "phiimaging")
    query = (
        f'AzureActivity | where OperationNameValue =~ "{REVOKE}" and ActivityStatusValue == "Success" '
        "| summarize n = count(), last = max(TimeGenerated) by _ResourceId"
    )
    assert sim.tenant.logs.query(workspaces[0], query, now=sim.tenant.now())["tables"][0]["rows"] == []
    clock.advance(timedelta(minutes=20))
    rows = sim.tenant.logs.query(workspaces[0], query, now=sim.tenant.now())["tables"][0]["rows"]
    assert rows == [[sim.tenant.storage_account("phiimaging").id.lower(), 1, "2026-03-02T09:30:00Z"]]


# -------------------------------------------------------------------------------------- KQL functions
SCHEMA = [("TimeGenerated", "datetime"), ("Key", "string"), ("Oid", "string"), ("Size", "long")]
ROWS = [
    {"TimeGenerated": NOW, "Key": "/acct/c1/a/b.csv", "Oid": "", "Size": 10},
    {"TimeGenerated": NOW, "Key": "/acct/c1", "Oid": "x", "Size": 5},
    {"TimeGenerated": NOW - timedelta(hours=1), "Key": "/acct", "Oid": "", "Size": None},
]


def run(query: str) -> list[list]:  # type: ignore[type-arg]
    schema, rows = kql.execute(query, lambda name: (SCHEMA, ROWS) if name == "T" else None, NOW)
    return [[r.get(n) for n, _ in schema] for r in rows]


def test_extract_coalesce_sumif() -> None:
    assert run('T | project C = extract(@"^/[^/]+/([^/]+)", 1, Key)') == [["c1"], ["c1"], [""]]
    assert run('T | project W = coalesce(Oid, extract(@"^/([^/]+)", 1, Key), "none")') == [
        ["acct"],
        ["x"],
        ["acct"],
    ]
    assert run("T | summarize S = sumif(Size, Size > 7), Z = sumif(Size, Size > 100)") == [[10, 0]]
    assert run('T | summarize S = sumif(Size, Oid == "x") by Oid | order by Oid asc') == [["", 0], ["x", 5]]


@pytest.mark.parametrize(
    "query",
    [
        'T | project extract("(", 1, Key)',  # invalid regex
        'T | project extract("a", 2, Key)',  # no such group
        "T | project extract(Key, Key, Key)",  # group must be a number
        "T | project coalesce(Key, Size)",  # mixed types
        "T | summarize sumif(Size, Size)",  # predicate must be bool
    ],
)
def test_function_misuse_is_refused(query: str) -> None:
    with pytest.raises(kql.KqlError):
        run(query)


def test_datetime_literal_with_fraction() -> None:
    since = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert run(f"T | where TimeGenerated >= datetime({since:%Y-%m-%dT%H:%M:%S.%fZ}) | count") == [[2]]


def test_a_scenario_names_what_it_relaxes_and_exports() -> None:
    from irflow.sim.scenario import load_scenario, read_scenario

    document = read_scenario("demo")
    subscription = document["subscriptions"][0]["id"]
    workspace = {"name": "law-activity", "resource_group": PHI_RG}
    export = {
        "resource_id": f"/subscriptions/{subscription}",
        "name": "activity-export",
        "properties": {
            "workspaceId": f"/subscriptions/{subscription}/resourceGroups/{PHI_RG}/providers/"
            "Microsoft.OperationalInsights/workspaces/law-activity",
            "logs": [{"category": "Administrative", "enabled": True}],
        },
    }
    tenant = load_scenario(
        {
            **document,
            "workspaces": [*document.get("workspaces", []), workspace],
            "diagnostic_settings": [*document.get("diagnostic_settings", []), export],
            "relax": ["activity_log_delay"],
        }
    )
    assert tenant.relaxed == {"activity_log_delay"}
    assert tenant.diagnostic_settings.list(f"/subscriptions/{subscription}")[0]["name"] == "activity-export"
    with pytest.raises(ValueError, match="invalid scenario: relax: unknown strictness rule 'no_delay'"):
        load_scenario({**document, "relax": ["no_delay"]})
