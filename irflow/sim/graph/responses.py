"""Microsoft Graph v1.0, the calls containment makes: read a user or service principal, revoke a user's
sign-in sessions (``POST /v1.0/users/{id}/revokeSignInSessions`` → 200 ``{"value": true}``), disable a user
or service principal (``PATCH … {"accountEnabled": false}`` → 204).

Served by the simulator under ``/v1.0/`` (point an azure-core ``PipelineClient`` with a
``BearerTokenCredentialPolicy`` for ``https://graph.microsoft.com/.default`` at the simulator's base URL).
Pipeline (:func:`admit`): bearer token → route → RBAC (Microsoft Entra permission names such as
``microsoft.directory/users/invalidateAllRefreshTokens``, over ``/users/{id}`` or
``/servicePrincipals/{id}``) → latency / injected error. Errors use Graph's body:
``{"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}``.
"""

from __future__ import annotations

import hmac
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from irflow.sim import errors
from irflow.sim.http import SimRequest, SimResponse

if TYPE_CHECKING:
    from irflow.sim.models import Tenant
    from irflow.sim.router import Route

PREFIX = "/v1.0/"
USER_READ = "microsoft.directory/users/standard/read"
USER_DISABLE = "microsoft.directory/users/disable"
USER_REVOKE_SESSIONS = "microsoft.directory/users/invalidateAllRefreshTokens"
SP_READ = "microsoft.directory/servicePrincipals/standard/read"
SP_DISABLE = "microsoft.directory/servicePrincipals/disable"
SP_ENABLE = "microsoft.directory/servicePrincipals/enable"
_WRITABLE = {"accountEnabled"}


class GraphError(errors.ArmError):
    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                    "request-id": str(uuid.uuid4()),
                    "client-request-id": str(uuid.uuid4()),
                },
            }
        }


def _scope(request: SimRequest) -> str:
    return "/" + request.path.removeprefix(PREFIX).strip("/").removesuffix("/revokeSignInSessions")


def admit(tenant: Tenant, request: SimRequest, route: Route | None) -> None:
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
    if not hmac.compare_digest(token.strip().encode(), tenant.token.encode()):
        raise GraphError(
            401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."
        )
    if route is None:
        raise GraphError(
            400, "BadRequest", f"Resource not found for the segment '{request.path.rsplit('/', 1)[-1]}'."
        )
    operation = _operation(route, request)
    if operation and tenant.rbac.denial(operation, _scope(request)):
        raise GraphError(
            403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
        )
    faults = tenant.faults
    if faults.latency_ms:
        tenant.sleep(faults.latency_ms / 1000.0)
    if faults.error_rate and tenant.random.random() < faults.error_rate:
        raise GraphError(503, "serviceNotAvailable", "Injected by the irflow.sim error rate.")


def _operation(route: Route, request: SimRequest) -> str | None:
    """The directory permission a call needs: turning a service principal back on is `enable`."""
    if route.operation == SP_DISABLE:
        try:
            if request.json_object().get("accountEnabled") is True:
                return SP_ENABLE
        except Exception:  # a malformed body is refused by the handler with Graph's own error
            return route.operation
    return route.operation


def _not_found(identifier: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{identifier}' does not exist or one of its queried reference-property objects "
        "are not present.",
    )


def _patch_body(request: SimRequest) -> dict[str, Any]:
    try:
        body = request.json_object()
    except errors.ArmError as exc:
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from exc
    unknown = sorted(set(body) - _WRITABLE)
    if unknown:
        raise GraphError(
            400,
            "Request_BadRequest",
            f"Invalid property '{unknown[0]}': the simulator only updates accountEnabled.",
        )
    if "accountEnabled" in body and not isinstance(body["accountEnabled"], bool):
        raise GraphError(400, "Request_BadRequest", "Invalid value specified for property 'accountEnabled'.")
    return body


def get_user(tenant: Tenant, request: SimRequest) -> SimResponse:
    user = tenant.directory.find_user(request.params["userId"])
    if user is None:
        raise _not_found(request.params["userId"])
    return SimResponse(200, user.to_graph())


def update_user(tenant: Tenant, request: SimRequest) -> SimResponse:
    user = tenant.directory.find_user(request.params["userId"])
    if user is None:
        raise _not_found(request.params["userId"])
    body = _patch_body(request)
    if "accountEnabled" in body:
        user.account_enabled = body["accountEnabled"]
    return SimResponse(204)


def revoke_sign_in_sessions(tenant: Tenant, request: SimRequest) -> SimResponse:
    user = tenant.directory.find_user(request.params["userId"])
    if user is None:
        raise _not_found(request.params["userId"])
    when = tenant.now()
    user.sign_in_sessions_valid_from = when
    user.revocations.append(when)
    return SimResponse(
        200, {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean", "value": True}
    )


def get_service_principal(tenant: Tenant, request: SimRequest) -> SimResponse:
    principal = tenant.directory.find_service_principal(request.params["servicePrincipalId"])
    if principal is None:
        raise _not_found(request.params["servicePrincipalId"])
    return SimResponse(200, principal.to_graph())


def update_service_principal(tenant: Tenant, request: SimRequest) -> SimResponse:
    principal = tenant.directory.find_service_principal(request.params["servicePrincipalId"])
    if principal is None:
        raise _not_found(request.params["servicePrincipalId"])
    body = _patch_body(request)
    if "accountEnabled" in body:
        principal.account_enabled = body["accountEnabled"]
    return SimResponse(204)
