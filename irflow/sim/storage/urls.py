"""Route table of Microsoft.Storage storage accounts."""

from __future__ import annotations

from irflow.sim.router import Route
from irflow.sim.storage import responses

_SUB = "/subscriptions/{subscriptionId}"
_RG = _SUB + "/resourceGroups/{resourceGroupName}"
_ACCOUNTS = "/providers/Microsoft.Storage/storageAccounts"
_ACCOUNT = _RG + _ACCOUNTS + "/{accountName}"

ROUTES = [
    Route("GET", _ACCOUNT, responses.get_properties, "storage.accounts.get_properties"),
    Route("PATCH", _ACCOUNT, responses.update, "storage.accounts.update"),
    Route(
        "GET", _RG + _ACCOUNTS, responses.list_by_resource_group, "storage.accounts.list_by_resource_group"
    ),
    Route("GET", _SUB + _ACCOUNTS, responses.list_by_subscription, "storage.accounts.list"),
    Route("POST", _ACCOUNT + "/listKeys", responses.list_keys, "storage.accounts.list_keys", read_only=True),
    Route("POST", _ACCOUNT + "/regenerateKey", responses.regenerate_key, "storage.accounts.regenerate_key"),
]
