"""Log Analytics workspaces: tables of rows (``StorageBlobLogs``, ``AzureActivity``, ``SigninLogs``,
``AzureDiagnostics``) with the columns and Kusto types Azure Monitor gives them.

Rows are stored with typed values (aware UTC datetimes, ints, floats, strings); a row may name only some
columns, the others are empty. A row's time is ``TimeGenerated`` (absolute) or ``minutes_ago`` /
``hours_ago`` / ``days_ago`` relative to the tenant clock when the row is added.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from irflow.sim.loganalytics import kql, limits

_COMMON = [("TenantId", "string"), ("TimeGenerated", "datetime")]

TABLE_SCHEMAS: dict[str, list[tuple[str, str]]] = {
    "StorageBlobLogs": [
        *_COMMON,
        ("AccountName", "string"),
        ("Location", "string"),
        ("OperationName", "string"),
        ("Category", "string"),
        ("StatusCode", "string"),
        ("StatusText", "string"),
        ("DurationMs", "long"),
        ("CallerIpAddress", "string"),
        ("CorrelationId", "string"),
        ("AuthenticationType", "string"),
        ("AuthenticationHash", "string"),
        ("RequesterObjectId", "string"),
        ("RequesterTenantId", "string"),
        ("RequesterUpn", "string"),
        ("RequesterAppId", "string"),
        ("Uri", "string"),
        ("ObjectKey", "string"),
        ("Protocol", "string"),
        ("UserAgentHeader", "string"),
        ("RequestBodySize", "long"),
        ("ResponseBodySize", "long"),
        ("SasExpiryStatus", "string"),
        ("_ResourceId", "string"),
    ],
    "AzureActivity": [
        *_COMMON,
        ("OperationNameValue", "string"),
        ("OperationName", "string"),
        ("CategoryValue", "string"),
        ("ActivityStatusValue", "string"),
        ("ActivitySubstatusValue", "string"),
        ("Level", "string"),
        ("Caller", "string"),
        ("CallerIpAddress", "string"),
        ("CorrelationId", "string"),
        ("SubscriptionId", "string"),
        ("ResourceGroup", "string"),
        ("ResourceProviderValue", "string"),
        ("_ResourceId", "string"),
        ("Properties", "string"),
    ],
    "SigninLogs": [
        *_COMMON,
        ("UserPrincipalName", "string"),
        ("UserId", "string"),
        ("UserDisplayName", "string"),
        ("AppDisplayName", "string"),
        ("AppId", "string"),
        ("IPAddress", "string"),
        ("Location", "string"),
        ("ResultType", "string"),
        ("ResultDescription", "string"),
        ("ClientAppUsed", "string"),
        ("UserAgent", "string"),
        ("ConditionalAccessStatus", "string"),
        ("AuthenticationRequirement", "string"),
        ("RiskLevelDuringSignIn", "string"),
        ("RiskState", "string"),
        ("CorrelationId", "string"),
    ],
    "AzureDiagnostics": [
        *_COMMON,
        ("ResourceId", "string"),
        ("ResourceProvider", "string"),
        ("ResourceType", "string"),
        ("Resource", "string"),
        ("Category", "string"),
        ("OperationName", "string"),
        ("ResultType", "string"),
        ("ResultSignature", "string"),
        ("httpStatusCode_d", "real"),
        ("CallerIPAddress", "string"),
        ("identity_claim_oid_g", "string"),
        ("identity_claim_upn_s", "string"),
        ("id_s", "string"),
        ("requestUri_s", "string"),
        ("clientInfo_s", "string"),
        ("DurationMs", "long"),
        ("CorrelationId", "string"),
    ],
}

_RELATIVE = {"minutes_ago": "minutes", "hours_ago": "hours", "days_ago": "days", "seconds_ago": "seconds"}


def _typed(table: str, column: str, kind: str, value: Any) -> Any:
    if value is None:
        return None
    try:
        if kind == "datetime":
            if isinstance(value, datetime):
                return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
            return kql.parse_datetime(str(value))
        if kind == "long":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if kind == "real":
            return float(value)
        if kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(value)
            return value
        return value if isinstance(value, str) else str(value)
    except (TypeError, ValueError, kql.KqlError) as exc:
        raise ValueError(f"{table}.{column}: {value!r} is not a {kind}") from exc


def normalise_row(table: str, row: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A row of ``table`` with typed values; ``minutes_ago`` and friends resolved against ``now``."""
    schema = dict(TABLE_SCHEMAS[table])
    row = dict(row)
    relative = [k for k in _RELATIVE if k in row]
    if relative:
        if "TimeGenerated" in row or len(relative) > 1:
            raise ValueError(f"{table}: give one of TimeGenerated, {', '.join(_RELATIVE)} per row")
        key = relative[0]
        row["TimeGenerated"] = now - timedelta(**{_RELATIVE[key]: float(row.pop(key))})
    unknown = sorted(set(row) - set(schema))
    if unknown:
        raise ValueError(f"{table} has no column {', '.join(unknown)}")
    if "TimeGenerated" not in row:
        raise ValueError(f"{table}: every row needs TimeGenerated (or minutes_ago / hours_ago / days_ago)")
    return {name: _typed(table, name, kind, row.get(name)) for name, kind in schema.items()}


