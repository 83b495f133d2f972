"""Request guard (pure ASGI, outermost): a request id for every request, bound into structlog and returned
in ``X-Request-Id``; body size and JSON nesting limits checked before any route or dependency runs.

A refused body writes nothing but an audit record of the refusal (DESIGN.md, "Input limits").
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from irflow.api.errors import payload
from irflow.logs import get_logger

MAX_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32
REQUEST_ID_HEADER = "X-Request-Id"
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")

log = get_logger(__name__)


# A JSON string, escapes included, up to its closing quote or the end of the body (unterminated): the
# optional closing quote means a match never fails, so no backtracking and one linear pass over the body.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
# Every byte but the four brackets.
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _too_deep(body: bytes) -> bool:
    """Counted on the raw text first: json.loads itself recurses and must not see a 100 000-deep document.

    This runs on the event loop for every request with a body: strings are cut out with a regex (an
    unterminated one runs to the end) and the other bytes but brackets with ``bytes.translate``, so Python
    walks only the brackets (a byte-by-byte walk cost about 1 ms for a 5 KB Sentinel delivery)."""
    depth = 0
    for byte in _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS):
        if byte in (0x7B, 0x5B):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        else:
            depth -= 1
    return False


class RequestGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        on_reject: Callable[[Scope, int, str, str], None],
        form_prefix: str | None = None,
    ) -> None:
        self.app = app
        self.on_reject = on_reject
        # Paths under this prefix take HTML form posts (the dashboard): size-limited here, read by the route.
        self.form_prefix = form_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get(REQUEST_ID_HEADER.lower(), "")
        request_id = given if _CLIENT_REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *[(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            refusal = _declared_too_large(headers)
            body: bytes | None = None
            if refusal is None and scope["method"] not in ("GET", "HEAD", "OPTIONS", "DELETE"):
                body, refusal = await _read_body(receive)
            is_form = self.form_prefix is not None and scope["path"].startswith(self.form_prefix)
            if refusal is None and body and not is_form:
                refusal = _check_json(headers, body)
            if refusal is not None:
                status, code, message = refusal
                await run_in_threadpool(self.on_reject, scope, status, code, message)
                await _send_error(send_with_id, status, code, message)
                return
            started = False

            async def send_tracked(message: Message) -> None:
                nonlocal started
                started = started or message["type"] == "http.response.start"
                await send_with_id(message)

            try:
                await self.app(scope, _replay(body, receive) if body is not None else receive, send_tracked)
            except Exception:
                # Our JSON error with the request id, not a plain-text 500; the log has the trace.
                log.exception("api.unexpected_error", path=scope.get("path", ""))
                if not started:
                    await _send_error(
                        send_with_id, 500, "internal_error", "internal error; see the server log"
                    )


def _declared_too_large(headers: dict[str, str]) -> tuple[int, str, str] | None:
    length = headers.get("content-length")
    if length is None:
        return None
    if not length.isdigit():
        return 400, "bad_request", "Content-Length is not a number"
    if int(length) > MAX_BODY_BYTES:
        return 413, "body_too_large", f"request body is larger than {MAX_BODY_BYTES} bytes"
    return None


async def _read_body(receive: Receive) -> tuple[bytes, tuple[int, str, str] | None]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", (400, "bad_request", "client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return b"", (413, "body_too_large", f"request body is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None


def _check_json(headers: dict[str, str], body: bytes) -> tuple[int, str, str] | None:
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    # No Content-Type is read as JSON (as FastAPI does); a declared other type is refused.
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        return 415, "unsupported_media_type", "send the body as application/json"
    if _too_deep(body):
        return 400, "too_deep", f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
    try:
        json.loads(body)
    except RecursionError:
        return 400, "too_deep", f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
    except ValueError as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "a number too long to read"
        return 400, "invalid_json", f"body is not valid JSON: {reason}"
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    data = json.dumps(payload(code, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})
