"""The simulator's route table: every simulated service's routes, plus the admin routes."""

from __future__ import annotations

from irflow.sim import admin
from irflow.sim.router import Route, Router
from irflow.sim.storage import urls as storage_urls

ROUTES: list[Route] = [*storage_urls.ROUTES]
ADMIN_ROUTES: list[Route] = [*admin.ROUTES]

router = Router(ROUTES, ADMIN_ROUTES)
