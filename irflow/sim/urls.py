"""The simulator's route table: every simulated service's routes, the admin routes and the data planes.

``router`` (what both mounts dispatch to) is a :class:`SimRouter`: the shared pipeline of
:mod:`irflow.sim.router`, plus two steps ahead of it for every Azure path (not ``/_sim/``): the timeout knob
(``tenant.faults.timeout_rate``: hang ``timeout_s`` on the tenant's sleep, journal status 0, raise
:class:`irflow.sim.models.SimTimeout`), the reset knob (``reset_rate``: journal status 0 at once, raise
:class:`irflow.sim.models.SimConnectionReset`) and blob content kept out of the journal
(:func:`irflow.sim.storage.blob_data.opaque_content`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from irflow.sim import admin, permissions
from irflow.sim.authorization import urls as authorization_urls
from irflow.sim.graph import urls as graph_urls
from irflow.sim.keyvault import data as keyvault_data
from irflow.sim.keyvault import lists as keyvault_lists
from irflow.sim.keyvault import urls as keyvault_urls
from irflow.sim.loganalytics import urls as loganalytics_urls
from irflow.sim.models import SimConnectionReset, SimTimeout
from irflow.sim.monitor import urls as monitor_urls
from irflow.sim.network import urls as network_urls
from irflow.sim.router import ADMIN_PREFIX, WRITE_METHODS, DataPlane, Route, Router
from irflow.sim.storage import blob_data
from irflow.sim.storage import urls as storage_urls

if TYPE_CHECKING:
    from irflow.sim.http import SimRequest, SimResponse
    from irflow.sim.models import Tenant

ROUTES: list[Route] = [*storage_urls.ROUTES, *keyvault_urls.ROUTES, *monitor_urls.ROUTES]
ROUTES += network_urls.ROUTES
ROUTES += authorization_urls.ROUTES
ROUTES += keyvault_lists.ROUTES  # vaults by subscription / resource group
ROUTES += permissions.ROUTES  # the caller's effective permissions at a scope (irflow doctor)
ADMIN_ROUTES: list[Route] = [*admin.ROUTES]

# The blob service: container ACLs (storage.urls), then containers and blobs (storage.blob_data).
BLOB_DATA_PLANE = DataPlane(
    storage_urls.BLOB_DATA_PLANE.prefix,
    [*storage_urls.BLOB_DATA_PLANE.routes, *blob_data.ROUTES],
    storage_urls.BLOB_DATA_PLANE.admit,
    storage_urls.BLOB_DATA_PLANE.pattern,
)
DATA_PLANES = [keyvault_data.KEYVAULT_DATA_PLANE, BLOB_DATA_PLANE]  # most specific first
DATA_PLANES += [loganalytics_urls.LOGS_DATA_PLANE, graph_urls.GRAPH_DATA_PLANE]  # /v1/, /v1.0/


class SimRouter(Router):
    def dispatch(self, tenant: Tenant, request: SimRequest) -> SimResponse:
        if request.path.startswith(ADMIN_PREFIX):
            return super().dispatch(tenant, request)
        request = blob_data.opaque_content(request)
        faults = tenant.faults
        with tenant.lock:
            timed_out = faults.draw_timeout(tenant.random)
            timeout_s = faults.timeout_s
            reset = not timed_out and faults.draw_reset(tenant.random)
        if reset:
            _journal_no_answer(tenant, request)
            raise SimConnectionReset(f"irflow.sim: {request.method} {request.path} reset (the reset knob)")
        if timed_out:
            tenant.sleep(timeout_s)  # outside the lock: other calls go on while this one hangs
            _journal_no_answer(tenant, request)
            raise SimTimeout(f"irflow.sim: {request.method} {request.path} timed out (the timeout knob)")
        return super().dispatch(tenant, request)


def _journal_no_answer(tenant: Tenant, request: SimRequest) -> None:
    """A call the timeout or reset knob swallowed: journaled with status 0, never as a mutation."""
    tenant.journal.record(
        method=request.method,
        path=request.path,
        query=request.query,
        body=None,
        status=0,  # no answer
        is_write=request.method in WRITE_METHODS,
        route=None,
        response=None,
    )


router = SimRouter(ROUTES, ADMIN_ROUTES, DATA_PLANES)
