"""Route table of Microsoft.Storage storage accounts, each with the Azure RBAC operation it needs
(names from Microsoft's "Azure resource provider operations" list for Microsoft.Storage)."""

from __future__ import annotations

from irflow.sim.router import DataPlane, Route
from irflow.sim.storage import blob_data, blob_responses, responses

_SUB = "/subscriptions/{subscriptionId}"
_RG = _SUB + "/resourceGroups/{resourceGroupName}"
_ACCOUNTS = "/providers/Microsoft.Storage/storageAccounts"
_ACCOUNT = _RG + _ACCOUNTS + "/{accountName}"
_BLOB_SERVICE = _ACCOUNT + "/blobServices/default"
_CONTAINERS = _BLOB_SERVICE + "/containers"
_CONTAINER = _CONTAINERS + "/{containerName}"

_OP = "Microsoft.Storage/storageAccounts"
ACCOUNT_READ = f"{_OP}/read"
ACCOUNT_WRITE = f"{_OP}/write"
LIST_KEYS = f"{_OP}/listkeys/action"
REGENERATE_KEY = f"{_OP}/regeneratekey/action"
REVOKE_USER_DELEGATION_KEYS = f"{_OP}/revokeUserDelegationKeys/action"
BLOB_SERVICE_READ = f"{_OP}/blobServices/read"
BLOB_SERVICE_WRITE = f"{_OP}/blobServices/write"
CONTAINER_READ = f"{_OP}/blobServices/containers/read"
CONTAINER_WRITE = f"{_OP}/blobServices/containers/write"
SET_LEGAL_HOLD = f"{_OP}/blobServices/containers/setLegalHold/action"
CLEAR_LEGAL_HOLD = f"{_OP}/blobServices/containers/clearLegalHold/action"
IMMUTABILITY_POLICY_WRITE = f"{_OP}/blobServices/containers/immutabilityPolicies/write"
IMMUTABILITY_POLICY_LOCK = f"{_OP}/blobServices/containers/immutabilityPolicies/lock/action"
# Blob service data plane (Get / Set Container ACL with Microsoft Entra authorization).
CONTAINER_GET_ACL = f"{_OP}/blobServices/containers/getAcl/action"
CONTAINER_SET_ACL = f"{_OP}/blobServices/containers/setAcl/action"

ROUTES = [
    Route(
        "GET", _ACCOUNT, responses.get_properties, "storage.accounts.get_properties", operation=ACCOUNT_READ
    ),
    Route("PATCH", _ACCOUNT, responses.update, "storage.accounts.update", operation=ACCOUNT_WRITE),
    Route(
        "GET",
        _RG + _ACCOUNTS,
        responses.list_by_resource_group,
        "storage.accounts.list_by_resource_group",
        operation=ACCOUNT_READ,
    ),
    Route(
        "GET",
        _SUB + _ACCOUNTS,
        responses.list_by_subscription,
        "storage.accounts.list",
        operation=ACCOUNT_READ,
    ),
    Route(
        "POST",
        _ACCOUNT + "/listKeys",
        responses.list_keys,
        "storage.accounts.list_keys",
        read_only=True,
        operation=LIST_KEYS,
    ),
    Route(
        "POST",
        _ACCOUNT + "/regenerateKey",
        responses.regenerate_key,
        "storage.accounts.regenerate_key",
        operation=REGENERATE_KEY,
    ),
    Route(
        "POST",
        _ACCOUNT + "/revokeUserDelegationKeys",
        responses.revoke_user_delegation_keys,
        "storage.accounts.revoke_user_delegation_keys",
        operation=REVOKE_USER_DELEGATION_KEYS,
    ),
    Route(
        "GET",
        _BLOB_SERVICE,
        blob_responses.get_service_properties,
        "storage.blob_services.get_service_properties",
        operation=BLOB_SERVICE_READ,
    ),
    Route(
        "PUT",
        _BLOB_SERVICE,
        blob_responses.set_service_properties,
        "storage.blob_services.set_service_properties",
        operation=BLOB_SERVICE_WRITE,
    ),
    Route(
        "GET",
        _CONTAINERS,
        blob_responses.list_containers,
        "storage.containers.list",
        operation=CONTAINER_READ,
    ),
    Route(
        "GET", _CONTAINER, blob_responses.get_container, "storage.containers.get", operation=CONTAINER_READ
    ),
    Route(
        "PATCH",
        _CONTAINER,
        blob_responses.update_container,
        "storage.containers.update",
        operation=CONTAINER_WRITE,
    ),
    Route(
        "POST",
        _CONTAINER + "/setLegalHold",
        blob_responses.set_legal_hold,
        "storage.containers.set_legal_hold",
        operation=SET_LEGAL_HOLD,
    ),
    Route(
        "POST",
        _CONTAINER + "/clearLegalHold",
        blob_responses.clear_legal_hold,
        "storage.containers.clear_legal_hold",
        operation=CLEAR_LEGAL_HOLD,
    ),
    Route(
        "PUT",
        _CONTAINER + "/immutabilityPolicies/default",
        blob_responses.put_immutability_policy,
        "storage.containers.create_or_update_immutability_policy",
        operation=IMMUTABILITY_POLICY_WRITE,
    ),
    Route(
        "POST",
        _CONTAINER + "/immutabilityPolicies/default/lock",
        blob_responses.lock_immutability_policy,
        "storage.containers.lock_immutability_policy",
        operation=IMMUTABILITY_POLICY_LOCK,
    ),
]

# The blob service data plane, under the accounts' ``primaryEndpoints.blob``
# (``{base}/_data/{account}/blob/``).
_DATA_CONTAINER = "/_data/{accountName}/blob/{containerName}"
_CONTAINER_ACL = (("restype", "container"), ("comp", "acl"))

DATA_ROUTES = [
    Route(
        "GET",
        _DATA_CONTAINER,
        blob_data.get_container_acl,
        "storage.blob.get_container_acl",
        operation=CONTAINER_GET_ACL,
        query=_CONTAINER_ACL,
    ),
    Route(
        "PUT",
        _DATA_CONTAINER,
        blob_data.set_container_acl,
        "storage.blob.set_container_acl",
        operation=CONTAINER_SET_ACL,
        query=_CONTAINER_ACL,
    ),
]

BLOB_DATA_PLANE = DataPlane(blob_data.DATA_PREFIX, DATA_ROUTES, blob_data.admit)
