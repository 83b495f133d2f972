"""The simulated Activity Log (``AzureActivity`` rows for successful ARM writes) and the KQL functions
``extract``, ``coalesce`` and ``sumif``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError
from sim_helpers import NOW, PHI_RG, Sim

from irflow.sim.loganalytics import kql

REVOKE = "MICROSOFT.STORAGE/STORAGEACCOUNTS/REVOKEUSERDELEGATIONKEYS/ACTION"


def _activity(sim: Sim, workspace: str) -> list[dict]:  # type: ignore[type-arg]
    with sim.tenant.lock:
        return sim.tenant.logs.workspace(workspace).rows("AzureActivity")


@pytest.fixture
def workspaces(sim: Sim) -> list[str]:
    with sim.tenant.lock:
        return [sim.tenant.logs.add_workspace(name).workspace_id for name in ("law-a", "law-b")]


def test_a_successful_write_is_logged_in_every_workspace(sim: Sim, workspaces: list[str]) -> None:
    sim.client().storage_accounts.revoke_user_delegation_keys(PHI_RG, "phiimaging")
    account_id = sim.tenant.storage_account("phiimaging").id
    for workspace in workspaces:
        [row] = _activity(sim, workspace)
        assert row["OperationNameValue"] == REVOKE
        assert row["ActivityStatusValue"] == "Success" and row["CategoryValue"] == "Administrative"
        assert row["_ResourceId"] == account_id.lower()
        assert row["Caller"] == sim.tenant.principal_id
        assert row["CorrelationId"] and row["SubscriptionId"] == sim.subscription_id
        assert row["ResourceGroup"] == PHI_RG.upper() and row["ResourceProviderValue"] == "MICROSOFT.STORAGE"
        assert row["TimeGenerated"] == sim.tenant.journal.writes()[-1].time == NOW


def test_reads_refusals_and_failures_are_not_logged(sim: Sim, workspaces: list[str]) -> None:
    client = sim.client()
    client.storage_accounts.get_properties(PHI_RG, "phiimaging")
    client.storage_accounts.list_keys(PHI_RG, "phiimaging")  # a POST that only reads
    sim.tenant.deny("Microsoft.Storage/storageAccounts/write")
    with pytest.raises(HttpResponseError):
        client.storage_accounts.update(PHI_RG, "phiimaging", {"properties": {"allowBlobPublicAccess": False}})
    with pytest.raises(HttpResponseError):
        client.storage_accounts.revoke_user_delegation_keys(PHI_RG, "nosuchaccount")
    assert _activity(sim, workspaces[0]) == []


def test_the_log_is_queryable(sim: Sim, workspaces: list[str]) -> None:
    client = sim.client()
    client.storage_accounts.regenerate_key(PHI_RG, "phiimaging", {"keyName": "key1"})
    client.storage_accounts.revoke_user_delegation_keys(PHI_RG, "phiimaging")
    answer = sim.tenant.logs.query(
        workspaces[0],
        f'AzureActivity | where OperationNameValue =~ "{REVOKE}" and ActivityStatusValue == "Success" '
        "| summarize n = count(), last = max(TimeGenerated) by _ResourceId",
        now=NOW,
    )
    rows = answer["tables"][0]["rows"]
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
