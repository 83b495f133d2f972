"""``POST /api/v1/webhooks/sentinel``: Microsoft Sentinel (and Azure Monitor) deliveries, authenticated.

Two ways in, as INTERFACES.md fixes them:

- an Entra ID bearer token of an allowed managed identity: the Logic App HTTP action's "Managed identity"
  authentication gets a token for irflow's app id URI; its ``oid`` must be in ``IRFLOW_SENTINEL_CALLERS``
  (https://learn.microsoft.com/en-us/azure/logic-apps/authenticate-with-managed-identity);
- ``X-IRFlow-Signature: t=<unix>,v1=<hex hmac-sha256(secret, "<t>.<raw body>")>`` within 300 s, compared in
  constant time; a signature already accepted is refused when it comes again (replay).

With neither configured every call is refused. Every refusal is a 4xx with ``{"error": {"code", "message"}}``
and writes one audit event (``sentinel.delivery_rejected``: the reason, the body's size and SHA-256, never its
content) and nothing else.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from irflow import clock
from irflow.api.deps import client_ip, throttled
from irflow.api.entra import EntraTokenError, EntraValidator
from irflow.api.errors import ErrorResponse, payload
from irflow.audit import AuditChain
from irflow.engine.runtime import Services
from irflow.engine.sentinel import Intake, known, receive
from irflow.engine.sentinel_payload import MAX_BODY_BYTES, Delivery, DeliveryRejected, parse_delivery
from irflow.notify.channels import verify as verify_signature
from irflow.store.db import Database

log = structlog.get_logger(__name__)
router = APIRouter(tags=["webhooks"])

SIGNATURE_HEADER = "X-IRFlow-Signature"
SIGNATURE_WINDOW_S = 300
REJECTION_ACTOR = "sentinel-webhook"
# Bodies up to this size are authenticated and parsed on the event loop (see sentinel_webhook); a recorded
# Sentinel incident with its entities and alerts is about 5 KB.
INLINE_BODY_BYTES = 64 * 1024


class Accepted(BaseModel):
    incident_id: str
    run_id: str | None = Field(
        description="The run the intake started for this incident (null when its rule waits for a responder "
        "or no rule matched; a run a responder starts later is not reported here)."
    )
    deduplicated: bool = Field(description="The incident existed already: nothing new was started.")


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class ReplayGuard:
    """Signatures accepted within the window; each may be used once (per replica: the intake's idempotency
    makes a replay on another replica attach to the same incident, never start a second run)."""

    def __init__(self, window_s: int = SIGNATURE_WINDOW_S, capacity: int = 100_000) -> None:
        self.window_s, self.capacity = window_s, capacity
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_use(self, signature_header: str) -> bool:
        key = hashlib.sha256(signature_header.encode("utf-8", "replace")).hexdigest()
        now = time.monotonic()
        with self._lock:
            while self._seen and (
                len(self._seen) >= self.capacity or next(iter(self._seen.values())) < now - 2 * self.window_s
            ):
                self._seen.popitem(last=False)
            if key in self._seen:
                return False
            self._seen[key] = now
            return True


_replays = ReplayGuard()

# Concurrent intakes per process. SQLite takes one writer at a time and lets waiters poll for the lock (busy
# timeout): a storm of 64 waiting writers starves some past the timeout. Waiting here instead keeps every
# delivery (it only waits longer); PostgreSQL locks rows, not the database, and takes more at once.
INTAKE_SLOTS = {"sqlite": 2, "postgresql": 16}
_slots: dict[str, threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


def _intake_slots(db: Database) -> threading.BoundedSemaphore:
    backend = db.engine.url.get_backend_name()
    with _slots_lock:
        if backend not in _slots:
            _slots[backend] = threading.BoundedSemaphore(INTAKE_SLOTS.get(backend, 8))
        return _slots[backend]


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "The body is not JSON"),
        (401, "Missing, forged, stale or replayed signature; invalid Entra ID token"),
        (
            403,
            "The caller is not an allowed managed identity, or no webhook authentication is configured",
        ),
        (413, "The body exceeds 1 MiB"),
        (415, "The body is not application/json"),
        (422, "Not a Sentinel incident nor an Azure Monitor common alert, or a field out of bounds"),
        (429, "Too many refused (401) deliveries from this address: retry after the Retry-After seconds"),
        (503, "The engine does not run in this process, or Entra ID metadata is unreachable"),
    )
}


@router.post(
    "/webhooks/sentinel",
    status_code=202,
    response_model=Accepted,
    responses=_ERRORS,
    summary="Receive a Microsoft Sentinel incident or an Azure Monitor common alert",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "description": "Sentinel incident (objectSchemaType, objectEventType, workspaceInfo, "
                        "object) or Azure Monitor common alert schema (schemaId, data.essentials).",
                    }
                }
            },
        }
    },
)
async def sentinel_webhook(request: Request) -> JSONResponse:
    from starlette.concurrency import run_in_threadpool

    ctx = request.app.state.irflow
    ip = client_ip(request)
    if (throttle := throttled(ctx.refusals, ip)) is not None:  # not audited: a flood must not fill the trail
        return JSONResponse(
            status_code=throttle.status,
            content=payload(throttle.code, throttle.message),
            headers=throttle.headers,
        )
    body = b""
    try:
        body = await _read_body(request)
        # A signed delivery of a small body is checked on the event loop: the HMAC, the parse and the claim
        # memory are CPU only (a fraction of a millisecond for a Sentinel incident), and most deliveries of
        # a storm end there, without a hop to a worker thread. A bearer token may need Entra ID's keys (I/O)
        # and a large body a longer parse: both are checked in a worker thread.
        if request.headers.get("authorization") or len(body) > INLINE_BODY_BYTES:
            actor, delivery = await run_in_threadpool(_accept, request, body)
        else:
            actor, delivery = _accept(request, body)
        svc = ctx.services
        intake = known(svc, delivery)  # most deliveries of a storm: a re-delivery of a remembered claim
        if intake is None:
            intake = await run_in_threadpool(_receive, svc, delivery, actor)
    except Refused as refused:
        if refused.status == 401:
            ctx.refusals.refused(ip)
        await run_in_threadpool(_audit_rejection, request.app.state.irflow.services.db, refused, body)
        return JSONResponse(
            status_code=refused.status, content={"error": {"code": refused.code, "message": refused.message}}
        )
    log.info(
        "sentinel delivery accepted",
        incident_id=intake.incident_id,
        run_id=intake.run_id,
        outcome=intake.outcome,
        sentinel_event=delivery.event_type,
    )
    return JSONResponse(
        status_code=202,
        content=Accepted(
            incident_id=intake.incident_id, run_id=intake.run_id, deduplicated=intake.deduplicated
        ).model_dump(),
    )


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise Refused(413, "body_too_large", f"the body exceeds {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise Refused(413, "body_too_large", f"the body exceeds {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _accept(request: Request, body: bytes) -> tuple[str, Delivery]:
    """The authenticated sender (its audit actor) and what the delivery says; :class:`Refused` otherwise."""
    ctx = request.app.state.irflow
    actor = _authenticate(request, body, ctx.services.settings, ctx.entra)
    if not ctx.worker:
        raise Refused(
            503, "engine_unavailable", "this irflow process runs without the engine (irflow serve --workers)"
        )
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise Refused(415, "unsupported_media_type", "send the delivery as application/json")
    try:
        return actor, parse_delivery(body)
    except DeliveryRejected as exc:
        raise Refused(exc.status, exc.code, str(exc)) from None


def _receive(svc: Services, delivery: Delivery, actor: str) -> Intake:
    with _intake_slots(svc.db):
        return receive(svc, delivery, actor=actor)


def _authenticate(request: Request, body: bytes, settings: Any, entra: EntraValidator | None) -> str:
    """The audit actor of an authenticated sender; :class:`Refused` otherwise."""
    callers = settings.sentinel_caller_ids()
    validator = entra if callers else None
    secret = settings.sentinel_secret.get_secret_value() if settings.sentinel_secret else ""
    if validator is None and not secret:
        raise Refused(
            403,
            "webhook_not_configured",
            "the Sentinel webhook accepts nothing until IRFLOW_SENTINEL_CALLERS (with IRFLOW_ENTRA_TENANT_ID "
            "and IRFLOW_ENTRA_AUDIENCE) or IRFLOW_SENTINEL_SECRET is set",
        )
    authorization = request.headers.get("authorization", "")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refused(401, "unauthenticated", "Authorization must be 'Bearer <Entra ID token>'")
        if validator is None:
            raise Refused(401, "unauthenticated", "this webhook takes no bearer token: sign the body instead")
        return _managed_identity(validator, token.strip(), callers)
    header = request.headers.get(SIGNATURE_HEADER)
    if not header:
        raise Refused(401, "unauthenticated", f"neither an Entra ID bearer token nor {SIGNATURE_HEADER}")
    if not secret:
        raise Refused(401, "unauthenticated", f"no {SIGNATURE_HEADER} is taken here: use managed identity")
    now = clock.now().timestamp()
    stamp = _timestamp(header)
    if stamp is None:
        raise Refused(401, "bad_signature", f"{SIGNATURE_HEADER} must be t=<unix seconds>,v1=<hex>")
    if abs(now - stamp) > SIGNATURE_WINDOW_S:
        raise Refused(401, "stale_signature", f"signature timestamp is more than {SIGNATURE_WINDOW_S} s off")
    if not verify_signature(secret, header, body, now, SIGNATURE_WINDOW_S):
        raise Refused(401, "bad_signature", "the signature does not match the body")
    if not _replays.first_use(header):
        raise Refused(401, "replayed_signature", "this signature was already used: sign each delivery anew")
    return "sentinel:hmac"


def _timestamp(header: str) -> int | None:
    for part in header.split(",")[:8]:
        key, _, value = part.strip().partition("=")
        if key == "t":
            return int(value) if value.isdigit() and len(value) <= 12 else None
    return None


def _managed_identity(validator: EntraValidator, token: str, callers: frozenset[str]) -> str:
    try:
        claims = validator.validate(token)
    except EntraTokenError as exc:
        if exc.unavailable:
            raise Refused(503, "entra_unavailable", exc.message) from None
        raise Refused(401, "invalid_token", exc.message) from None
    if claims.oid.lower() not in callers:
        raise Refused(403, "caller_not_allowed", "this identity is not in IRFLOW_SENTINEL_CALLERS")
    return f"sentinel:{claims.oid}"


def _audit_rejection(db: Database, refused: Refused, body: bytes) -> None:
    """One audit event per refusal, nothing else; never the body (it may carry anything)."""
    try:
        with db.transaction() as session:
            AuditChain().append(
                session,
                actor=REJECTION_ACTOR,
                type="sentinel.delivery_rejected",
                payload={
                    "status": refused.status,
                    "code": refused.code,
                    "reason": refused.message,
                    "size": len(body),
                    "sha256": hashlib.sha256(body).hexdigest(),
                },
            )
    except Exception:  # the refusal stands even when the database cannot record it; the log says so
        log.exception("sentinel refusal not audited", code=refused.code, status=refused.status)
        return
    log.info("sentinel delivery refused", code=refused.code, status=refused.status)
