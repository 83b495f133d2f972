"""Routing and the request pipeline shared by both mounts.

A :class:`Route` ties an ARM path template (``/subscriptions/{subscriptionId}/…``) and a method to a handler.
Literal segments match case-insensitively, as ARM matches ``resourceGroups`` or ``Microsoft.Storage``.
Whether a call changes state is a property of the route (``listKeys`` is a POST that only reads).

Pipeline for Azure paths: bearer token → ``api-version`` present → ARM throttling (token buckets, see
:mod:`irflow.sim.throttle`) → route → ``api-version`` served for the resource type
(:mod:`irflow.sim.api_versions`) → RBAC (the route's operation against the tenant's deny rules, see
:mod:`irflow.sim.rbac`; 403 ``AuthorizationFailed``) → latency / injected error → handler and journal
(together under the tenant lock, so journal order is the order state changed). Admin paths (``/_sim/…``)
need the token, skip the rest and are not journaled. Data planes (:class:`DataPlane`, the blob service
under ``/_data/``) run their own admission instead of ARM's, then the same handler-and-journal step.
A successful ARM write also appends its ``AzureActivity`` row to the workspaces, in the same locked step
(:mod:`irflow.sim.loganalytics.activity`).
"""

from __future__ import annotations

import hmac
import logging
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from irflow.sim import api_versions, errors
from irflow.sim.http import SimRequest, SimResponse
from irflow.sim.loganalytics import activity

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
    operation: str | None = None  # the Azure RBAC operation it needs (see irflow.sim.rbac)
    query: tuple[tuple[str, str], ...] = ()  # query parameters it requires (``restype=container&comp=acl``)

    def matches_query(self, request: SimRequest) -> bool:
        return all((request.query_param(k) or "").lower() == v.lower() for k, v in self.query)

    @property
    def is_write(self) -> bool:
        if self.read_only is not None:
            return not self.read_only
        return self.method in WRITE_METHODS

    def scope(self, path: str) -> str:
        """The resource id a call is authorised over: the path, less the action segment of a POST action
        (``…/storageAccounts/a/listKeys`` → ``…/storageAccounts/a``)."""
        path = path.rstrip("/") or "/"
        if self.method == "POST":
            path = path.rsplit("/", 1)[0] or "/"
        return path

    def compile(self) -> re.Pattern[str]:
        pattern, position = "", 0
        for match in _PARAM.finditer(self.template):
            pattern += re.escape(self.template[position : match.start()]) + f"(?P<{match.group(1)}>[^/]+)"
            position = match.end()
        pattern += re.escape(self.template[position:])
        return re.compile(f"^{pattern}/?$", re.IGNORECASE)


@dataclass(frozen=True)
class DataPlane:
    """A non-ARM service the simulator serves under ``prefix`` (the blob service under ``/_data/``).

    ``admit(tenant, request, route)`` runs before the handler, outside the tenant lock, and raises the
    service's own errors (an :class:`errors.ArmError` subclass that renders its wire format) to refuse."""

    prefix: str
    routes: Sequence[Route]
    admit: Callable[[Tenant, SimRequest, Route | None], None]
    pattern: str | None = None  # a regex the path must also match, when planes share a prefix

    def claims(self, path: str) -> bool:
        return path.startswith(self.prefix) and (
            self.pattern is None or re.match(self.pattern, path, re.IGNORECASE) is not None
        )


