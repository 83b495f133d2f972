"""Route table of Microsoft.Authorization role assignments and role definitions, at every scope level the
simulator models: subscription, resource group, resource, and a resource's child (``…/vaults/v/keys/k``)."""

from __future__ import annotations

from irflow.sim.authorization import responses
from irflow.sim.router import Route

ASSIGNMENTS_READ = "Microsoft.Authorization/roleAssignments/read"
ASSIGNMENTS_WRITE = "Microsoft.Authorization/roleAssignments/write"
ASSIGNMENTS_DELETE = "Microsoft.Authorization/roleAssignments/delete"
DEFINITIONS_READ = "Microsoft.Authorization/roleDefinitions/read"

_SCOPES = (
    "/subscriptions/{subscriptionId}",
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}",
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/{namespace}/{type}/{name}",
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/{namespace}/{type}/{name}"
    "/{childType}/{childName}",
)
_ASSIGNMENTS = "/providers/Microsoft.Authorization/roleAssignments"
_DEFINITIONS = "/providers/Microsoft.Authorization/roleDefinitions"


def _routes() -> list[Route]:
    routes = [
        Route(
            "GET",
            _DEFINITIONS + "/{roleDefinitionId}",
            responses.get_definition,
            "authorization.roleDefinitions.get",
            operation=DEFINITIONS_READ,
        ),
    ]
    for scope in _SCOPES:
        one = scope + _ASSIGNMENTS + "/{roleAssignmentName}"
        routes += [
            Route(
                "GET",
                scope + _ASSIGNMENTS,
                responses.list_assignments,
                "authorization.roleAssignments.list",
                operation=ASSIGNMENTS_READ,
            ),
            Route(
                "GET",
                one,
                responses.get_assignment,
                "authorization.roleAssignments.get",
                operation=ASSIGNMENTS_READ,
            ),
            Route(
                "PUT",
                one,
                responses.create_assignment,
                "authorization.roleAssignments.create",
                operation=ASSIGNMENTS_WRITE,
            ),
            Route(
                "DELETE",
                one,
                responses.delete_assignment,
                "authorization.roleAssignments.delete",
                operation=ASSIGNMENTS_DELETE,
            ),
            Route(
                "GET",
                scope + _DEFINITIONS,
                responses.list_definitions,
                "authorization.roleDefinitions.list",
                operation=DEFINITIONS_READ,
            ),
            Route(
                "GET",
                scope + _DEFINITIONS + "/{roleDefinitionId}",
                responses.get_definition,
                "authorization.roleDefinitions.get",
                operation=DEFINITIONS_READ,
            ),
        ]
    return routes


ROUTES = _routes()
