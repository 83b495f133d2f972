"""Admin routes under ``/_sim/`` (never on an Azure path): for tests that run the server as a process.

``GET /_sim/journal`` (the redacted journal; ``?writes=1``: write requests only, ``?mutations=1``: writes
Azure accepted only), ``GET /_sim/hooks``, ``POST /_sim/hooks/pause-after-write`` ``{"after": N,
"hold_s": S}`` and ``POST /_sim/hooks/release`` (hold the answer to a chosen write: :mod:`irflow.sim.hooks`),
``POST /_sim/reset`` (back to the scenario baseline), ``GET /_sim/state`` (a secret-free summary),
``GET /_sim/rbac`` (the deny rules), ``POST /_sim/rbac/deny`` ``{"permission", "scope"}``,
``POST /_sim/rbac/allow-all``, ``GET /_sim/faults`` (every fault knob, LRO knobs under ``lro``) and
``POST /_sim/faults`` (a partial JSON object of the same shape, e.g.
``{"timeout_rate": 0.2, "lro": {"duration_s": 30, "failure_rate": 0.5}}``: all or nothing, 400 on an
unknown key or a bad value; answers the knobs now in force), ``GET``/``POST /_sim/caller`` (where
data-plane callers come from, ``{"ip", "subnet_id"}``, both null for the default: see
:mod:`irflow.sim.firewall`). They need the tenant's bearer token and are not journaled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from irflow.sim import errors
from irflow.sim.http import SimRequest, SimResponse
from irflow.sim.router import Route

if TYPE_CHECKING:
    from irflow.sim.models import Tenant


def journal(tenant: Tenant, request: SimRequest) -> SimResponse:
    entries = tenant.journal.to_list()
    if (request.query_param("writes") or "").lower() in ("1", "true"):
        entries = [entry for entry in entries if entry["is_write"]]
    if (request.query_param("mutations") or "").lower() in ("1", "true"):
        entries = [entry for entry in entries if entry["mutation"]]
    return SimResponse(200, entries)


def hooks(tenant: Tenant, request: SimRequest) -> SimResponse:
    return SimResponse(200, tenant.write_hook.status())


def pause_after_write(tenant: Tenant, request: SimRequest) -> SimResponse:
    body = request.json_object()
    try:
        return SimResponse(200, tenant.write_hook.arm(body.get("after", 1), body.get("hold_s", 60.0)))
    except ValueError as exc:
        raise errors.invalid_request_content(str(exc)) from exc


def release_hook(tenant: Tenant, request: SimRequest) -> SimResponse:
    return SimResponse(200, tenant.write_hook.release())


def reset(tenant: Tenant, request: SimRequest) -> SimResponse:
    tenant.reset()
    return SimResponse(200, {"reset": True})


def state(tenant: Tenant, request: SimRequest) -> SimResponse:
    return SimResponse(200, tenant.state())


def rbac(tenant: Tenant, request: SimRequest) -> SimResponse:
    return SimResponse(200, {"deny": tenant.rbac.to_list()})


def rbac_deny(tenant: Tenant, request: SimRequest) -> SimResponse:
    body = request.json_object()
    try:
        tenant.deny(body.get("permission"), body.get("scope", "/"))  # type: ignore[arg-type]
    except (ValueError, AttributeError, TypeError) as exc:
        raise errors.invalid_request_content(
            f"a deny rule needs permission and scope strings ({exc})"
        ) from exc
    return SimResponse(200, {"deny": tenant.rbac.to_list()})


def rbac_allow_all(tenant: Tenant, request: SimRequest) -> SimResponse:
    tenant.allow_all()
    return SimResponse(200, {"deny": []})


def caller(tenant: Tenant, request: SimRequest) -> SimResponse:
    origin = tenant.caller_origin
    return SimResponse(200, origin.to_dict() if origin else {"ip": None, "subnet_id": None})


def set_caller(tenant: Tenant, request: SimRequest) -> SimResponse:
    body = request.json_object()
    unknown = sorted(set(body) - {"ip", "subnet_id"})
    values = [body.get("ip"), body.get("subnet_id")]
    if unknown or not all(v is None or isinstance(v, str) for v in values):
        raise errors.invalid_request_content(
            'the caller origin is {"ip": "…", "subnet_id": "…"} (strings or null)'
        )
    try:
        origin = tenant.set_caller_origin(*values)
    except ValueError as exc:
        raise errors.invalid_request_content(str(exc)) from exc
    return SimResponse(200, origin.to_dict() if origin else {"ip": None, "subnet_id": None})


def faults(tenant: Tenant, request: SimRequest) -> SimResponse:
    return SimResponse(200, tenant.fault_knobs())


def set_faults(tenant: Tenant, request: SimRequest) -> SimResponse:
    body = request.json_object()
    try:
        return SimResponse(200, tenant.configure_faults(body))
    except ValueError as exc:
        raise errors.invalid_request_content(f"invalid fault knobs: {exc}") from exc


ROUTES = [
    Route("GET", "/_sim/journal", journal, "sim.journal"),
    Route("POST", "/_sim/reset", reset, "sim.reset"),
    Route("GET", "/_sim/hooks", hooks, "sim.hooks"),
    Route("POST", "/_sim/hooks/pause-after-write", pause_after_write, "sim.hooks.pause_after_write"),
    Route("POST", "/_sim/hooks/release", release_hook, "sim.hooks.release"),
    Route("GET", "/_sim/state", state, "sim.state"),
    Route("GET", "/_sim/rbac", rbac, "sim.rbac"),
    Route("POST", "/_sim/rbac/deny", rbac_deny, "sim.rbac.deny"),
    Route("POST", "/_sim/rbac/allow-all", rbac_allow_all, "sim.rbac.allow_all"),
    Route("GET", "/_sim/caller", caller, "sim.caller"),
    Route("POST", "/_sim/caller", set_caller, "sim.caller.set"),
    Route("GET", "/_sim/faults", faults, "sim.faults"),
    Route("POST", "/_sim/faults", set_faults, "sim.faults.set"),
]
