"""Routes of Microsoft.Insights diagnostic settings on blob services, key vaults and subscriptions (ARM)."""

from __future__ import annotations

from irflow.sim.monitor import diagnostics
from irflow.sim.router import Route

_RG = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
_BLOB_SERVICE = _RG + "/providers/Microsoft.Storage/storageAccounts/{accountName}/blobServices/default"
_VAULT = _RG + "/providers/Microsoft.KeyVault/vaults/{vaultName}"
_SETTINGS = "/providers/Microsoft.Insights/diagnosticSettings"

READ = "Microsoft.Insights/diagnosticSettings/read"
WRITE = "Microsoft.Insights/diagnosticSettings/write"
DELETE = "Microsoft.Insights/diagnosticSettings/delete"

_SUBSCRIPTION = "/subscriptions/{subscriptionId}"

ROUTES = [
    route
    for resource, label in (
        (_BLOB_SERVICE, "blob_service"),
        (_VAULT, "vault"),
        (_SUBSCRIPTION, "subscription"),
    )
    for route in (
        Route(
            "GET",
            resource + _SETTINGS,
            diagnostics.list_settings,
            f"monitor.diagnostic_settings.list.{label}",
            operation=READ,
        ),
        Route(
            "GET",
            resource + _SETTINGS + "/{name}",
            diagnostics.get,
            f"monitor.diagnostic_settings.get.{label}",
            operation=READ,
        ),
        Route(
            "PUT",
            resource + _SETTINGS + "/{name}",
            diagnostics.create_or_update,
            f"monitor.diagnostic_settings.create_or_update.{label}",
            operation=WRITE,
        ),
        Route(
            "DELETE",
            resource + _SETTINGS + "/{name}",
            diagnostics.delete,
            f"monitor.diagnostic_settings.delete.{label}",
            operation=DELETE,
        ),
    )
]
