"""Wire handlers for the blob service and containers of Microsoft.Storage (management plane).

Shapes follow the x-ms-examples BlobServicesGet, BlobServicesPut, BlobContainersList, BlobContainersGet,
BlobContainersPatch, BlobContainersSetLegalHold, BlobContainersClearLegalHold and
BlobContainersPutImmutabilityPolicy(AllowProtectedAppendWritesAll).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from irflow.sim import errors, paging
from irflow.sim.http import SimRequest, SimResponse
from irflow.sim.storage.blob import BlobContainer
from irflow.sim.storage.models import StorageAccount, sku_tier

if TYPE_CHECKING:
    from irflow.sim.models import Tenant

_STARTSWITH = re.compile(r"^\s*startswith\(\s*name\s*,\s*'([^']*)'\s*\)\s*$", re.IGNORECASE)


def _account(tenant: Tenant, request: SimRequest) -> StorageAccount:
    p = request.params
    return tenant.get_storage_account(p["subscriptionId"], p["resourceGroupName"], p["accountName"])


def _container(tenant: Tenant, request: SimRequest) -> tuple[StorageAccount, BlobContainer]:
    account = _account(tenant, request)
    return account, account.blob_service.container(request.params["containerName"])


def get_service_properties(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``GET …/blobServices/default``."""
    account = _account(tenant, request)
    sku = {"name": account.sku_name, "tier": sku_tier(account.sku_name)}
    return SimResponse(200, account.blob_service.to_arm(sku))


def set_service_properties(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``PUT …/blobServices/default``: answers 200 with the whole resource."""
    account = _account(tenant, request)
    body = request.json_object()
    versioning = (body.get("properties") or {}).get("isVersioningEnabled") if isinstance(body, dict) else None
    if versioning is True and account.properties.get("isHnsEnabled") is True:
        # "Storage accounts with a hierarchical namespace enabled for use with Azure Data Lake Storage are not
        # currently supported" (https://learn.microsoft.com/en-us/azure/storage/blobs/versioning-overview).
        # The exact error code Azure answers is not documented: a 400 refusal, nothing changed.
        raise errors.ArmError(
            400,
            "FeatureNotSupportedForAccount",
            "Blob versioning is not supported for accounts with hierarchical namespace enabled.",
        )
    account.blob_service.set_properties(body)
    sku = {"name": account.sku_name, "tier": sku_tier(account.sku_name)}
    return SimResponse(200, account.blob_service.to_arm(sku))


def list_containers(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``GET …/blobServices/default/containers[?$maxpagesize=&$filter=startswith(name, 'x')]``."""
    account = _account(tenant, request)
    containers = account.blob_service.list_containers()
    name_filter = request.query_param("$filter")
    if name_filter:
        found = _STARTSWITH.match(name_filter)
        prefix = found.group(1) if found else name_filter
        containers = [c for c in containers if c.name.startswith(prefix)]
    page_size = tenant.page_size
    max_page = request.query_param("$maxpagesize")
    if max_page:
        if not max_page.isdigit() or int(max_page) < 1:
            raise errors.invalid_values("$maxpagesize")
        page_size = min(page_size, int(max_page))
    body = paging.page(
        request, containers, sort_key=lambda c: [c.name], render=BlobContainer.list_item, page_size=page_size
    )
    return SimResponse(200, body)


def get_container(tenant: Tenant, request: SimRequest) -> SimResponse:
    _, container = _container(tenant, request)
    return SimResponse(200, container.to_arm(), {"ETag": container.etag})


def update_container(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``PATCH …/containers/{c}`` ``{"properties": {"publicAccess": "None"}}``. Anonymous access on an
    account whose ``allowBlobPublicAccess`` is false is refused with 409 ``PublicAccessNotPermitted``."""
    account, container = _container(tenant, request)
    container.apply_update(
        request.json_object(), public_access_allowed=account.allows_blob_public_access, when=tenant.now()
    )
    return SimResponse(200, container.patch_answer())


def set_legal_hold(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``POST …/containers/{c}/setLegalHold`` ``{"tags": [...]}``: adds tags; answers the LegalHold."""
    _, container = _container(tenant, request)
    container.set_legal_hold(
        request.json_object(), when=tenant.now(), principal=tenant.principal_id, tenant_id=tenant.tenant_id
    )
    return SimResponse(200, container.legal_hold_answer())


def clear_legal_hold(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``POST …/containers/{c}/clearLegalHold`` ``{"tags": [...]}``: removes those tags."""
    _, container = _container(tenant, request)
    container.clear_legal_hold(request.json_object(), when=tenant.now())
    return SimResponse(200, container.legal_hold_answer())


def put_immutability_policy(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``PUT …/containers/{c}/immutabilityPolicies/default``: creates or updates the unlocked time-based
    retention policy; honours ``If-Match``; answers the policy with its ETag (body and header)."""
    _, container = _container(tenant, request)
    body = request.json()
    if body is not None and not isinstance(body, dict):
        raise errors.invalid_request_content("the request body must be a JSON object")
    container.put_immutability_policy(
        body,
        if_match=request.headers.get("If-Match"),
        when=tenant.now(),
        principal=tenant.principal_id,
        tenant_id=tenant.tenant_id,
    )
    answer = container.policy_answer()
    return SimResponse(200, answer, {"ETag": answer["etag"]})


def lock_immutability_policy(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``POST …/containers/{c}/immutabilityPolicies/default/lock`` with ``If-Match``: the policy becomes
    Locked (irreversible); answers the policy with its new ETag
    (x-ms-examples BlobContainersLockImmutabilityPolicy.json)."""
    _, container = _container(tenant, request)
    container.lock_immutability_policy(
        if_match=request.headers.get("If-Match"),
        when=tenant.now(),
        principal=tenant.principal_id,
        tenant_id=tenant.tenant_id,
    )
    answer = container.policy_answer()
    return SimResponse(200, answer, {"ETag": answer["etag"]})
