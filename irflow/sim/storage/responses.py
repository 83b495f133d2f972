"""Wire handlers for Microsoft.Storage storage accounts: parse the request, call the model, shape the answer.

Shapes follow the x-ms-examples of the storage resource provider (StorageAccountGetProperties,
StorageAccountUpdate, StorageAccountList, StorageAccountListByResourceGroup, StorageAccountListKeys,
StorageAccountRegenerateKey).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from irflow.sim import errors, paging
from irflow.sim.http import SimRequest, SimResponse
from irflow.sim.models import new_account_key
from irflow.sim.storage.models import StorageAccount

if TYPE_CHECKING:
    from irflow.sim.models import Tenant


def _account(tenant: Tenant, request: SimRequest) -> StorageAccount:
    p = request.params
    return tenant.get_storage_account(p["subscriptionId"], p["resourceGroupName"], p["accountName"])


def _list(tenant: Tenant, request: SimRequest, accounts: list[StorageAccount]) -> SimResponse:
    body = paging.page(
        request,
        accounts,
        sort_key=lambda a: [a.resource_group.lower(), a.name.lower()],
        render=lambda a: a.to_arm(request.base_url),
        page_size=tenant.page_size,
    )
    return SimResponse(200, body)


def get_properties(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``GET …/storageAccounts/{accountName}``; ``$expand`` is accepted, its extra blocks not simulated."""
    return SimResponse(200, _account(tenant, request).to_arm(request.base_url))


def update(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``PATCH …/storageAccounts/{accountName}``: synchronous, answers 200 with the whole account."""
    account = _account(tenant, request)
    account.apply_update(request.json_object())
    return SimResponse(200, account.to_arm(request.base_url))


def list_by_resource_group(tenant: Tenant, request: SimRequest) -> SimResponse:
    p = request.params
    return _list(tenant, request, tenant.storage_accounts(p["subscriptionId"], p["resourceGroupName"]))


def list_by_subscription(tenant: Tenant, request: SimRequest) -> SimResponse:
    return _list(tenant, request, tenant.storage_accounts(request.params["subscriptionId"]))


def list_keys(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``POST …/listKeys[?$expand=kerb]``."""
    expand = request.query_param("$expand")
    if expand is not None and expand.lower() != "kerb":
        raise errors.invalid_values("$expand")
    return SimResponse(200, _account(tenant, request).list_keys(expand_kerb=expand is not None))


def regenerate_key(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``POST …/regenerateKey`` ``{"keyName": "key1"}``: new value and creation time; answers the keys."""
    account = _account(tenant, request)
    body = request.json_object()
    key_name = account.canonical_key_name(body.get("keyName"))
    account.regenerate_key(key_name, tenant.issue_secret(new_account_key()), tenant.now())
    return SimResponse(200, account.list_keys(expand_kerb=key_name in StorageAccount.KERB_KEY_NAMES))


def revoke_user_delegation_keys(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``POST …/revokeUserDelegationKeys``: every user-delegation SAS of the account stops working.
    Answers 200 with an empty body (x-ms-example StorageAccountRevokeUserDelegationKeys)."""
    _account(tenant, request).revoke_user_delegation_keys(tenant.now())
    return SimResponse(200)
