"""The HTTP application: the incident API under ``/api/v1``, the dashboard under ``/ui``, liveness, readiness
and metrics.

Built by :func:`create_app` over the engine's services (explicit: no process global is read here). Every
error is ``{"error": {"code", "message"}}``; every response carries ``X-Request-Id``; a refused input is
audited with the caller (when known) and writes nothing else.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from starlette.exceptions import HTTPException
from starlette.types import Scope

from irflow import __version__, ui
from irflow.api.deps import ApiContext
from irflow.api.entra import EntraValidator
from irflow.api.errors import ApiError, ErrorBody, payload
from irflow.api.guard import RequestGuard
from irflow.api.metrics import StoreCollector
from irflow.api.routes import incidents, records, runs, tokens, webhooks
from irflow.api.throttle import RefusalLimiter
from irflow.audit import AuditChain
from irflow.engine.runtime import Services
from irflow.engine.services.errors import ServiceError
from irflow.logs import get_logger
from irflow.redaction import fingerprint

log = get_logger(__name__)

SERVICE_STATUS = {"not_found": 404, "forbidden": 403, "conflict": 409, "invalid": 422, "unavailable": 503}
HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}
AUDITED_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
UI_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    415: "unsupported_media_type",
    422: "invalid_request",
    503: "unavailable",
}


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


class NotReady(BaseModel):
    error: ErrorBody
    checks: dict[str, str]


def create_app(
    svc: Services,
    *,
    entra: EntraValidator | None = None,
    worker: bool = False,
    refusals: RefusalLimiter | None = None,
) -> FastAPI:
    """The app over *svc*; *worker* says whether the engine runs in this process (``irflow serve``);
    *refusals* limits refused anonymous requests per client IP (default: from the settings)."""
    app = FastAPI(
        title="irflow",
        version=__version__,
        docs_url="/docs",
        redoc_url=None,
        description='Incident response for PHI breaches on Azure. Errors: `{"error": {"code", "message"}}`.',
    )
    if refusals is None:
        refusals = RefusalLimiter(burst=svc.settings.api_refusal_burst, rate=svc.settings.api_refusal_rate)
    app.state.irflow = ApiContext(services=svc, entra=entra, worker=worker, refusals=refusals)

    def audit_rejection(scope: Scope, status: int, code: str, message: str, actor: str | None = None) -> None:
        """One audit event per refused change: who, what route, why (field names only, never values)."""
        if scope.get("method") not in AUDITED_METHODS:
            return
        route = scope.get("route")
        try:
            with svc.db.transaction() as session:
                AuditChain().append(
                    session,
                    actor=actor or "anonymous",
                    type="api.request_rejected",
                    payload={
                        "method": scope.get("method"),
                        "route": getattr(route, "path", None) or scope.get("path", "")[:200],
                        "status": status,
                        "code": code,
                        # The message may quote what the caller sent (a title, a pasted value): the trail
                        # keeps its keyed fingerprint; the caller got the (redacted) message itself.
                        "reason_fingerprint": fingerprint(message),
                        "request_id": scope.get("state", {}).get("request_id"),
                    },
                )
        except Exception:  # the refusal stands even if it cannot be recorded; the log says so
            log.exception("api.rejection_not_audited", status=status, code=code)

    def error(request: Request, status: int, code: str, message: str, headers: Any = None) -> Response:
        if status not in (401, 429) and 400 <= status < 500:  # neither is audited: a flood must not fill it
            audit_rejection(request.scope, status, code, message, getattr(request.state, "actor", None))
        if ui.is_ui(request.url.path):
            return ui.error_page(request, status, message)
        return JSONResponse(status_code=status, content=payload(code, message), headers=headers)

    @app.exception_handler(ui.UiError)
    def ui_error(request: Request, exc: ui.UiError) -> Response:
        return error(request, exc.status, UI_CODES.get(exc.status, "refused"), exc.message)

    @app.exception_handler(ApiError)
    def api_error(request: Request, exc: ApiError) -> Response:
        return error(request, exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(ServiceError)
    def service_error(request: Request, exc: ServiceError) -> Response:
        return error(request, SERVICE_STATUS.get(exc.code, 409), exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}"
            for err in exc.errors()[:20]
        )
        return error(request, 422, "invalid_request", problems or "invalid request")

    @app.exception_handler(HTTPException)
    def http_error(request: Request, exc: HTTPException) -> Response:
        code = HTTP_CODES.get(exc.status_code, "http_error")
        return error(request, exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    for module in (incidents, runs, records, tokens, webhooks):
        app.include_router(module.router, prefix="/api/v1")

    registry = CollectorRegistry()
    registry.register(StoreCollector(svc.db))

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["ops"],
        response_model=Readiness,
        responses={503: {"model": NotReady, "description": "Database or worker not ready"}},
    )
    def readyz() -> Response:
        """The database answers and, when this process runs the engine, the engine is launched."""
        from irflow.engine import runtime

        checks: dict[str, str] = {}
        try:
            with svc.db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # any driver error means not ready
            checks["database"] = type(exc).__name__
        if worker:
            checks["worker"] = "ok" if runtime.serves(svc) else "not launched"
        else:
            checks["worker"] = "none in this process"
        failed = [name for name, state in checks.items() if state not in ("ok", "none in this process")]
        if failed:
            return JSONResponse(
                status_code=503,
                content={
                    **payload(f"{failed[0]}_unavailable", f"{failed[0]}: {checks[failed[0]]}"),
                    "checks": checks,
                },
            )
        return JSONResponse({"status": "ready", "checks": checks})

    @app.get(
        "/metrics",
        tags=["ops"],
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    def metrics() -> Response:
        """Prometheus metrics (text exposition format)."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    ui.mount(app, svc)
    app.add_middleware(RequestGuard, on_reject=audit_rejection, form_prefix=ui.PREFIX + "/")
    return app
