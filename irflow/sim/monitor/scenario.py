"""Scenario sections for monitoring and identity: ``workspaces``, ``graph``, ``diagnostic_settings``::

    workspaces:
      - id: 5d6e7f80-1a2b-4c3d-8e9f-0a1b2c3d4e5f   # the customer id queries address (default: from the name)
        name: law-security
        resource_group: rg-security               # optional; the workspace's ARM id (RBAC scope) uses it
        tables:
          StorageBlobLogs:
            - {minutes_ago: 30, AccountName: phipatientexports, OperationName: GetBlob, StatusCode: "200"}
            - repeat: 240                         # 240 rows, the first 95 minutes ago, then every 20 s
              minutes_ago: 95
              every_seconds: 20
              row: {AccountName: phipatientexports, OperationName: GetBlob, ObjectKey: "/p/e-{i:04d}.csv"}
    graph:
      users:
        - {id: 2f1e…, userPrincipalName: dana@contoso.example, displayName: Dana, accountEnabled: true}
      service_principals:
        - {id: 4b7d…, appId: 9c8b…, displayName: etl-nightly, accountEnabled: true}
    diagnostic_settings:
      - resource_id: /subscriptions/…/storageAccounts/phiimaging/blobServices/default
        name: to-law-security
        properties: {workspaceId: …, logs: [{category: StorageRead, enabled: true}]}
      - resource_id: /subscriptions/…                # the activity log export (AzureActivity)
        name: activity-to-law-security
        properties: {workspaceId: …, logs: [{category: Administrative, enabled: true}]}

Row times are relative to the tenant clock (``minutes_ago``, ``hours_ago``, ``days_ago``) or absolute
(``TimeGenerated``). In a ``repeat`` block, string values may use ``{i}`` (the copy's index from 0).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from irflow.sim import arm
from irflow.sim.errors import ArmError
from irflow.sim.loganalytics.models import TABLE_SCHEMAS

if TYPE_CHECKING:
    from irflow.sim.models import Tenant

_RELATIVE = ("minutes_ago", "hours_ago", "days_ago", "seconds_ago")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class WorkspaceSpec(_Strict):
    id: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
    name: str = Field(min_length=4, max_length=63)
    subscription_id: str | None = None
    resource_group: str | None = None
    tables: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)


class UserSpec(_Strict):
    id: str | None = None
    user_principal_name: str = Field(alias="userPrincipalName", min_length=3)
    display_name: str | None = Field(default=None, alias="displayName")
    account_enabled: bool = Field(default=True, alias="accountEnabled")
    mail: str | None = None
    job_title: str | None = Field(default=None, alias="jobTitle")
    department: str | None = None
    created_days_ago: float | None = Field(default=None, ge=0)


class ServicePrincipalSpec(_Strict):
    id: str | None = None
    app_id: str | None = Field(default=None, alias="appId")
    display_name: str = Field(alias="displayName", min_length=1)
    account_enabled: bool = Field(default=True, alias="accountEnabled")
    service_principal_type: str = Field(default="Application", alias="servicePrincipalType")
    tags: list[str] = Field(default_factory=list)


class GraphSpec(_Strict):
    users: list[UserSpec] = Field(default_factory=list)
    service_principals: list[ServicePrincipalSpec] = Field(default_factory=list)


class DiagnosticSettingSpec(_Strict):
    resource_id: str = Field(pattern=r"^/subscriptions/")
    name: str = Field(min_length=1)
    properties: dict[str, Any]


def expand_rows(table: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as given, with each ``repeat`` block expanded to its copies."""
    out: list[dict[str, Any]] = []
    for row in rows:
        if "repeat" not in row:
            out.append(row)
            continue
        block = dict(row)
        count = block.pop("repeat")
        template = block.pop("row", None)
        every = float(block.pop("every_seconds", 60))
        anchors = [k for k in _RELATIVE if k in block]
        if not isinstance(count, int) or count < 1 or not isinstance(template, dict) or len(anchors) != 1:
            raise ValueError(
                f"{table}: a repeat block needs repeat (a count), row (a mapping) and one of "
                f"{', '.join(_RELATIVE)}"
            )
        unit = {"minutes_ago": 60, "hours_ago": 3600, "days_ago": 86400, "seconds_ago": 1}[anchors[0]]
        first = float(block.pop(anchors[0])) * unit
        if block:
            raise ValueError(f"{table}: unknown repeat keys {', '.join(sorted(block))}")
        for i in range(count):
            copy = {k: v.format(i=i) if isinstance(v, str) else v for k, v in template.items()}
            copy["seconds_ago"] = max(first - i * every, 0.0)
            out.append(copy)
    return out


