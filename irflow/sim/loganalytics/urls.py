"""Route of the Log Analytics query API (a data plane of the simulator, under ``/v1/``)."""

from __future__ import annotations

from irflow.sim.loganalytics import responses
from irflow.sim.router import DataPlane, Route

ROUTES = [
    Route(
        "POST",
        "/v1/workspaces/{workspaceId}/query",
        responses.query,
        "loganalytics.query",
        read_only=True,
        operation=responses.QUERY_READ,
    ),
]

LOGS_DATA_PLANE = DataPlane(responses.PREFIX, ROUTES, responses.admit)
