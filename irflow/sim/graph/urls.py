"""Routes of the Microsoft Graph v1.0 subset (a data plane of the simulator, under ``/v1.0/``)."""

from __future__ import annotations

from irflow.sim.graph import responses
from irflow.sim.router import DataPlane, Route

_USER = "/v1.0/users/{userId}"
_SP = "/v1.0/servicePrincipals/{servicePrincipalId}"

ROUTES = [
    Route("GET", _USER, responses.get_user, "graph.users.get", operation=responses.USER_READ),
    Route("PATCH", _USER, responses.update_user, "graph.users.update", operation=responses.USER_DISABLE),
    Route(
        "POST",
        _USER + "/revokeSignInSessions",
        responses.revoke_sign_in_sessions,
        "graph.users.revoke_sign_in_sessions",
        operation=responses.USER_REVOKE_SESSIONS,
    ),
    Route(
        "GET",
        _SP,
        responses.get_service_principal,
        "graph.service_principals.get",
        operation=responses.SP_READ,
    ),
    Route(
        "PATCH",
        _SP,
        responses.update_service_principal,
        "graph.service_principals.update",
        operation=responses.SP_DISABLE,
    ),
]

GRAPH_DATA_PLANE = DataPlane(responses.PREFIX, ROUTES, responses.admit)
