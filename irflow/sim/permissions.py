"""``GET {scope}/providers/Microsoft.Authorization/permissions``: the caller's effective permissions at a
scope (x-ms-example GetPermissions of specification/authorization/resource-manager/Microsoft.Authorization,
API 2022-04-01: ``{"value": [{"actions", "notActions", "dataActions", "notDataActions"}]}``), modelled from
the tenant's RBAC state: its role assignments and role definitions, and its deny rules.

Azure answers with one permission entry per role the caller holds at the scope or above, each the role
definition's ``actions`` / ``notActions`` / ``dataActions`` / ``notDataActions``; the caller's effective
permissions are their union (Azure RBAC is additive: "Permissions - List For Resource Group", "Gets all
permissions the caller has for a resource group",
https://learn.microsoft.com/rest/api/authorization/permissions/list-for-resource-group and
https://learn.microsoft.com/rest/api/authorization/permissions/list-for-resource; "Understand Azure role
definitions", https://learn.microsoft.com/azure/role-based-access-control/role-definitions). Only what is
assigned at the scope or above counts: an assignment (or a deny rule) on a child resource is not in a
resource group's answer. Here:

- The simulated principal's standing grant, what the simulator lets it do without an assignment: every
  management action (ARM calls are not checked against role assignments, :mod:`irflow.sim.rbac`) and the blob
  data actions (the blob data plane checks deny rules only). One entry.
- One entry per role assignment of the principal at the scope or above, from its role definition: the Key
  Vault data actions come only from there, as on an RBAC vault (:mod:`irflow.sim.keyvault.authorization`).
  Access policies are not RBAC and never appear, as in Azure. An assignment with an ABAC condition carries
  it (``condition``, ``conditionVersion``, as the API's Permission model does).
- Deny rules model a permission the identity lacks whatever grants it (they win over any assignment), so
  each one applying at the scope is in every entry's ``notActions`` / ``notDataActions``.

Listing them needs ``Microsoft.Authorization/permissions/read`` ("Lists all the permissions the caller has for
a given resource/resource group/subscription", Azure resource provider operations, Microsoft.Authorization).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from irflow.sim.http import SimRequest, SimResponse
from irflow.sim.rbac import scope_covers
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


# What the simulator grants its principal without a role assignment (see the module docstring).
STANDING_ACTIONS = ("*",)
STANDING_DATA_ACTIONS = ("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*",)


def list_permissions(tenant: Tenant, request: SimRequest) -> SimResponse:
    scope = "/" + _scope(request.path.rstrip("/")).strip("/")
    p = request.params
    if "resourceGroupName" in p:
        tenant.resource_group(p["subscriptionId"], p["resourceGroupName"])  # 404 for a missing group
    else:
        tenant.subscription(p["subscriptionId"])
    applying = [rule for rule in tenant.rbac.rules if scope_covers(rule.scope, scope)]
    denied = sorted({r.permission for r in applying if not is_data_action(r.permission)}, key=str.lower)
    denied_data = sorted({r.permission for r in applying if is_data_action(r.permission)}, key=str.lower)

    def entry(
        actions: Iterable[str], not_actions: Iterable[str], data: Iterable[str], not_data: Iterable[str]
    ) -> dict[str, Any]:
        return {
            "actions": list(actions),
            "notActions": list(dict.fromkeys([*not_actions, *denied])),
            "dataActions": list(data),
            "notDataActions": list(dict.fromkeys([*not_data, *denied_data])),
        }

    entries = [entry(STANDING_ACTIONS, (), STANDING_DATA_ACTIONS, ())]
    for assignment in tenant.role_assignments.effective_for(tenant.principal_id, scope):
        role = assignment.role
        granted = entry(role.actions, role.not_actions, role.data_actions, role.not_data_actions)
        if assignment.condition is not None:
            granted["condition"] = assignment.condition
            granted["conditionVersion"] = assignment.condition_version
        entries.append(granted)
    return SimResponse(200, {"value": entries})


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
