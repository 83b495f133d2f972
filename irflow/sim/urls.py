"""The simulator's route table: every simulated service's routes, the admin routes and the data planes."""

from __future__ import annotations

from irflow.sim import admin
from irflow.sim.graph import urls as graph_urls
from irflow.sim.keyvault import data as keyvault_data
from irflow.sim.keyvault import urls as keyvault_urls
from irflow.sim.loganalytics import urls as loganalytics_urls
from irflow.sim.monitor import urls as monitor_urls
from irflow.sim.network import urls as network_urls
from irflow.sim.router import Route, Router
from irflow.sim.storage import urls as storage_urls

ROUTES: list[Route] = [*storage_urls.ROUTES, *keyvault_urls.ROUTES, *monitor_urls.ROUTES]
ROUTES += network_urls.ROUTES
ADMIN_ROUTES: list[Route] = [*admin.ROUTES]

DATA_PLANES = [keyvault_data.KEYVAULT_DATA_PLANE, storage_urls.BLOB_DATA_PLANE]  # most specific first
DATA_PLANES += [loganalytics_urls.LOGS_DATA_PLANE, graph_urls.GRAPH_DATA_PLANE]  # /v1/, /v1.0/

router = Router(ROUTES, ADMIN_ROUTES, DATA_PLANES)
