"""Wire handlers for ``{scope}/providers/Microsoft.Authorization/roleAssignments`` and ``…/roleDefinitions``
(x-ms-examples of the authorization spec, api-version 2022-04-01: ListRoleAssignmentsForScope,
GetRoleAssignmentByScopeAndName, CreateRoleAssignmentForResource…, DeleteRoleAssignment,
GetRoleDefinitionById, ListRoleDefinitions)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from irflow.sim import errors, paging
from irflow.sim.authorization import roles
from irflow.sim.authorization.models import RoleAssignment
from irflow.sim.http import SimRequest, SimResponse
from irflow.sim.keyvault.models import KEY_VAULT_TYPE

if TYPE_CHECKING:
    from irflow.sim.models import Tenant

_PROVIDER = re.compile(r"/providers/Microsoft\.Authorization/", re.IGNORECASE)


def _scope(tenant: Tenant, request: SimRequest) -> str:
    """The scope part of the path, checked to exist as ARM checks it (subscription, group, key vault)."""
    scope = _PROVIDER.split(request.path, maxsplit=1)[0] or "/"
    parts = [p for p in scope.split("/") if p]
    if len(parts) >= 2:
        tenant.subscription(parts[1])
    if len(parts) >= 4:
        tenant.resource_group(parts[1], parts[3])
    if len(parts) >= 8 and f"{parts[5]}/{parts[6]}".lower() == KEY_VAULT_TYPE.lower():
        tenant.get_key_vault(parts[1], parts[3], parts[7])
    return scope


def _not_found(name: str) -> errors.ArmError:
    return errors.ArmError(404, "RoleAssignmentNotFound", f"The role assignment '{name}' is not found.")


def list_assignments(tenant: Tenant, request: SimRequest) -> SimResponse:
    scope = _scope(tenant, request)
    found = tenant.role_assignments.for_scope(scope, request.query_param("$filter"))
    body = paging.page(
        request,
        found,
        sort_key=lambda a: [a.scope.lower(), a.name],
        render=RoleAssignment.to_arm,
        page_size=tenant.page_size,
    )
    return SimResponse(200, body)


def get_assignment(tenant: Tenant, request: SimRequest) -> SimResponse:
    scope = _scope(tenant, request)
    found = tenant.role_assignments.get(scope, request.params["roleAssignmentName"])
    if found is None:
        raise _not_found(request.params["roleAssignmentName"])
    return SimResponse(200, found.to_arm())


def create_assignment(tenant: Tenant, request: SimRequest) -> SimResponse:
    scope = _scope(tenant, request)
    body = request.json_object()
    assignment, created = tenant.role_assignments.create(
        scope,
        request.params["roleAssignmentName"],
        body.get("properties"),  # type: ignore[arg-type]
        when=tenant.now(),
        created_by=tenant.principal_id,
    )
    return SimResponse(201 if created else 200, assignment.to_arm())


def delete_assignment(tenant: Tenant, request: SimRequest) -> SimResponse:
    scope = _scope(tenant, request)
    removed = tenant.role_assignments.delete(scope, request.params["roleAssignmentName"])
    if removed is None:
        return SimResponse(204, None)
    return SimResponse(200, removed.to_arm())


def get_definition(tenant: Tenant, request: SimRequest) -> SimResponse:
    scope = _scope(tenant, request)
    role = roles.find(request.params["roleDefinitionId"])
    if role is None or role.id != request.params["roleDefinitionId"].lower():
        raise errors.ArmError(
            404,
            "RoleDefinitionDoesNotExist",
            f"The specified role definition with ID '{request.params['roleDefinitionId']}' does not exist.",
        )
    return SimResponse(200, role.to_arm(scope))


def list_definitions(tenant: Tenant, request: SimRequest) -> SimResponse:
    scope = _scope(tenant, request)
    text = (request.query_param("$filter") or "").strip()
    found = list(roles.BUILT_IN_ROLES)
    if text:
        by_name = re.fullmatch(r"(?i)roleName\s+eq\s+'([^']+)'", text)
        by_type = re.fullmatch(r"(?i)type\s+eq\s+'(BuiltInRole|CustomRole)'", text)
        if by_name:
            found = [r for r in found if r.name.lower() == by_name.group(1).lower()]
        elif by_type:
            found = found if by_type.group(1).lower() == "builtinrole" else []
        else:
            raise errors.ArmError(400, "InvalidFilter", f"The filter '{text}' is not supported.")
    return SimResponse(200, {"value": [r.to_arm(scope) for r in found]})
