"""The HTTP application: liveness, readiness and metrics today; the incident API joins under ``/api/v1``."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text
from starlette.exceptions import HTTPException

from irflow import __version__
from irflow.api.metrics import StoreCollector
from irflow.store.db import Database


def create_app(db: Database) -> FastAPI:
    app = FastAPI(title="irflow", version=__version__, docs_url="/docs", redoc_url=None)

    @app.exception_handler(HTTPException)
    def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            status_code=exc.status_code, content={"error": {"code": code, "message": str(exc.detail)}}
        )

    registry = CollectorRegistry()
    registry.register(StoreCollector(db))

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    def readyz() -> Response:
        """The database answers."""
        try:
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # any driver error means not ready
            return JSONResponse(
                status_code=503,
                content={"error": {"code": "database_unavailable", "message": type(exc).__name__}},
            )
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["ops"])
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
