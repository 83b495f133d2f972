"""Log Analytics answers partially past its documented limits (500,000 records, 64 MB, 10 minutes):
https://learn.microsoft.com/azure/azure-monitor/fundamentals/service-limits#la-query-api. Both mounts, through
azure-monitor-query (LogsQueryPartialResult)."""

from __future__ import annotations

import pytest
from azure.monitor.query import LogsQueryStatus
from sim_helpers import Sim
from test_sim_logs import WORKSPACE, logs_client

from irflow.clock import FrozenClock
from irflow.sim import Tenant
from irflow.sim.loganalytics import limits


@pytest.fixture
def tenant(clock: FrozenClock) -> Tenant:
    return Tenant.from_scenario("sas-exfiltration", clock=clock)


def _inner(result) -> str:  # type: ignore[no-untyped-def]
    return result.partial_error.details[0]["innererror"]["message"]


def test_the_documented_limits_are_the_defaults(sim: Sim) -> None:
    assert (sim.tenant.logs.max_records, sim.tenant.logs.max_bytes) == (500_000, 64 * 1024 * 1024)
    assert limits.MAX_SECONDS == 600


def test_past_the_record_limit_the_rows_that_fit_come_with_a_partial_error(sim: Sim) -> None:
    sim.tenant.logs.max_records = 5  # the limit lowered: the scenario has far fewer than 500,000 rows
    result = logs_client(sim).query_workspace(WORKSPACE, "StorageBlobLogs | project ObjectKey", timespan=None)
    assert result.status == LogsQueryStatus.PARTIAL
    assert len(result.partial_data[0].rows) == 5
    assert result.partial_error.code == "PartialError"
    assert "exceeded the internal record count limit 5" in _inner(result)


def test_past_the_size_limit_the_answer_is_cut_too(sim: Sim) -> None:
    sim.tenant.logs.max_bytes = 2_000
    result = logs_client(sim).query_workspace(WORKSPACE, "StorageBlobLogs", timespan=None)
    assert result.status == LogsQueryStatus.PARTIAL
    assert 0 < len(result.partial_data[0].rows) < 50
    assert "exceeded the internal data size limit 2000" in _inner(result)


def test_past_ten_minutes_no_rows_come_back(sim: Sim) -> None:
    sim.tenant.logs.query_seconds = 601
    result = logs_client(sim).query_workspace(WORKSPACE, "StorageBlobLogs | count", timespan=None)
    assert result.status == LogsQueryStatus.PARTIAL and result.partial_data[0].rows == []


def test_within_the_limits_the_answer_is_complete(sim: Sim) -> None:
    result = logs_client(sim).query_workspace(WORKSPACE, "StorageBlobLogs | count", timespan=None)
    assert result.status == LogsQueryStatus.SUCCESS
