"""The Azure Activity Log as Log Analytics shows it: one ``AzureActivity`` row per successful ARM write.

In Azure, a subscription's activity log reaches a workspace only through a diagnostic setting on the
subscription (``/subscriptions/{id}/providers/Microsoft.Insights/diagnosticSettings/{name}``) that sends its
``Administrative`` category there, and a row arrives minutes after the write ("3 to 20 minutes"):
https://learn.microsoft.com/azure/azure-monitor/essentials/activity-log#send-to-log-analytics-workspace
https://learn.microsoft.com/azure/azure-monitor/logs/data-ingestion-time
The simulator does the same: a row goes only to the workspaces a setting of the write's subscription exports
to, and becomes visible ``tenant.activity_log_delay`` (default 5 minutes) of tenant clock after the write. A
scenario may relax either rule by name (:mod:`irflow.sim.strictness`): ``activity_log_export`` sends every row
to every workspace, ``activity_log_delay`` makes it visible at once.

Each row carries ``OperationNameValue`` (the RBAC operation, upper-case), ``ActivityStatusValue``,
``Caller``, ``CorrelationId`` and ``_ResourceId`` (lower-case). Only the final ``Success`` event of an
operation is recorded (Azure also logs ``Start`` / ``Accept``), and data-plane calls (blob ACLs, Key Vault
keys) are not: Azure does
not put them in the activity log either.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from irflow.sim.loganalytics.models import Workspace
    from irflow.sim.models import Tenant

TABLE = "AzureActivity"
CATEGORY = "Administrative"
DEFAULT_DELAY = timedelta(minutes=5)
_SCOPE = re.compile(
    r"^/subscriptions/(?P<subscription>[^/]+)(?:/resourceGroups/(?P<group>[^/]+))?"
    r"(?:/providers/(?P<provider>[^/]+))?",
    re.IGNORECASE,
)


def activity_row(
    *, operation: str, resource_id: str, caller: str, correlation_id: str, status_code: int
) -> dict[str, Any]:
    """The ``AzureActivity`` row of one successful write of ``operation`` on ``resource_id``."""
    found = _SCOPE.match(resource_id)
    subscription = found.group("subscription") if found else ""
    group = (found.group("group") or "") if found else ""
    provider = (found.group("provider") or "") if found else ""
    return {
        "OperationNameValue": operation.upper(),
        "OperationName": operation,
        "CategoryValue": CATEGORY,
        "ActivityStatusValue": "Success",
        "ActivitySubstatusValue": "OK" if status_code == 200 else str(status_code),
        "Level": "Informational",
        "Caller": caller,
        "CallerIpAddress": "127.0.0.1",
        "CorrelationId": correlation_id,
        "SubscriptionId": subscription,
        "ResourceGroup": group.upper(),
        "ResourceProviderValue": provider.upper(),
        "_ResourceId": resource_id.lower(),
        "Properties": "{}",
    }


def exporting_workspaces(tenant: Tenant, subscription_id: str) -> list[Workspace]:
    """The workspaces a subscription's diagnostic settings send its Administrative activity log to."""
    if tenant.is_relaxed("activity_log_export"):
        return tenant.logs.workspaces
    targets = set()
    for setting in tenant.diagnostic_settings.list(f"/subscriptions/{subscription_id}"):
        properties = setting["properties"]
        sends = any(
            entry.get("enabled") and entry.get("category") == CATEGORY
            for entry in properties.get("logs") or []
        )
        if sends and properties.get("workspaceId"):
            targets.add(properties["workspaceId"].lower())
    return [w for w in tenant.logs.workspaces if w.resource_id.lower() in targets]


def record_write(
    tenant: Tenant,
    *,
    operation: str,
    resource_id: str,
    correlation_id: str,
    status_code: int,
    when: datetime,
) -> None:
    """Queue the row of one successful ARM write, made at ``when``, for the workspaces its subscription
    exports to (the caller holds the tenant lock; ``when`` is the journal entry's time, so the clock is not
    read again)."""
    found = _SCOPE.match(resource_id)
    if not found:
        return
    row = activity_row(
        operation=operation,
        resource_id=resource_id,
        caller=tenant.principal_id,
        correlation_id=correlation_id,
        status_code=status_code,
    )
    delay = timedelta(0) if tenant.is_relaxed("activity_log_delay") else tenant.activity_log_delay
    for workspace in exporting_workspaces(tenant, found.group("subscription")):
        tenant.logs.add_rows(
            workspace.workspace_id, TABLE, [{**row, "TimeGenerated": when}], when, visible_at=when + delay
        )
