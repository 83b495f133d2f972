"""Routing and the request pipeline shared by both mounts.

A :class:`Route` ties an ARM path template (``/subscriptions/{subscriptionId}/…``) and a method to a handler.
Literal segments match case-insensitively, as ARM matches ``resourceGroups`` or ``Microsoft.Storage``.
Whether a call changes state is a property of the route (``listKeys`` is a POST that only reads).

Pipeline for Azure paths: bearer token → ``api-version`` present → route → latency / injected error →
handler (under the tenant lock) → journal. Admin paths (``/_sim/…``) need the token, skip the rest and are
not journaled.
"""

from __future__ import annotations

import hmac
import logging
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from irflow.sim import errors
from irflow.sim.http import SimRequest, SimResponse

if TYPE_CHECKING:
    from irflow.sim.models import Tenant

log = logging.getLogger("irflow.sim")

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ADMIN_PREFIX = "/_sim/"

Handler = Callable[["Tenant", SimRequest], SimResponse]

_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Handler
    name: str
    read_only: bool | None = None  # None: decided by the method (GET/HEAD read, the others write)

    @property
    def is_write(self) -> bool:
        if self.read_only is not None:
            return not self.read_only
        return self.method in WRITE_METHODS

    def compile(self) -> re.Pattern[str]:
        pattern, position = "", 0
        for match in _PARAM.finditer(self.template):
            pattern += re.escape(self.template[position : match.start()]) + f"(?P<{match.group(1)}>[^/]+)"
            position = match.end()
        pattern += re.escape(self.template[position:])
        return re.compile(f"^{pattern}/?$", re.IGNORECASE)


class Router:
    def __init__(self, routes: Sequence[Route], admin_routes: Sequence[Route] = ()) -> None:
        self._routes = [(route, route.compile()) for route in routes]
        self._admin = [(route, route.compile()) for route in admin_routes]

    @staticmethod
    def _match(table: list[tuple[Route, re.Pattern[str]]], request: SimRequest) -> Route | None:
        for route, pattern in table:
            if route.method != request.method:
                continue
            found = pattern.match(request.path)
            if found:
                request.params = dict(found.groupdict())
                return route
        return None

    def dispatch(self, tenant: Tenant, request: SimRequest) -> SimResponse:
        if request.path.startswith(ADMIN_PREFIX):
            return self._dispatch_admin(tenant, request)
        route = self._match(self._routes, request)
        response = self._answer(tenant, request, route)
        response.headers.setdefault("x-ms-request-id", str(uuid.uuid4()))
        response.headers.setdefault(
            "x-ms-correlation-request-id",
            request.headers.get("x-ms-correlation-request-id") or response.headers["x-ms-request-id"],
        )
        tenant.journal.record(
            method=request.method,
            path=request.path,
            query=request.query,
            body=_journal_body(request),
            status=response.status,
            is_write=route.is_write if route else request.method in WRITE_METHODS,
            route=route.name if route else None,
            response=response.body,
        )
        log.debug("%s %s -> %s", request.method, request.path, response.status)
        return response

    def _answer(self, tenant: Tenant, request: SimRequest, route: Route | None) -> SimResponse:
        try:
            _authenticate(tenant, request)
            if not request.query_param("api-version"):
                raise errors.missing_api_version()
            if route is None:
                raise errors.route_not_found(request.method, request.path)
            faults = tenant.faults
            if faults.latency_ms:
                tenant.sleep(faults.latency_ms / 1000.0)
            if faults.error_rate and tenant.random.random() < faults.error_rate:
                raise errors.internal_server_error()
            with tenant.lock:
                return route.handler(tenant, request)
        except errors.ArmError as exc:
            return error_response(exc)
        except Exception:
            log.exception("irflow.sim handler failed for %s %s", request.method, request.path)
            return error_response(
                errors.ArmError(
                    500, "InternalServerError", "The simulated tenant failed to handle the request."
                )
            )

    def _dispatch_admin(self, tenant: Tenant, request: SimRequest) -> SimResponse:
        route = self._match(self._admin, request)
        try:
            _authenticate(tenant, request)
            if route is None:
                raise errors.route_not_found(request.method, request.path)
            return route.handler(tenant, request)
        except errors.ArmError as exc:
            return error_response(exc)


def error_response(error: errors.ArmError) -> SimResponse:
    return SimResponse(error.status, error.body(), dict(error.headers))


def _authenticate(tenant: Tenant, request: SimRequest) -> None:
    header = request.headers.get("Authorization")
    if not header:
        raise errors.ArmError(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
            {
                "WWW-Authenticate": _challenge(
                    request, "The authentication failed because of missing 'Authorization' header."
                )
            },
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), tenant.token.encode()):
        raise errors.ArmError(
            401,
            "InvalidAuthenticationToken",
            "The access token is invalid.",
            {"WWW-Authenticate": _challenge(request, "The access token is invalid.")},
        )


def _challenge(request: SimRequest, description: str) -> str:
    return (
        f'Bearer authorization_uri="{request.base_url}/", error="invalid_token", '
        f'error_description="{description}"'
    )


def _journal_body(request: SimRequest) -> Any:
    if not request.body:
        return None
    try:
        return request.json()
    except errors.ArmError:
        return f"<{len(request.body)} bytes, not JSON>"
