"""The routers of ``/api/v1``: each route checks the caller's role, calls one service, returns its view."""
