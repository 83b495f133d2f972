"""Diagnostic settings (``Microsoft.Insights/diagnosticSettings``, API 2021-05-01-preview) on a storage
account's blob service, on a key vault and on a subscription (its activity log export), as
``MonitorManagementClient.diagnostic_settings`` (azure-mgmt-monitor 6.x) reads and writes them::

    GET|PUT|DELETE {resourceUri}/providers/Microsoft.Insights/diagnosticSettings/{name}
    GET            {resourceUri}/providers/Microsoft.Insights/diagnosticSettings     → {"value": [...]}

A setting needs a destination (``workspaceId``, ``storageAccountId``, ``eventHubAuthorizationRuleId`` or
``marketplacePartnerId``); its log categories (or category groups) and metric categories must be ones the
resource type has. A resource holds at most 5 settings, and a destination may receive a category from only
one setting of a resource (Azure's "data sink is already used" conflict).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from irflow.sim import errors
from irflow.sim.http import SimRequest, SimResponse

if TYPE_CHECKING:
    from irflow.sim.models import Tenant

SETTING_TYPE = "Microsoft.Insights/diagnosticSettings"
MAX_SETTINGS = 5
DESTINATIONS = ("workspaceId", "storageAccountId", "eventHubAuthorizationRuleId", "marketplacePartnerId")
_CATEGORY_GROUPS = ("audit", "allLogs")

# resource type → (log categories, metric categories)
CATEGORIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "blobServices": (("StorageRead", "StorageWrite", "StorageDelete"), ("Transaction", "Capacity")),
    "vaults": (("AuditEvent", "AzurePolicyEvaluationDetails"), ("AllMetrics",)),
    # A subscription's activity log (subscriptionDiagnosticsSettings_API.json; categories:
    # https://learn.microsoft.com/azure/azure-monitor/essentials/activity-log-schema#categories)
    "subscriptions": (
        (
            "Administrative",
            "Security",
            "ServiceHealth",
            "Alert",
            "Recommendation",
            "Policy",
            "Autoscale",
            "ResourceHealth",
        ),
        (),
    ),  # fmt: skip
}
_GROUP_MEMBERS = {
    "blobServices": {"audit": ("StorageWrite", "StorageDelete"), "allLogs": CATEGORIES["blobServices"][0]},
    "vaults": {"audit": ("AuditEvent",), "allLogs": CATEGORIES["vaults"][0]},
    "subscriptions": {},  # subscription settings take categories, not category groups
}


class DiagnosticSettings:
    """Settings by resource id (guarded by the tenant lock). Keys are lower-cased; names keep their case."""

    def __init__(self) -> None:
        self._by_resource: dict[str, dict[str, dict[str, Any]]] = {}

    def list(self, resource_id: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(s) for s in self._by_resource.get(resource_id.lower(), {}).values()]

    def get(self, resource_id: str, name: str) -> dict[str, Any] | None:
        found = self._by_resource.get(resource_id.lower(), {}).get(name.lower())
        return copy.deepcopy(found) if found is not None else None

    def put(self, resource_id: str, resource_type: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Validate and store a setting (``body`` is the wire body, ``{"properties": {...}}``)."""
        properties = body.get("properties")
        if not isinstance(properties, dict):
            raise errors.ArmError(400, "BadRequest", "The diagnostic setting needs 'properties'.")
        setting = _normalise(resource_id, resource_type, name, properties)
        existing = self._by_resource.setdefault(resource_id.lower(), {})
        if name.lower() not in existing and len(existing) >= MAX_SETTINGS:
            raise errors.ArmError(
                400,
                "BadRequest",
                f"Diagnostic settings count exceeds the maximum of {MAX_SETTINGS} "
                f"for resource '{resource_id}'.",
            )
        for other in existing.values():
            if other["name"].lower() == name.lower():
                continue
            _check_sink_conflict(resource_type, setting, other)
        existing[name.lower()] = setting
        return copy.deepcopy(setting)

    def delete(self, resource_id: str, name: str) -> bool:
        return self._by_resource.get(resource_id.lower(), {}).pop(name.lower(), None) is not None


