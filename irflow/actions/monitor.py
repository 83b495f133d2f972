"""Azure Monitor actions: what the logs say about storage access, and making sure the logs exist.

``monitor.query_storage_access`` reads Log Analytics (``azure-monitor-query``);
``monitor.ensure_diagnostic_settings`` writes diagnostic settings (``azure-mgmt-monitor``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from irflow.actions.base import (
    Action,
    ActionError,
    Change,
    Plan,
    Result,
    StepContext,
    azure_errors,
    register,
)
from irflow.domain.resource_id import (
    KeyVaultId,
    LogAnalyticsWorkspaceId,
    ResourceId,
    StorageAccountId,
    WorkspaceGuid,
)

QUERY_READ = "Microsoft.OperationalInsights/workspaces/query/read"
WORKSPACE_READ = "Microsoft.OperationalInsights/workspaces/read"


def table_read(table: str) -> str:
    """Table-level read access: a custom role holding workspaces/read, workspaces/query/read and
    workspaces/query/{Table}/read may query that table only
    (https://learn.microsoft.com/azure/azure-monitor/logs/manage-access#set-table-level-read-access)."""
    return f"Microsoft.OperationalInsights/workspaces/query/{table}/read"


DIAGNOSTIC_SETTINGS_READ = "Microsoft.Insights/diagnosticSettings/read"
DIAGNOSTIC_SETTINGS_WRITE = "Microsoft.Insights/diagnosticSettings/write"

AUTH_TYPES = ("SAS", "AccountKey", "Anonymous", "OAuth")
_IP_PREFIX = re.compile(r"^[0-9A-Fa-f.:\[\]]{1,45}$")


def iso_duration(value: timedelta) -> str:
    """``P7D``, ``PT12H``, ``P1DT6H30M``: an ISO 8601 duration of whole seconds."""
    seconds = int(value.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    time = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    return "P" + (f"{days}D" if days else "") + (f"T{time}" if time else "") if days or time else "PT0S"


def _kql_string(value: str) -> str:
    """A KQL string literal of an already validated value (no quote or backslash can reach here)."""
    if '"' in value or "\\" in value:
        raise ValueError(f"refusing to quote {value!r} into KQL")
    return f'"{value}"'


def run_query(
    ctx: StepContext, workspace_id: str, query: str, timespan: Any
) -> tuple[list[dict[str, Any]], str]:
    """Rows of the first result table as dicts, and the partial-result error ("" when complete)."""
    from azure.monitor.query import LogsQueryStatus

    scope = f"Log Analytics workspace {workspace_id} (with table-level access, also {table_read('{Table}')})"
    with azure_errors(permission=QUERY_READ, scope=scope):
        try:
            response = ctx.clients.logs().query_workspace(workspace_id, query, timespan=timespan)
        except HttpResponseError as exc:
            # LogsQueryClient raises a plain HttpResponseError for 404 (WorkspaceNotFoundError).
            if exc.status_code == 404 and not isinstance(exc, ResourceNotFoundError):
                raise ResourceNotFoundError(message=exc.message, response=exc.response) from None
            raise
    if response.status == LogsQueryStatus.PARTIAL:
        tables, error = response.partial_data, response.partial_error
        problem = _partial_problem(error)
    else:
        tables, problem = response.tables, ""
    if not tables:
        return [], problem
    table = tables[0]
    columns = [getattr(c, "name", c) for c in table.columns]
    return [dict(zip(columns, list(row), strict=True)) for row in table.rows], problem


def _partial_problem(error: Any) -> str:
    """What a partial answer says, down to the engine's reason (which limit was hit), kept in ``details``."""
    parts = [getattr(error, "code", "") or "", getattr(error, "message", "") or ""]
    for detail in getattr(error, "details", None) or []:
        inner = detail if isinstance(detail, Mapping) else {}  # the SDK's ErrorDetail is a Mapping
        while isinstance(inner.get("innererror"), Mapping):
            inner = inner["innererror"]
        if inner.get("message"):
            parts.append(str(inner["message"])[:300])
    return ": ".join(p for p in parts if p) or "partial"


# ---------------------------------------------------------------------------------- query_storage_access
class QueryStorageAccessParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workspace_id: WorkspaceGuid = Field(
        description="The Log Analytics workspace (its GUID, 'Workspace ID') receiving the accounts' "
        "StorageBlobLogs."
    )
    accounts: list[StorageAccountId] = Field(min_length=1, description="Storage accounts to summarise.")
    lookback: timedelta = Field(
        default=timedelta(days=7), description="How far back to look: an ISO 8601 duration such as P7D."
    )
    expected_ip_prefixes: list[str] = Field(
        default_factory=list,
        description="Caller address prefixes that are expected (e.g. '10.20.' for the ETL subnet); reads "
        "from any other address are counted as unexpected. End IPv4 prefixes with a dot: '10.2' also matches "
        "10.20.x.x.",
    )
    allow_partial: bool = Field(
        default=False,
        description="Accept a partial answer (Log Analytics cut the result at its limits: 500,000 rows, "
        "64 MB, 10 minutes) as the summary, marked complete: false. By default a partial answer fails the "
        "step: its counts would understate the access.",
    )

    @field_validator("lookback")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0) or value > timedelta(days=730):
            raise ValueError("lookback must be a positive duration of at most two years (P730D)")
        return value

    @field_validator("expected_ip_prefixes")
    @classmethod
    def _prefixes(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _IP_PREFIX.match(value):
                raise ValueError(f"not an IP address prefix: {value[:60]!r} (digits, hex, '.' and ':' only)")
        return values


@register
class QueryStorageAccess(Action):
    """Summarise who read what from storage accounts, from their StorageBlobLogs in Log Analytics.

    Per account and container (never below container level: no blob names or URIs, no user names): requests,
    successful reads and downloads, reads by authentication type (SAS, AccountKey, Anonymous, OAuth), reads
    from addresses outside ``expected_ip_prefixes``, bytes read, first and last access, and the number of
    distinct callers (an Entra object id, else a SAS / key hash, else an IP address). Changes nothing: the
    plan shows the KQL, apply runs it and returns the summary in ``outputs`` for later steps and the
    incident's scope. Needs the accounts' blob service to send StorageRead to the workspace
    (``monitor.ensure_diagnostic_settings``); logs reach a workspace minutes after the access.

    Example::

        - id: scope-access
          action: monitor.query_storage_access
          with:
            workspace_id: "{{ inputs.workspace_id }}"
            accounts: "{{ inputs.storage_accounts }}"
            lookback: P7D
            expected_ip_prefixes: ["10.20."]
    """

    name = "monitor.query_storage_access"
    Params = QueryStorageAccessParams
    permissions = (QUERY_READ, WORKSPACE_READ, table_read("StorageBlobLogs"))
    target_param = "workspace_id"

    @staticmethod
    def query(params: QueryStorageAccessParams) -> str:
        names = ", ".join(_kql_string(ResourceId.parse(a).name) for a in params.accounts)
        if params.expected_ip_prefixes:
            expected = " or ".join(
                f"CallerIpAddress startswith {_kql_string(p)}" for p in params.expected_ip_prefixes
            )
            unexpected = f"not({expected})"
        else:
            unexpected = "false"
        by_auth = ",\n    ".join(
            f'{kind}Reads = countif(IsRead and AuthenticationType == "{kind}")' for kind in AUTH_TYPES
        )
        return f"""StorageBlobLogs
| where AccountName in ({names})
| extend Container = extract(@"^/[^/]+/([^/?]+)", 1, ObjectKey)
| extend IsRead = Category == "StorageRead" and StatusCode startswith "2"
| extend IsUnexpectedIp = {unexpected}
| extend CallerIp = coalesce(extract(@"^(.+):[0-9]+$", 1, CallerIpAddress), CallerIpAddress)
| extend Caller = coalesce(RequesterObjectId, AuthenticationHash, CallerIp)
| summarize Requests = count(),
    Reads = countif(IsRead),
    Downloads = countif(IsRead and OperationName == "GetBlob"),
    {by_auth},
    UnexpectedIpReads = countif(IsRead and IsUnexpectedIp),
    BytesRead = sumif(ResponseBodySize, IsRead),
    FirstAccess = min(TimeGenerated),
    LastAccess = max(TimeGenerated),
    DistinctCallers = dcount(Caller)
    by AccountName, Container
| order by AccountName asc, Container asc"""

    def plan(self, ctx: StepContext) -> Plan:
        params: QueryStorageAccessParams = ctx.params  # type: ignore[assignment]
        return Plan(
            action=self.name,
            target=params.workspace_id,
            notes=[
                f"read-only: runs this query over workspace {params.workspace_id} for the last "
                f"{iso_duration(params.lookback)}",
                self.query(params),
            ],
        )

    def apply(self, ctx: StepContext) -> Result:
        params: QueryStorageAccessParams = ctx.params  # type: ignore[assignment]
        rows, partial = run_query(ctx, params.workspace_id, self.query(params), params.lookback)
        if partial and not params.allow_partial:
            # Past its limits Log Analytics answers with the rows that fit (LogsQueryPartialResult): a summary
            # built from them undercounts the access, so it is not reported as the scope of the incident.
            # https://learn.microsoft.com/azure/azure-monitor/fundamentals/service-limits#la-query-api
            raise ActionError(
                f"Log Analytics returned a partial result for workspace {params.workspace_id} ({partial}): "
                "the access summary would undercount; shorten the lookback, or set allow_partial: true to "
                "keep an incomplete summary"
            )
        ids = {ResourceId.parse(a).name.lower(): a for a in params.accounts}
        containers: list[dict[str, Any]] = []
        totals: dict[str, dict[str, Any]] = {
            a: {"requests": 0, "reads": 0, "downloads": 0, "bytes_read": 0, "unexpected_ip_reads": 0}
            for a in params.accounts
        }
        for row in rows:
            account = ids.get(str(row["AccountName"]).lower())
            if account is None:
                continue
            entry = {
                "account": account,
                "container": row["Container"] or None,
                "requests": int(row["Requests"] or 0),
                "reads": int(row["Reads"] or 0),
                "downloads": int(row["Downloads"] or 0),
                "reads_by_auth": {kind: int(row[f"{kind}Reads"] or 0) for kind in AUTH_TYPES},
                "unexpected_ip_reads": int(row["UnexpectedIpReads"] or 0)
                if params.expected_ip_prefixes
                else None,
                "bytes_read": int(row["BytesRead"] or 0),
                "first_access": _iso(row["FirstAccess"]),
                "last_access": _iso(row["LastAccess"]),
                "distinct_callers": int(row["DistinctCallers"] or 0),
            }
            containers.append(entry)
            total = totals[account]
            for key in ("requests", "reads", "downloads", "bytes_read"):
                total[key] += entry[key]
            total["unexpected_ip_reads"] += entry["unexpected_ip_reads"] or 0
            for key, pick in (("first_access", min), ("last_access", max)):
                if entry[key]:
                    total[key] = pick(filter(None, (total.get(key), entry[key])))
        if not params.expected_ip_prefixes:
            for total in totals.values():
                total["unexpected_ip_reads"] = None
        notes = (
            [] if not partial else [f"partial result from Log Analytics, counts are incomplete: {partial}"]
        )
        if partial:
            ctx.log.warning("partial log analytics result kept", workspace=params.workspace_id)
        ctx.log.info("storage access summarised", accounts=len(params.accounts), containers=len(containers))
        return Result(
            changed=False,
            outputs={
                "workspace_id": params.workspace_id,
                "lookback": iso_duration(params.lookback),
                "complete": not partial,
                "containers": containers,
                "accounts": totals,
                "accessed": sorted(
                    f"{ResourceId.parse(c['account']).name}/{c['container']}"
                    for c in containers
                    if c["reads"] and c["container"]
                ),
            },
            notes=notes,
        )

    def verify(self, ctx: StepContext) -> bool:
        return True


def _iso(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


# ------------------------------------------------------------------------------ ensure_diagnostic_settings
BLOB_CATEGORIES: tuple[str, ...] = ("StorageRead", "StorageWrite", "StorageDelete")
VAULT_CATEGORIES: tuple[str, ...] = ("AuditEvent",)
# Azure's category groups, per resource type (what ``audit`` / ``allLogs`` include).
_GROUPS = {
    "blob": {
        "audit": {"StorageWrite", "StorageDelete"},
        "allLogs": {"StorageRead", "StorageWrite", "StorageDelete"},
    },
    "vault": {"audit": {"AuditEvent"}, "allLogs": {"AuditEvent", "AzurePolicyEvaluationDetails"}},
}


class EnsureDiagnosticSettingsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workspace: LogAnalyticsWorkspaceId = Field(
        description="Resource id of the Log Analytics workspace the logs must reach."
    )
    storage_accounts: list[StorageAccountId] = Field(
        default_factory=list, description="Accounts whose blob service must send StorageRead/Write/Delete."
    )
    key_vaults: list[KeyVaultId] = Field(
        default_factory=list, description="Vaults that must send AuditEvent."
    )
    setting_name: str = Field(
        default="irflow-security-logs",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
        description="Name of the diagnostic setting created where none sends to the workspace yet.",
    )

    @model_validator(mode="after")
    def _something(self) -> EnsureDiagnosticSettingsParams:
        if not self.storage_accounts and not self.key_vaults:
            raise ValueError("name at least one storage account or key vault")
        return self


@register
class EnsureDiagnosticSettings(Action):
    """Make storage blob logs and Key Vault audit events flow to a Log Analytics workspace.

    For each account's blob service (StorageRead, StorageWrite, StorageDelete) and each vault (AuditEvent):
    nothing is written when settings already send those categories to the workspace (directly or through
    the ``audit`` / ``allLogs`` category groups). Otherwise the setting that already targets the workspace
    gets the missing categories (its group entries written out as the categories they cover, its other
    destinations and metrics kept), or a new setting ``setting_name`` is created. The prior settings of each
    changed resource are recorded.

    Example::

        - id: ensure-logging
          action: monitor.ensure_diagnostic_settings
          with:
            workspace: "{{ inputs.workspace_resource_id }}"
            storage_accounts: "{{ inputs.storage_accounts }}"
            key_vaults: "{{ inputs.key_vaults }}"
    """

    name = "monitor.ensure_diagnostic_settings"
    Params = EnsureDiagnosticSettingsParams
    permissions = (DIAGNOSTIC_SETTINGS_READ, DIAGNOSTIC_SETTINGS_WRITE)
    target_param = "workspace"

    @staticmethod
    def _resources(params: EnsureDiagnosticSettingsParams) -> list[tuple[str, str, str, tuple[str, ...]]]:
        """(resource uri, subscription, kind, categories) of every resource to cover."""
        out: list[tuple[str, str, str, tuple[str, ...]]] = [
            (f"{a}/blobServices/default", ResourceId.parse(a).subscription_id, "blob", BLOB_CATEGORIES)
            for a in params.storage_accounts
        ]
        out += [
            (v, ResourceId.parse(v).subscription_id, "vault", VAULT_CATEGORIES) for v in params.key_vaults
        ]
        return out

    def _settings(self, ctx: StepContext, uri: str, subscription: str) -> list[Any]:
        with azure_errors(permission=DIAGNOSTIC_SETTINGS_READ, scope=uri):
            return list(ctx.clients.monitor(subscription).diagnostic_settings.list(uri))

    @staticmethod
    def _covered(kind: str, setting: Any) -> set[str]:
        found: set[str] = set()
        for entry in setting.logs or []:
            if not entry.enabled:
                continue
            if entry.category_group:
                found |= _GROUPS[kind].get(entry.category_group, set())
            elif entry.category:
                found.add(entry.category)
        return found

    def _targets(
        self, ctx: StepContext, uri: str, subscription: str, kind: str, wanted: tuple[str, ...]
    ) -> Any:
        """None when the workspace already gets ``wanted``; else (setting name, existing setting or None,
        missing categories, every current setting as recorded prior state)."""
        params: EnsureDiagnosticSettingsParams = ctx.params  # type: ignore[assignment]
        settings = self._settings(ctx, uri, subscription)
        workspace = params.workspace.lower()
        to_workspace = [s for s in settings if (s.workspace_id or "").lower() == workspace]
        covered: set[str] = set()
        for setting in to_workspace:
            covered |= self._covered(kind, setting)
        missing = [c for c in wanted if c not in covered]
        prior = [_describe(s) for s in settings]
        if not missing:
            return None, prior
        if to_workspace:
            return (to_workspace[0].name, to_workspace[0], missing), prior
        named = next((s for s in settings if (s.name or "").lower() == params.setting_name.lower()), None)
        if named is not None:
            raise ActionError(
                f"diagnostic setting {named.name} on {uri} already sends elsewhere; "
                "choose another setting_name"
            )
        return (params.setting_name, None, missing), prior

    def _plan_all(self, ctx: StepContext) -> list[tuple[str, str, str, Any, list[dict[str, Any]]]]:
        params: EnsureDiagnosticSettingsParams = ctx.params  # type: ignore[assignment]
        out = []
        for uri, subscription, kind, wanted in self._resources(params):
            target, prior = self._targets(ctx, uri, subscription, kind, wanted)
            out.append((uri, subscription, kind, target, prior))
        return out

    @staticmethod
    def _changes(
        planned: list[tuple[str, str, str, Any, list[dict[str, Any]]]], workspace: str
    ) -> list[Change]:
        changes = []
        for uri, _, _, target, _ in planned:
            if target is None:
                continue
            name, existing, missing = target
            changes.append(
                Change(
                    field=f"{uri}/providers/Microsoft.Insights/diagnosticSettings/{name}",
                    before=_describe(existing) if existing is not None else None,
                    after={"workspaceId": workspace, "add_categories": missing},
                )
            )
        return changes

    def plan(self, ctx: StepContext) -> Plan:
        params: EnsureDiagnosticSettingsParams = ctx.params  # type: ignore[assignment]
        return Plan(
            action=self.name,
            target=params.workspace,
            changes=self._changes(self._plan_all(ctx), params.workspace),
        )

    def apply(self, ctx: StepContext) -> Result:
        # The models of the API version the client's diagnostic_settings operations speak.
        from azure.mgmt.monitor.v2021_05_01_preview.models import DiagnosticSettingsResource, LogSettings

        params: EnsureDiagnosticSettingsParams = ctx.params  # type: ignore[assignment]
        planned = self._plan_all(ctx)
        changes = self._changes(planned, params.workspace)
        prior = {uri: settings for uri, _, _, target, settings in planned if target is not None}
        if not changes:
            return Result(changed=False, notes=["logs already flow to the workspace"])
        for uri, subscription, kind, target, _ in planned:
            if target is None:
                continue
            name, existing, missing = target
            if existing is None:
                body = DiagnosticSettingsResource(
                    workspace_id=params.workspace,
                    logs=[LogSettings(category=c, enabled=True) for c in missing],
                )
            else:
                body = existing
                body.logs = _merged_logs(kind, existing.logs or [], missing, LogSettings)
            with azure_errors(permission=DIAGNOSTIC_SETTINGS_WRITE, scope=uri):
                ctx.clients.monitor(subscription).diagnostic_settings.create_or_update(uri, name, body)
        ctx.log.info("diagnostic settings ensured", resources=len(changes))
        return Result(changed=True, changes=changes, prior_state={"diagnosticSettings": prior})

    def verify(self, ctx: StepContext) -> bool:
        return all(target is None for _, _, _, target, _ in self._plan_all(ctx))


def _merged_logs(kind: str, logs: list[Any], missing: list[str], log_settings: Any) -> list[Any]:
    """Existing log entries with category groups written out as categories, plus ``missing`` enabled."""
    merged: dict[str, Any] = {}
    for entry in logs:
        if entry.category_group:
            if entry.enabled:
                for category in sorted(_GROUPS[kind].get(entry.category_group, ())):
                    merged[category] = log_settings(category=category, enabled=True)
        elif entry.category and (entry.category not in merged or entry.enabled):
            merged[entry.category] = entry
    for category in missing:
        current = merged.get(category)
        if current is None:
            merged[category] = log_settings(category=category, enabled=True)
        else:
            current.enabled = True
    return list(merged.values())


def _describe(setting: Any) -> dict[str, Any]:
    """A diagnostic setting as recorded prior state: destinations and log categories (no secrets in it)."""
    return {
        "name": setting.name,
        "workspaceId": setting.workspace_id,
        "storageAccountId": setting.storage_account_id,
        "eventHubAuthorizationRuleId": setting.event_hub_authorization_rule_id,
        "logs": [
            {"category": e.category, "categoryGroup": e.category_group, "enabled": bool(e.enabled)}
            for e in setting.logs or []
        ],
    }
