"""Typed dependencies of the routes: the services, the caller, and the role each route needs.

A bearer token starting with ``irf_`` is an irflow API token; any other is validated as a Microsoft Entra
ID token when ``IRFLOW_ENTRA_TENANT_ID`` and ``IRFLOW_ENTRA_AUDIENCE`` are set, and refused otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from irflow.api.entra import EntraTokenError, EntraValidator
from irflow.api.errors import ApiError
from irflow.api.throttle import RefusalLimiter
from irflow.engine.runtime import Services
from irflow.engine.services.principals import Principal, Role
from irflow.engine.services.tokens import PREFIX, TokenRefused, authenticate
from irflow.logs import get_logger

log = get_logger(__name__)


@dataclass
class ApiContext:
    """What the app was built over: the engine's services, the Entra validator, whether a worker runs here."""

    services: Services
    entra: EntraValidator | None
    worker: bool
    refusals: RefusalLimiter


def context(request: Request) -> ApiContext:
    return request.app.state.irflow


Context = Annotated[ApiContext, Depends(context)]

_bearer = HTTPBearer(auto_error=False, description="An irflow API token or a Microsoft Entra ID token.")


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def throttled(refusals: RefusalLimiter, ip: str) -> ApiError | None:
    """429 for an address whose refused requests used up its bucket (see irflow/api/throttle.py)."""
    wait = refusals.retry_after(ip)
    if wait is None:
        return None
    return ApiError(
        429,
        "too_many_refusals",
        f"too many refused requests from this address: retry in {wait} s",
        headers={"Retry-After": str(wait)},
    )


def principal(
    ctx: Context,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    ip = client_ip(request)
    if (refusal := throttled(ctx.refusals, ip)) is not None:
        raise refusal

    def _unauthorized(message: str) -> ApiError:
        ctx.refusals.refused(ip)
        return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="irflow"'})

    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise _unauthorized("a bearer token is required")
    token = credentials.credentials
    if token.startswith(PREFIX):
        try:
            caller = authenticate(ctx.services.db, token)
        except TokenRefused as exc:
            raise _unauthorized(str(exc)) from None
    elif ctx.entra is None:
        raise _unauthorized("not an irflow API token, and Entra ID tokens are not configured")
    else:
        try:
            caller = ctx.entra.validate(token).principal()
        except EntraTokenError as exc:
            if exc.unavailable:
                raise ApiError(503, "identity_provider_unavailable", exc.message) from None
            raise _unauthorized(exc.message) from None
    request.state.actor = caller.actor
    return caller


def require(role: Role) -> Callable[[Principal], Principal]:
    def check(caller: Annotated[Principal, Depends(principal)]) -> Principal:
        if not caller.may(role):
            held = ", ".join(sorted(caller.roles)) or "no irflow role"
            raise ApiError(403, "forbidden", f"this needs the {role} role; the caller has {held}")
        return caller

    check.__name__ = f"require_{role}"
    return check


Viewer = Annotated[Principal, Depends(require("viewer"))]
Responder = Annotated[Principal, Depends(require("responder"))]
Approver = Annotated[Principal, Depends(require("approver"))]
Compliance = Annotated[Principal, Depends(require("compliance"))]
Admin = Annotated[Principal, Depends(require("admin"))]