def _enabled_categories(resource_type: str, entries: list[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    for entry in entries:
        if not entry.get("enabled"):
            continue
        if entry.get("categoryGroup"):
            found |= set(_GROUP_MEMBERS[resource_type][entry["categoryGroup"]])
        elif entry.get("category"):
            found.add(entry["category"])
    return found


def _check_sink_conflict(resource_type: str, new: dict[str, Any], other: dict[str, Any]) -> None:
    for sink in DESTINATIONS:
        mine, theirs = new["properties"].get(sink), other["properties"].get(sink)
        if not mine or not theirs or mine.lower() != theirs.lower():
            continue
        shared = _enabled_categories(resource_type, new["properties"]["logs"]) & _enabled_categories(
            resource_type, other["properties"]["logs"]
        )
        if shared:
            raise errors.ArmError(
                409,
                "Conflict",
                f"Data sink '{mine}' is already used in diagnostic setting '{other['name']}' for category "
                f"'{sorted(shared)[0]}'. Data sinks can't be reused in different settings on the same "
                "category "
                "for the same resource.",
            )


def _retention(entry: dict[str, Any]) -> dict[str, Any]:
    policy = entry.get("retentionPolicy") or {}
    return {"enabled": bool(policy.get("enabled", False)), "days": int(policy.get("days", 0) or 0)}


def _normalise(resource_id: str, resource_type: str, name: str, properties: dict[str, Any]) -> dict[str, Any]:
    log_categories, metric_categories = CATEGORIES[resource_type]
    if not any(properties.get(k) for k in DESTINATIONS):
        raise errors.ArmError(
            400,
            "BadRequest",
            "At least one storage account, event hub, Log Analytics workspace or partner solution "
            "destination "
            "must be specified.",
        )
    logs = []
    for entry in properties.get("logs") or []:
        if not isinstance(entry, dict):
            raise errors.invalid_request_content("logs must be a list of objects")
        category, group = entry.get("category"), entry.get("categoryGroup")
        if bool(category) == bool(group):
            raise errors.ArmError(
                400, "BadRequest", "Each log setting needs either 'category' or 'categoryGroup'."
            )
        if category and category not in log_categories:
            raise errors.ArmError(400, "BadRequest", f"Category '{category}' is not supported.")
        if group and (group not in _CATEGORY_GROUPS or group not in _GROUP_MEMBERS[resource_type]):
            raise errors.ArmError(400, "BadRequest", f"Category group '{group}' is not supported.")
        logs.append(
            {
                "category": category,
                "categoryGroup": group,
                "enabled": bool(entry.get("enabled", False)),
                "retentionPolicy": _retention(entry),
            }
        )
    metrics = []
    for entry in properties.get("metrics") or []:
        if not isinstance(entry, dict):
            raise errors.invalid_request_content("metrics must be a list of objects")
        category = entry.get("category") or (metric_categories[0] if metric_categories else None)
        if category not in metric_categories:
            raise errors.ArmError(400, "BadRequest", f"Metric category '{category}' is not supported.")
        metrics.append(
            {
                "timeGrain": entry.get("timeGrain"),
                "category": category,
                "enabled": bool(entry.get("enabled", False)),
                "retentionPolicy": _retention(entry),
            }
        )
    if not any(e["enabled"] for e in logs + metrics):
        raise errors.ArmError(400, "BadRequest", "At least one log or metric category must be enabled.")
    out = {
        "storageAccountId": properties.get("storageAccountId"),
        "serviceBusRuleId": properties.get("serviceBusRuleId"),
        "eventHubAuthorizationRuleId": properties.get("eventHubAuthorizationRuleId"),
        "eventHubName": properties.get("eventHubName"),
        "workspaceId": properties.get("workspaceId"),
        "marketplacePartnerId": properties.get("marketplacePartnerId"),
        "logAnalyticsDestinationType": properties.get("logAnalyticsDestinationType"),
        "metrics": metrics,
        "logs": logs,
    }
    return {
        "id": f"{resource_id}/providers/microsoft.insights/diagnosticSettings/{name}",
        "type": SETTING_TYPE,
        "name": name,
        "properties": out,
    }


# ---------------------------------------------------------------------------------------------- handlers
def _resource(tenant: Tenant, request: SimRequest) -> tuple[str, str]:
    """The resource id the setting belongs to (canonical casing) and its type key; ARM 404 when missing."""
    params = request.params
    if "resourceGroupName" not in params:  # the subscription's activity log export
        subscription = tenant.subscription(params["subscriptionId"])
        return f"/subscriptions/{subscription.subscription_id}", "subscriptions"
    if "accountName" in params:
        account = tenant.get_storage_account(
            params["subscriptionId"], params["resourceGroupName"], params["accountName"]
        )
        return f"{account.id}/blobServices/default", "blobServices"
    vault = tenant.get_key_vault(params["subscriptionId"], params["resourceGroupName"], params["vaultName"])
    return vault.id, "vaults"


def _not_found(name: str) -> errors.ArmError:
    return errors.ArmError(404, "ResourceNotFound", f"The diagnostic setting '{name}' doesn't exist.")


def get(tenant: Tenant, request: SimRequest) -> SimResponse:
    resource_id, _ = _resource(tenant, request)
    found = tenant.diagnostic_settings.get(resource_id, request.params["name"])
    if found is None:
        raise _not_found(request.params["name"])
    return SimResponse(200, found)


def list_settings(tenant: Tenant, request: SimRequest) -> SimResponse:
    resource_id, _ = _resource(tenant, request)
    return SimResponse(200, {"value": tenant.diagnostic_settings.list(resource_id)})


def create_or_update(tenant: Tenant, request: SimRequest) -> SimResponse:
    resource_id, resource_type = _resource(tenant, request)
    name = request.params["name"]
    if not 1 <= len(name) <= 260 or any(c in name for c in "<>*%&:\\?+/"):
        raise errors.ArmError(400, "BadRequest", f"The diagnostic setting name '{name}' is invalid.")
    setting = tenant.diagnostic_settings.put(resource_id, resource_type, name, request.json_object())
    return SimResponse(200, setting)


def delete(tenant: Tenant, request: SimRequest) -> SimResponse:
    resource_id, _ = _resource(tenant, request)
    existed = tenant.diagnostic_settings.delete(resource_id, request.params["name"])
    return SimResponse(200 if existed else 204)
