"""The Log Analytics query API: ``POST {endpoint}/v1/workspaces/{workspaceId}/query`` with
``{"query", "timespan"}``, answered ``{"tables": [{"name": "PrimaryResult", "columns", "rows"}]}`` as
``azure.monitor.query.LogsQueryClient`` parses it.

Served by the simulator at its own base URL (``LogsQueryClient(cred, endpoint=<sim base URL>,
audience=<sim base URL>)``). Pipeline (:func:`admit`): bearer token → route → RBAC
(``Microsoft.OperationalInsights/workspaces/query/read`` over the workspace's resource id) → latency /
injected error. Errors use Log Analytics' body: ``{"error": {"code", "message", "innererror"}}`` (a query
the interpreter cannot run: 400 ``BadArgumentError``; an unknown workspace: 404 ``WorkspaceNotFoundError``).
"""

from __future__ import annotations

import hmac
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from irflow.sim import errors
from irflow.sim.http import SimRequest, SimResponse
from irflow.sim.loganalytics import kql

if TYPE_CHECKING:
    from irflow.sim.loganalytics.models import Workspace
    from irflow.sim.models import Tenant
    from irflow.sim.router import Route

PREFIX = "/v1/"
QUERY_READ = "Microsoft.OperationalInsights/workspaces/query/read"


class LogsError(errors.ArmError):
    """A Log Analytics error body (``innererror`` says what in the query was wrong)."""

    def __init__(self, status: int, code: str, message: str, inner: dict[str, str] | None = None) -> None:
        super().__init__(status, code, message)
        self.inner = inner

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": self.message,
            "code": self.code,
            "correlationId": str(uuid.uuid4()),
        }
        if self.inner:
            error["innererror"] = self.inner
        return {"error": error}


def bad_argument(message: str, kind: str = "SyntaxError") -> LogsError:
    return LogsError(
        400,
        "BadArgumentError",
        "The request had some invalid properties",
        {"code": kind, "message": message},
    )


def _authenticate(tenant: Tenant, request: SimRequest) -> None:
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise LogsError(401, "AuthorizationRequiredError", "Valid authentication was not provided")
    if not hmac.compare_digest(token.strip().encode(), tenant.token.encode()):
        raise LogsError(
            401, "InvalidTokenError", "The provided authentication is not valid for this resource"
        )


def _workspace(tenant: Tenant, request: SimRequest) -> Workspace:
    workspace_id = request.params.get("workspaceId", "")
    with tenant.lock:
        found = tenant.logs.find(workspace_id)
    if found is None:
        raise LogsError(404, "WorkspaceNotFoundError", f"The workspace {workspace_id} could not be found")
    return found


def admit(tenant: Tenant, request: SimRequest, route: Route | None) -> None:
    _authenticate(tenant, request)
    if route is None:
        raise LogsError(404, "PathNotFoundError", f"The requested path does not exist: {request.path}")
    workspace = _workspace(tenant, request)
    for operation in [route.operation, *_table_operations(request)]:
        if operation and tenant.rbac.denial(operation, workspace.resource_id):
            raise LogsError(
                403,
                "InsufficientAccessError",
                "The provided credentials have insufficient access to perform the requested operation",
            )
    faults = tenant.faults
    if faults.latency_ms:
        tenant.sleep(faults.latency_ms / 1000.0)
    if faults.error_rate and tenant.random.random() < faults.error_rate:
        raise LogsError(500, "InternalServerError", "Injected by the irflow.sim error rate.")


def table_read(table: str) -> str:
    """The table-level read permission of a workspace table ("Set table-level read access":
    https://learn.microsoft.com/azure/azure-monitor/logs/manage-access#set-table-level-read-access)."""
    return f"Microsoft.OperationalInsights/workspaces/query/{table}/read"


def _table_operations(request: SimRequest) -> list[str]:
    """Table-level read permissions of the tables a query names: a principal denied one of them is refused
    the query (the simulator's stricter reading of table-level RBAC; Azure may instead return the other
    tables' rows)."""
    from irflow.sim.loganalytics.models import TABLE_SCHEMAS

    try:
        text = request.json_object().get("query")
    except errors.ArmError:
        return []
    if not isinstance(text, str):
        return []
    return [table_read(name) for name in TABLE_SCHEMAS if re.search(rf"\b{re.escape(name)}\b", text)]


_DURATION = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)


def _duration(text: str) -> timedelta | None:
    found = _DURATION.match(text.strip())
    if not found or text.strip().upper() in ("P", "PT"):
        return None
    return timedelta(**{k: float(v) for k, v in found.groupdict().items() if v})


def _instant(text: str) -> datetime | None:
    try:
        return kql.parse_datetime(text)
    except kql.KqlError:
        return None


def parse_timespan(value: Any, now: datetime) -> tuple[datetime | None, datetime | None]:
    """An ISO 8601 duration (ending now) or interval (``start/end``, ``start/duration``, ``duration/end``)."""
    if value is None or value == "":
        return None, None
    if not isinstance(value, str):
        raise bad_argument("timespan must be an ISO 8601 duration or interval string", "InvalidTimespan")
    parts = value.split("/")
    if len(parts) == 1:
        duration = _duration(parts[0])
        if duration is not None:
            return now - duration, now
    elif len(parts) == 2:
        first, second = parts
        start, end = _instant(first), _instant(second)
        if start is not None and end is not None:
            return start, end
        if start is not None and (span := _duration(second)) is not None:
            return start, start + span
        if end is not None and (span := _duration(first)) is not None:
            return end - span, end
    raise bad_argument(f"the timespan {value!r} is not an ISO 8601 duration or interval", "InvalidTimespan")


def query(tenant: Tenant, request: SimRequest) -> SimResponse:
    try:
        body = request.json_object()
    except errors.ArmError as exc:
        raise bad_argument(exc.message, "InvalidRequestBody") from exc
    text = body.get("query")
    if not isinstance(text, str) or not text.strip():
        raise bad_argument("the request body needs a non-empty 'query' string", "InvalidRequestBody")
    if body.get("workspaces"):
        raise bad_argument(
            "cross-workspace queries (workspaces) are not supported by the simulator", "Unsupported"
        )
    now = tenant.now().astimezone(UTC)
    start, end = parse_timespan(body.get("timespan"), now)
    workspace = _workspace(tenant, request)
    try:
        answer = tenant.logs.query(workspace.workspace_id, text, now=now, start=start, end=end)
    except kql.KqlError as exc:
        raise bad_argument(exc.message, exc.kind) from exc
    return SimResponse(200, answer)
