"""``GET {scope}/providers/Microsoft.Authorization/permissions``: the caller's effective permissions at a
scope (x-ms-example GetPermissions of specification/authorization/resource-manager/Microsoft.Authorization,
API 2022-04-01: ``{"value": [{"actions", "notActions", "dataActions", "notDataActions"}]}``), modelled from
the tenant's RBAC state (:mod:`irflow.sim.rbac`).

The simulated principal holds every permission except its deny rules, so the answer is one entry: ``*`` with
the deny rules that apply at the scope as ``notActions`` / ``notDataActions``. As in Azure, only what is
assigned at the scope or above counts (a rule on a child resource is not in a resource group's answer):
https://learn.microsoft.com/rest/api/authorization/permissions/list-for-resource-group
Listing them needs ``Microsoft.Authorization/permissions/read`` ("Lists all the permissions the caller has for
a given resource/resource group/subscription", Azure resource provider operations, Microsoft.Authorization).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from irflow.sim.http import SimRequest, SimResponse
from irflow.sim.router import Route

if TYPE_CHECKING:
    from irflow.sim.models import Tenant

_PERMISSIONS = "/providers/Microsoft.Authorization/permissions"
PERMISSIONS_READ = "Microsoft.Authorization/permissions/read"
_SUB = "/subscriptions/{subscriptionId}"
_RG = _SUB + "/resourceGroups/{resourceGroupName}"
_RESOURCE = _RG + "/providers/{namespace}/{resourceType}/{resourceName}"


def is_data_action(permission: str) -> bool:
    """Data-plane operations (blob contents, Key Vault keys and secrets) are DataActions in a role."""
    lowered = permission.lower()
    return "/blobservices/containers/blobs/" in lowered or lowered.startswith(
        ("microsoft.keyvault/vaults/keys/", "microsoft.keyvault/vaults/secrets/")
    )


def _scope(path: str) -> str:
    return path[: -len(_PERMISSIONS)] if path.lower().endswith(_PERMISSIONS.lower()) else path


def list_permissions(tenant: Tenant, request: SimRequest) -> SimResponse:
    scope = "/" + _scope(request.path.rstrip("/")).strip("/")
    p = request.params
    if "resourceGroupName" in p:
        tenant.resource_group(p["subscriptionId"], p["resourceGroupName"])  # 404 for a missing group
    else:
        tenant.subscription(p["subscriptionId"])
    lowered = scope.lower()
    applying = [
        rule
        for rule in tenant.rbac.rules
        if (prefix := "/" + rule.scope.strip().strip("/").lower()) == "/"
        or lowered == prefix
        or lowered.startswith(prefix + "/")
    ]
    not_actions = sorted({r.permission for r in applying if not is_data_action(r.permission)}, key=str.lower)
    not_data = sorted({r.permission for r in applying if is_data_action(r.permission)}, key=str.lower)
    entry = {"actions": ["*"], "notActions": not_actions, "dataActions": ["*"], "notDataActions": not_data}
    return SimResponse(200, {"value": [entry]})


ROUTES = [
    Route(
        "GET",
        template + _PERMISSIONS,
        list_permissions,
        f"authorization.permissions.list.{label}",
        operation=PERMISSIONS_READ,
    )
    for template, label in ((_SUB, "subscription"), (_RG, "resource_group"), (_RESOURCE, "resource"))
]