def apply(
    tenant: Tenant,
    now: datetime,
    workspaces: list[WorkspaceSpec],
    graph: GraphSpec | None,
    diagnostic_settings: list[DiagnosticSettingSpec],
) -> None:
    """Load the sections into ``tenant`` (``ValueError`` naming the problem when one is invalid)."""
    for spec in workspaces:
        subscription_id = spec.subscription_id or tenant.default_subscription_id
        resource_id = None
        if spec.resource_group and subscription_id:
            resource_id = (
                f"{arm.resource_group_id(subscription_id, spec.resource_group)}"
                f"/providers/Microsoft.OperationalInsights/workspaces/{spec.name}"
            )
        try:
            tenant.logs.add_workspace(spec.name, workspace_id=spec.id, resource_id=resource_id)
            for table, rows in spec.tables.items():
                if table not in TABLE_SCHEMAS:
                    raise ValueError(f"unknown table {table!r} (known: {', '.join(sorted(TABLE_SCHEMAS))})")
                tenant.logs.add_rows(spec.name, table, expand_rows(table, rows), now)
        except ValueError as exc:
            raise ValueError(f"invalid scenario: workspace {spec.name}: {exc}") from exc
    if graph is not None:
        for user in graph.users:
            try:
                tenant.directory.add_user(
                    user.user_principal_name,
                    id=user.id,
                    display_name=user.display_name,
                    account_enabled=user.account_enabled,
                    mail=user.mail,
                    job_title=user.job_title,
                    department=user.department,
                    created=now - timedelta(days=user.created_days_ago)
                    if user.created_days_ago is not None
                    else None,
                )
            except ValueError as exc:
                raise ValueError(f"invalid scenario: graph user {user.user_principal_name}: {exc}") from exc
        for principal in graph.service_principals:
            try:
                tenant.directory.add_service_principal(
                    principal.display_name,
                    id=principal.id,
                    app_id=principal.app_id,
                    account_enabled=principal.account_enabled,
                    service_principal_type=principal.service_principal_type,
                    tags=principal.tags,
                )
            except ValueError as exc:
                raise ValueError(
                    f"invalid scenario: graph service principal {principal.display_name}: {exc}"
                ) from exc
    for setting in diagnostic_settings:
        resource_id = setting.resource_id.rstrip("/")
        lowered = resource_id.lower()
        try:
            if lowered.endswith("/blobservices/default"):
                account = tenant.storage_account(resource_id.split("/")[-3])
                canonical, kind = f"{account.id}/blobServices/default", "blobServices"
            elif "/providers/microsoft.keyvault/vaults/" in lowered:
                canonical, kind = tenant.key_vault(resource_id.split("/")[-1]).id, "vaults"
            elif lowered.count("/") == 2:  # /subscriptions/{id}: the activity log export
                subscription = tenant.subscription(resource_id.split("/")[2])
                canonical, kind = f"/subscriptions/{subscription.subscription_id}", "subscriptions"
            else:
                raise ValueError(
                    "only blob services, key vaults and subscriptions carry diagnostic settings in the "
                    "simulator"
                )
            tenant.diagnostic_settings.put(canonical, kind, setting.name, {"properties": setting.properties})
        except KeyError as exc:
            raise ValueError(
                f"invalid scenario: diagnostic setting {setting.name}: no resource {exc}"
            ) from exc
        except ArmError as exc:
            raise ValueError(f"invalid scenario: diagnostic setting {setting.name}: {exc.message}") from exc
