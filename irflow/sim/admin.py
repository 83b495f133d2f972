"""Admin routes under ``/_sim/`` (never on an Azure path): for tests that run the server as a process.

``GET /_sim/journal`` (the redacted journal), ``POST /_sim/reset`` (back to the scenario baseline),
``GET /_sim/state`` (a secret-free summary). They need the tenant's bearer token and are not journaled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from irflow.sim.http import SimRequest, SimResponse
from irflow.sim.router import Route

if TYPE_CHECKING:
    from irflow.sim.models import Tenant


def journal(tenant: Tenant, request: SimRequest) -> SimResponse:
    entries = tenant.journal.to_list()
    if (request.query_param("writes") or "").lower() in ("1", "true"):
        entries = [entry for entry in entries if entry["is_write"]]
    return SimResponse(200, entries)


def reset(tenant: Tenant, request: SimRequest) -> SimResponse:
    tenant.reset()
    return SimResponse(200, {"reset": True})


def state(tenant: Tenant, request: SimRequest) -> SimResponse:
    return SimResponse(200, tenant.state())


ROUTES = [
    Route("GET", "/_sim/journal", journal, "sim.journal"),
    Route("POST", "/_sim/reset", reset, "sim.reset"),
    Route("GET", "/_sim/state", state, "sim.state"),
]