class Router:
    def __init__(
        self,
        routes: Sequence[Route],
        admin_routes: Sequence[Route] = (),
        data_planes: Sequence[DataPlane] = (),
    ) -> None:
        self._routes = [(route, route.compile()) for route in routes]
        self._admin = [(route, route.compile()) for route in admin_routes]
        self._data = [(plane, [(route, route.compile()) for route in plane.routes]) for plane in data_planes]

    @staticmethod
    def _match(table: list[tuple[Route, re.Pattern[str]]], request: SimRequest) -> Route | None:
        for route, pattern in table:
            if route.method != request.method or not route.matches_query(request):
                continue
            found = pattern.match(request.path)
            if found:
                request.params = dict(found.groupdict())
                return route
        return None

    def dispatch(self, tenant: Tenant, request: SimRequest) -> SimResponse:
        if request.path.startswith(ADMIN_PREFIX):
            return self._dispatch_admin(tenant, request)
        quota_headers: dict[str, str] = {}
        is_arm = False
        for plane, table in self._data:
            if plane.claims(request.path):
                route = self._match(table, request)
                try:
                    plane.admit(tenant, request, route)
                    refusal = None
                except errors.ArmError as exc:
                    refusal = exc.response()
                break
        else:
            is_arm = True
            route = self._match(self._routes, request)
            refusal, quota_headers = self._admit(tenant, request, route)
        # The handler and the journal entry run under the tenant lock together, so journal order is the
        # order in which the model changed (a drill can replay it) and seq numbers have no gaps.
        with tenant.lock:
            response = refusal if refusal is not None else self._handle(tenant, request, route)
            response.headers.update(quota_headers)
            response.headers.setdefault("x-ms-request-id", str(uuid.uuid4()))
            response.headers.setdefault(
                "x-ms-correlation-request-id",
                request.headers.get("x-ms-correlation-request-id") or response.headers["x-ms-request-id"],
            )
            entry = tenant.journal.record(
                method=request.method,
                path=request.path,
                query=request.query,
                body=_journal_body(request),
                status=response.status,
                is_write=route.is_write if route else request.method in WRITE_METHODS,
                route=route.name if route else None,
                response=response.body,
            )
            if is_arm and route is not None and route.is_write and 200 <= response.status < 300:
                _record_activity(tenant, request, route, response, entry.time)
        if entry.mutation:
            tenant.write_hook.after_mutation(entry)  # a crash test may hold this answer (irflow.sim.hooks)
        log.debug("%s %s -> %s", request.method, request.path, response.status)
        return response

    def _admit(
        self, tenant: Tenant, request: SimRequest, route: Route | None
    ) -> tuple[SimResponse | None, dict[str, str]]:
        """Everything before the handler, outside the tenant lock (the latency knob sleeps here):
        token → api-version → ARM throttling (token buckets, then 429 bursts) → route → RBAC → latency →
        injected error. Returns the refusal, if any, and the remaining-quota headers every answer past
        authentication carries."""
        quota: dict[str, str] = {}
        try:
            _authenticate(tenant, request)
            if not request.query_param("api-version"):
                raise errors.missing_api_version()
            subscription_id = _subscription_of(request.path)
            faults = tenant.faults
            if subscription_id is not None:
                decision = tenant.throttler.take(
                    subscription_id,
                    tenant.throttler.principal_key(tenant.token),
                    request.method,
                    faults.throttle_limits,
                    enforce=faults.throttle,
                )
                quota = decision.headers
                if not decision.allowed:
                    quota.pop("Retry-After", None)
                    raise errors.subscription_requests_throttled(
                        decision.kind,
                        subscription_id,
                        faults.throttle_limits.for_kind(decision.kind).burst,
                        decision.retry_after,
                    )
                burst = tenant.throttler.burst_left(subscription_id)
                if not burst and faults.draw_burst(tenant.random):
                    burst = tenant.throttler.open_burst(subscription_id, faults.burst_retry_after)
                if burst:
                    raise errors.too_many_requests(burst)
            if route is None:
                raise errors.route_not_found(request.method, request.path)
            api_versions.check(
                request.path,
                request.query_param("api-version"),
                location=_location_of(tenant, request.path),
                locations=tenant.locations(),
            )
            if route.operation and tenant.rbac.denial(route.operation, route.scope(request.path)):
                raise errors.authorization_failed(
                    tenant.principal_id, route.operation, route.scope(request.path)
                )
            if faults.latency_ms:
                tenant.sleep(faults.latency_ms / 1000.0)
            if faults.error_rate and tenant.random.random() < faults.error_rate:
                raise errors.internal_server_error()
        except errors.ArmError as exc:
            return error_response(exc), quota
        return None, quota

    @staticmethod
    def _handle(tenant: Tenant, request: SimRequest, route: Route | None) -> SimResponse:
        assert route is not None
        try:
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


def _record_activity(
    tenant: Tenant, request: SimRequest, route: Route, response: SimResponse, when: datetime
) -> None:
    """A successful ARM write leaves its ``AzureActivity`` row (:mod:`irflow.sim.loganalytics.activity`)."""
    activity.record_write(
        tenant,
        operation=route.operation or f"{request.method} {route.name}",
        resource_id=route.scope(request.path),
        correlation_id=response.headers["x-ms-correlation-request-id"],
        status_code=response.status,
        when=when,
    )


def error_response(error: errors.ArmError) -> SimResponse:
    return error.response()


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


_SUBSCRIPTION = re.compile(r"^/subscriptions/([^/]+)", re.IGNORECASE)
_GROUP = re.compile(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)", re.IGNORECASE)


def _location_of(tenant: Tenant, path: str) -> str:
    """The location ARM names in an api-version refusal: the resource group's, else ``global``."""
    found = _GROUP.match(path)
    if found:
        try:
            return tenant.resource_group(found.group(1), found.group(2)).location
        except errors.ArmError:
            pass
    return "global"


def _subscription_of(path: str) -> str | None:
    """The subscription a request is scoped to (what ARM throttles on), or None for tenant-level paths."""
    found = _SUBSCRIPTION.match(path)
    return found.group(1) if found else None


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
        pass
    try:
        text = request.body.decode("utf-8").strip()
    except UnicodeDecodeError:
        text = ""
    if text.startswith("<") and len(text) <= 64 * 1024:
        return text  # XML (the blob service's bodies), recorded as text
    return f"<{len(request.body)} bytes, not JSON>"
