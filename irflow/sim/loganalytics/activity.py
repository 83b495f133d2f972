"""The Azure Activity Log as Log Analytics shows it: one ``AzureActivity`` row per successful ARM write.

In Azure, a subscription's diagnostic setting exports its activity log to a workspace; every control-plane
write (PUT, PATCH, DELETE, POST actions) then appears there minutes later with ``OperationNameValue`` (the
RBAC operation, upper-case), ``ActivityStatusValue``, ``Caller``, ``CorrelationId`` and ``_ResourceId``
(lower-case). The simulator behaves as if every subscription exported its activity log to every workspace of
the tenant, with no ingestion delay: the row is there as soon as the write has answered.

Only the final ``Success`` event of an operation is recorded (Azure also logs ``Start`` / ``Accept``), and
data-plane calls (blob ACLs, Key Vault keys) are not: Azure does not put them in the activity log either.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from irflow.sim.models import Tenant

TABLE = "AzureActivity"
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
        "CategoryValue": "Administrative",
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


def record_write(
    tenant: Tenant,
    *,
    operation: str,
    resource_id: str,
    correlation_id: str,
    status_code: int,
    when: datetime,
) -> None:
    """Append the row of one successful ARM write, made at ``when``, to every workspace (the caller holds
    the tenant lock; ``when`` is the journal entry's time, so the tenant clock is not read again)."""
    row = activity_row(
        operation=operation,
        resource_id=resource_id,
        caller=tenant.principal_id,
        correlation_id=correlation_id,
        status_code=status_code,
    )
    for workspace in tenant.logs.workspaces:
        tenant.logs.add_rows(workspace.workspace_id, TABLE, [{**row, "TimeGenerated": when}], when)
