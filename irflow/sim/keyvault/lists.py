"""Key vaults listed by subscription and by resource group (x-ms-examples listVaultBySubscription /
listVaultByResourceGroup of azure-rest-api-specs, specification/keyvault/resource-manager/Microsoft.KeyVault):
``{"value": [...], "nextLink"}`` pages; ``$top`` bounds a page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from irflow.sim import errors, paging
from irflow.sim.http import SimRequest, SimResponse
from irflow.sim.router import Route

if TYPE_CHECKING:
    from irflow.sim.models import Tenant

VAULT_READ = "Microsoft.KeyVault/vaults/read"
_SUB = "/subscriptions/{subscriptionId}"


def _page_size(tenant: Tenant, request: SimRequest) -> int:
    top = request.query_param("$top")
    if top is None:
        return tenant.page_size
    if not top.isdigit() or not 1 <= int(top) <= 1000:
        raise errors.invalid_values("$top")
    return min(int(top), tenant.page_size)


def list_vaults(tenant: Tenant, request: SimRequest) -> SimResponse:
    p = request.params
    with tenant.lock:
        if "resourceGroupName" in p:
            groups = [tenant.resource_group(p["subscriptionId"], p["resourceGroupName"])]
        else:
            groups = list(tenant.subscription(p["subscriptionId"]).resource_groups.values())
        vaults = sorted(
            (v for g in groups for v in g.key_vaults.values()),
            key=lambda v: (v.resource_group.lower(), v.name.lower()),
        )
    body = paging.page(
        request,
        vaults,
        sort_key=lambda v: [v.resource_group.lower(), v.name.lower()],
        render=lambda v: v.to_arm(request.base_url),
        page_size=_page_size(tenant, request),
    )
    return SimResponse(200, body)


ROUTES = [
    Route(
        "GET",
        _SUB + "/providers/Microsoft.KeyVault/vaults",
        list_vaults,
        "keyvault.vaults.list_by_subscription",
        operation=VAULT_READ,
    ),
    Route(
        "GET",
        _SUB + "/resourceGroups/{resourceGroupName}/providers/Microsoft.KeyVault/vaults",
        list_vaults,
        "keyvault.vaults.list_by_resource_group",
        operation=VAULT_READ,
    ),
]