@dataclass
class Workspace:
    """A Log Analytics workspace. ``workspace_id`` is its customer id (the GUID queries address)."""

    workspace_id: str
    name: str
    resource_id: str
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # rows sent but not yet ingested: (visible from, table, row); see LogAnalytics.settle
    arriving: list[tuple[datetime, str, dict[str, Any]]] = field(default_factory=list)

    def rows(self, table: str) -> list[dict[str, Any]]:
        """The rows ingested so far (rows still arriving are not queryable yet)."""
        return list(self.tables.get(table, []))

    def settle(self, now: datetime) -> None:
        """Ingest the arriving rows that are due by ``now``."""
        due = [entry for entry in self.arriving if entry[0] <= now]
        if not due:
            return
        self.arriving = [entry for entry in self.arriving if entry[0] > now]
        for _, table, row in sorted(due, key=lambda entry: entry[0]):
            self.tables.setdefault(table, []).append(row)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.workspace_id,
            "name": self.name,
            "resource_id": self.resource_id,
            "tables": {name: len(rows) for name, rows in sorted(self.tables.items())},
        }


_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


class LogAnalytics:
    """The tenant's workspaces. Not locked itself: the tenant lock guards it (handlers run under it)."""

    def __init__(self) -> None:
        self._workspaces: dict[str, Workspace] = {}
        # The query API's result limits (irflow.sim.loganalytics.limits); tests may lower them, and
        # ``query_seconds`` is how long each query runs (simulated).
        self.max_records = limits.MAX_RECORDS
        self.max_bytes = limits.MAX_BYTES
        self.query_seconds = 0.0

    def add_workspace(
        self, name: str, *, workspace_id: str | None = None, resource_id: str | None = None
    ) -> Workspace:
        workspace_id = workspace_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"irflow-sim:workspace:{name}"))
        if not _GUID.match(workspace_id):
            raise ValueError(f"workspace id must be a GUID, got {workspace_id!r}")
        if workspace_id.lower() in self._workspaces or self.find(name) is not None:
            raise ValueError(f"workspace {name} ({workspace_id}) already exists")
        workspace = Workspace(workspace_id, name, resource_id or f"/workspaces/{workspace_id}")
        self._workspaces[workspace_id.lower()] = workspace
        return workspace

    def find(self, id_or_name: str) -> Workspace | None:
        found = self._workspaces.get(id_or_name.lower())
        if found is not None:
            return found
        return next((w for w in self._workspaces.values() if w.name.lower() == id_or_name.lower()), None)

    def workspace(self, id_or_name: str) -> Workspace:
        found = self.find(id_or_name)
        if found is None:
            raise KeyError(id_or_name)
        return found

    @property
    def workspaces(self) -> list[Workspace]:
        return list(self._workspaces.values())

    def add_rows(
        self,
        id_or_name: str,
        table: str,
        rows: list[dict[str, Any]],
        now: datetime,
        *,
        visible_at: datetime | None = None,
    ) -> int:
        """Append rows to a table (``now`` resolves relative times); returns how many were added. With
        ``visible_at`` after ``now`` the rows arrive then (ingestion delay) and no query sees them before."""
        if table not in TABLE_SCHEMAS:
            raise ValueError(f"unknown table {table!r} (known: {', '.join(sorted(TABLE_SCHEMAS))})")
        workspace = self.workspace(id_or_name)
        typed = [normalise_row(table, row, now) for row in rows]
        if visible_at is not None and visible_at > now:
            workspace.arriving.extend((visible_at, table, row) for row in typed)
        else:
            workspace.tables.setdefault(table, []).extend(typed)
        return len(typed)

    def settle(self, now: datetime) -> None:
        for workspace in self._workspaces.values():
            workspace.settle(now)

    def query(
        self,
        id_or_name: str,
        text: str,
        *,
        now: datetime,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> dict[str, Any]:
        """Run ``text`` over the workspace, rows limited to ``start <= TimeGenerated <= end`` (each optional);
        the Log Analytics answer body. Raises :class:`kql.KqlError` for a query it cannot run."""
        workspace = self.workspace(id_or_name)
        workspace.settle(now)

        def table(name: str) -> tuple[kql.Schema, list[dict[str, Any]]] | None:
            if name not in TABLE_SCHEMAS:
                return None
            rows = [
                r
                for r in workspace.rows(name)
                if (start is None or r["TimeGenerated"] >= start)
                and (end is None or r["TimeGenerated"] <= end)
            ]
            return TABLE_SCHEMAS[name], rows

        schema, rows = kql.execute(text, table, now)
        answer = {
            "tables": [
                {
                    "name": "PrimaryResult",
                    "columns": [{"name": name, "type": kind} for name, kind in schema],
                    "rows": [[kql.wire_value(row.get(name), kind) for name, kind in schema] for row in rows],
                }
            ]
        }
        return limits.apply(
            answer, max_records=self.max_records, max_bytes=self.max_bytes, seconds=self.query_seconds
        )
