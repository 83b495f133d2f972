"""Ties each action's declared permissions to the REST calls it really makes.

While an action's ``plan`` / ``apply`` / ``verify`` runs, every request the simulated tenant journals is
attributed to that action; the Azure RBAC operation of the request's route (the one the simulator checks,
:mod:`irflow.sim.rbac`) must be among the action's ``permissions``, or the generated custom role
(``irflow actions permissions --format azure-role``) would miss it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from irflow.actions.base import all_actions
from irflow.sim.graph import responses as graph
from irflow.sim.models import Tenant
from irflow.sim.urls import ADMIN_ROUTES, DATA_PLANES, ROUTES


def route_operations() -> dict[str, str | None]:
    """Route name → the RBAC operation it needs (every ARM route and data plane of the simulator)."""
    routes = [*ROUTES, *ADMIN_ROUTES, *(route for plane in DATA_PLANES for route in plane.routes)]
    return {route.name: route.operation for route in routes}


@contextmanager
def audited(tenant: Tenant, monkeypatch: Any) -> Iterator[list[tuple[str, str, str]]]:
    """Wrap every registered action's plan / apply / verify; yields the violations found so far:
    ``(action, route, operation)`` for calls whose operation the action does not declare."""
    operations = route_operations()
    violations: list[tuple[str, str, str]] = []

    def wrap(cls: type, method_name: str) -> None:
        original = getattr(cls, method_name)

        @functools.wraps(original)
        def audited_method(self: Any, *args: Any, **kwargs: Any) -> Any:
            before = max((e.seq for e in tenant.journal.entries()), default=0)
            try:
                return original(self, *args, **kwargs)
            finally:
                declared = {p.lower() for p in type(self).permissions}
                for entry in tenant.journal.entries():
                    if entry.seq <= before or entry.route is None:
                        continue
                    operation = operations.get(entry.route)
                    body = entry.body if isinstance(entry.body, dict) else {}
                    if operation == graph.SP_DISABLE and body.get("accountEnabled") is True:
                        operation = graph.SP_ENABLE  # as the simulator's Graph admission decides
                    if operation and operation.lower() not in declared:
                        violations.append((type(self).name, entry.route, operation))

        monkeypatch.setattr(cls, method_name, audited_method)

    for cls in all_actions().values():
        for method_name in ("plan", "apply", "verify"):
            if method_name in vars(cls):
                wrap(cls, method_name)
    yield violations
