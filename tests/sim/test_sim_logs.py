"""Log Analytics query API through azure-monitor-query's LogsQueryClient, in both mounts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from azure.core.exceptions import HttpResponseError
from azure.monitor.query import LogsQueryClient, LogsQueryStatus
from sim_helpers import NOW, Sim

from irflow.azure.clients import StaticTokenCredential
from irflow.clock import FrozenClock
from irflow.sim import Tenant

WORKSPACE = "7e3a9c51-2b4d-4f6e-9a8c-1d3e5f7a9b2c"  # sas-exfiltration: law-nw-security
ATTACKER = "198.51.100.23:40112"


@pytest.fixture
def tenant(clock: FrozenClock) -> Tenant:
    return Tenant.from_scenario("sas-exfiltration", clock=clock)


def logs_client(sim: Sim, token: str | None = None) -> LogsQueryClient:
    return LogsQueryClient(
        StaticTokenCredential(token or sim.tenant.token),
        endpoint=sim.endpoint,
        audience=sim.endpoint,
        connection_verify=sim.verify,
    )


def test_exfiltration_query_finds_the_sas_downloads(sim: Sim) -> None:
    query = """
        StorageBlobLogs
        | where OperationName == "GetBlob" and AuthenticationType == "SAS"
        | summarize Downloads = count(), Bytes = sum(ResponseBodySize), Files = dcount(ObjectKey)
            by CallerIpAddress, AccountName
        | order by Downloads desc
    """
    result = logs_client(sim).query_workspace(WORKSPACE, query, timespan=timedelta(days=1))

    assert result.status == LogsQueryStatus.SUCCESS
    [table] = result.tables
    assert table.name == "PrimaryResult"
    assert table.columns == ["CallerIpAddress", "AccountName", "Downloads", "Bytes", "Files"]
    assert table.columns_types == ["string", "string", "long", "long", "long"]
    assert [list(row) for row in table.rows] == [[ATTACKER, "phiexportsnw", 300, 300 * 1048576, 300]]
    [entry] = sim.tenant.journal.entries()
    assert (entry.route, entry.method, entry.status, entry.is_write) == (
        "loganalytics.query",
        "POST",
        200,
        False,
    )


def test_timespan_and_datetime_columns(sim: Sim) -> None:
    # The last 30 minutes of the download burst (it ran from 100 to 0.33 minutes ago).
    result = logs_client(sim).query_workspace(
        WORKSPACE,
        "StorageBlobLogs | where CallerIpAddress startswith '198.51.100.' | project TimeGenerated, ObjectKey"
        " | order by TimeGenerated asc | take 3",
        timespan=timedelta(minutes=30),
    )
    rows = result.tables[0].rows
    assert len(rows) == 3
    first = rows[0]["TimeGenerated"]
    assert first.tzinfo is not None and NOW - timedelta(minutes=30) <= first <= NOW
    assert rows[0]["TimeGenerated"] < rows[1]["TimeGenerated"]
    assert rows[0]["ObjectKey"].startswith("/phiexportsnw/partner-exports/patients/export-")

    # An absolute interval (start, end) is honoured too; the ETL writes happened ~20 hours ago.
    result = logs_client(sim).query_workspace(
        WORKSPACE,
        "StorageBlobLogs | summarize n = count() by OperationName | order by OperationName asc",
        timespan=(NOW - timedelta(hours=21), NOW - timedelta(hours=2)),
    )
    assert [list(r) for r in result.tables[0].rows] == [["PutBlob", 12]]


def test_hourly_bins_and_ago(sim: Sim) -> None:
    result = logs_client(sim).query_workspace(
        WORKSPACE,
        "StorageBlobLogs | where TimeGenerated > ago(2h) | summarize count() by bin(TimeGenerated, 1h)"
        " | order by TimeGenerated asc",
        timespan=None,
    )
    table = result.tables[0]
    assert table.columns == ["TimeGenerated", "count_"]
    assert sum(row["count_"] for row in table.rows) == 301  # the ListBlobs and the 300 downloads
    assert all(row["TimeGenerated"].minute == 0 for row in table.rows)


def test_unsupported_query_is_a_clear_400(sim: Sim) -> None:
    client = logs_client(sim)
    for query, fragment in [
        ("StorageBlobLogs | join (SigninLogs) on CallerIpAddress", "join"),
        ("StorageBlobLogs | where NoSuchColumn == 1", "NoSuchColumn"),
        ("StorageBlobLogs | where StatusCode == 200", "Cannot compare"),
        ("StorageBlobLogs | where", "end of the query"),
        ("NoSuchTable | take 1", "NoSuchTable"),
    ]:
        with pytest.raises(HttpResponseError) as caught:
            client.query_workspace(WORKSPACE, query, timespan=timedelta(days=1))
        assert caught.value.status_code == 400, query
        body = caught.value.response.json()
        assert body["error"]["code"] == "BadArgumentError"
        assert fragment in body["error"]["innererror"]["message"], query


def test_unknown_workspace_wrong_token_and_rbac(sim: Sim) -> None:
    with pytest.raises(HttpResponseError) as caught:
        logs_client(sim).query_workspace("00000000-0000-4000-8000-000000000000", "SigninLogs", timespan=None)
    assert caught.value.status_code == 404
    with pytest.raises(HttpResponseError) as caught:
        logs_client(sim, token="wrong").query_workspace(WORKSPACE, "SigninLogs", timespan=None)
    assert caught.value.status_code == 401

    sim.tenant.deny("Microsoft.OperationalInsights/workspaces/query/read")
    with pytest.raises(HttpResponseError) as caught:
        logs_client(sim).query_workspace(WORKSPACE, "SigninLogs", timespan=None)
    assert caught.value.status_code == 403
    assert caught.value.response.json()["error"]["code"] == "InsufficientAccessError"


def test_rows_added_later_and_reset(sim: Sim, clock: FrozenClock) -> None:
    clock.advance(timedelta(hours=1))
    with sim.tenant.lock:
        sim.tenant.logs.add_rows(
            WORKSPACE,
            "SigninLogs",
            [
                {
                    "minutes_ago": 1,
                    "UserPrincipalName": "etl-admin@northwind.example",
                    "IPAddress": "198.51.100.23",
                }
            ],
            sim.tenant.now(),
        )
    query = "SigninLogs | where IPAddress == '198.51.100.23' | count"
    assert (
        logs_client(sim).query_workspace(WORKSPACE, query, timespan=timedelta(hours=1)).tables[0].rows[0][0]
        == 1
    )
    sim.tenant.reset()
    assert logs_client(sim).query_workspace(WORKSPACE, query, timespan=None).tables[0].rows[0][0] == 0
