"""Route table of Microsoft.Storage storage accounts."""

from __future__ import annotations

from irflow.sim.router import Route
from irflow.sim.storage import blob_responses, responses

_SUB = "/subscriptions/{subscriptionId}"
_RG = _SUB + "/resourceGroups/{resourceGroupName}"
_ACCOUNTS = "/providers/Microsoft.Storage/storageAccounts"
_ACCOUNT = _RG + _ACCOUNTS + "/{accountName}"
_BLOB_SERVICE = _ACCOUNT + "/blobServices/default"
_CONTAINERS = _BLOB_SERVICE + "/containers"
_CONTAINER = _CONTAINERS + "/{containerName}"

ROUTES = [
    Route("GET", _ACCOUNT, responses.get_properties, "storage.accounts.get_properties"),
    Route("PATCH", _ACCOUNT, responses.update, "storage.accounts.update"),
    Route(
        "GET", _RG + _ACCOUNTS, responses.list_by_resource_group, "storage.accounts.list_by_resource_group"
    ),
    Route("GET", _SUB + _ACCOUNTS, responses.list_by_subscription, "storage.accounts.list"),
    Route("POST", _ACCOUNT + "/listKeys", responses.list_keys, "storage.accounts.list_keys", read_only=True),
    Route("POST", _ACCOUNT + "/regenerateKey", responses.regenerate_key, "storage.accounts.regenerate_key"),
    Route(
        "GET",
        _BLOB_SERVICE,
        blob_responses.get_service_properties,
        "storage.blob_services.get_service_properties",
    ),
    Route(
        "PUT",
        _BLOB_SERVICE,
        blob_responses.set_service_properties,
        "storage.blob_services.set_service_properties",
    ),
    Route("GET", _CONTAINERS, blob_responses.list_containers, "storage.containers.list"),
    Route("GET", _CONTAINER, blob_responses.get_container, "storage.containers.get"),
    Route("PATCH", _CONTAINER, blob_responses.update_container, "storage.containers.update"),
    Route(
        "POST",
        _CONTAINER + "/setLegalHold",
        blob_responses.set_legal_hold,
        "storage.containers.set_legal_hold",
    ),
    Route(
        "POST",
        _CONTAINER + "/clearLegalHold",
        blob_responses.clear_legal_hold,
        "storage.containers.clear_legal_hold",
    ),
    Route(
        "PUT",
        _CONTAINER + "/immutabilityPolicies/default",
        blob_responses.put_immutability_policy,
        "storage.containers.create_or_update_immutability_policy",
    ),
]
