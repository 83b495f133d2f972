"""The request plumbing of the dashboard: the session of a request, rendering with security headers, the
checks every POST passes (signed in, CSRF token, role), and the error page.

Routes (``irflow/ui/routes.py``) parse, call this, call an engine service and render.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from irflow import clock
from irflow.compliance.models import zone
from irflow.engine.runtime import Services
from irflow.engine.services.principals import Principal, Role
from irflow.engine.services.tokens import TokenRefused, still_valid
from irflow.store.installation import installation_secret
from irflow.ui.entra_sign_in import EntraSignIn
from irflow.ui.session import COOKIE, COOKIE_PATH, CSRF_FIELD, PendingCodec, Session, SessionCodec

SESSION_KEY = "ui-session-key"
TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

# No inline script or style anywhere: the page's own files only; never framed (OWASP Secure Headers).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class UiError(Exception):
    """A refusal shown as an HTML page with this status (403 CSRF or role, 404, 409, 422...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SignInRequired(Exception):
    def __init__(self, path: str, expired: bool) -> None:
        super().__init__(path)
        self.path = path
        self.expired = expired


@dataclass
class UiContext:
    services: Services
    templates: Environment
    session_seconds: int
    entra_sign_in: EntraSignIn | None = None
    _key: bytes | None = None
    _codec: SessionCodec | None = None
    _pending: PendingCodec | None = None

    @property
    def key(self) -> bytes:
        """IRFLOW_UI_SESSION_SECRET, or a key generated once and kept in the database, so that every replica
        serving the database accepts the others' sessions (read on first use)."""
        if self._key is None:
            secret = self.services.settings.ui_session_secret
            if secret is not None:
                self._key = secret.get_secret_value().encode()
            else:
                self._key = bytes.fromhex(installation_secret(self.services.db, SESSION_KEY))
        return self._key

    @property
    def codec(self) -> SessionCodec:
        if self._codec is None:
            self._codec = SessionCodec(self.key)
        return self._codec

    @property
    def pending(self) -> PendingCodec:
        if self._pending is None:
            self._pending = PendingCodec(self.key)
        return self._pending


def make_templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "svg"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["short"] = lambda value, n=12: (value or "")[:n]
    env.filters["when"] = _when
    return env


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ui(request: Request) -> UiContext:
    return request.app.state.irflow_ui


def services(request: Request) -> Services:
    return request.app.state.irflow.services


def today(svc: Services) -> date:
    """Today in the organisation's time zone (the calendar deadlines count in)."""
    return clock.now().astimezone(zone(svc.settings.timezone)).date()


def load_session(request: Request) -> Session:
    session = ui(request).codec.loads(request.cookies.get(COOKIE))
    principal = session.principal
    if principal is not None and principal.kind == "token":
        try:  # a revoked or expired token ends its session; its role is read afresh
            session.principal = still_valid(services(request).db, principal.id)
        except TokenRefused:
            return Session(expired=True)
    if principal is not None:
        request.state.actor = principal.actor
    return session


def signed_in(request: Request) -> tuple[Session, Principal]:
    session = load_session(request)
    if session.principal is None:
        raise SignInRequired(request.url.path, session.expired)
    return session, session.principal


def require(principal: Principal, role: Role) -> None:
    if not principal.may(role):
        held = ", ".join(sorted(principal.roles)) or "no irflow role"
        raise UiError(403, f"This needs the {role} role; you have {held}.")


async def posted(request: Request, role: Role | None) -> tuple[Session, Principal, dict[str, str]]:
    """A form POST: signed in, the session's CSRF token in the form, the role (each refusal a 403)."""
    session, principal = await run_in_threadpool(signed_in, request)
    form = await read_form(request)
    if not session.csrf_matches(form.get(CSRF_FIELD)):
        raise UiError(403, "The form's security token is missing or stale. Reload the page and try again.")
    if role is not None:
        require(principal, role)
    return session, principal, form


async def read_form(request: Request) -> dict[str, str]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise UiError(415, "Send the form as application/x-www-form-urlencoded.")
    data = await request.form(max_files=0, max_fields=100)
    return {k: v for k, v in data.items() if isinstance(v, str)}


def set_session(response: Response, request: Request, session: Session) -> None:
    if not session.changed:
        return
    ctx = ui(request)
    max_age = None
    if session.principal is not None:
        max_age = max(int(session.expires_at - time.time()), 1)
    response.set_cookie(
        COOKIE,
        ctx.codec.dumps(session),
        max_age=max_age,
        path=COOKIE_PATH,
        secure=True,
        httponly=True,
        samesite="strict",
    )


def render(
    request: Request, session: Session, template: str, *, status: int = 200, **values: Any
) -> HTMLResponse:
    principal = session.principal
    body = (
        ui(request)
        .templates.get_template(template)
        .render(
            request=request,
            principal=principal,
            may=(lambda role: principal is not None and principal.may(role)),
            csrf_field=CSRF_FIELD,
            csrf=session.csrf,
            **values,
        )
    )
    response = HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)
    set_session(response, request, session)
    return response


def redirect(request: Request, session: Session, url: str) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)
    set_session(response, request, session)
    return response


def sign_in_redirect(request: Request, exc: SignInRequired) -> RedirectResponse:
    target = f"/ui/sign-in?next={quote(exc.path, safe='/')}"
    if exc.expired:
        target += "&expired=1"
    response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
    if exc.expired:
        set_session(response, request, Session())
    return response


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    try:
        session = ui(request).codec.loads(request.cookies.get(COOKIE))
    except Exception:  # the error page never fails on a bad cookie
        session = Session()
    return render(request, session, "error.html", status=status, status_code=status, message=message)


def safe_next(value: str | None) -> str:
    """Only a path of the dashboard itself: never another host (no open redirect)."""
    if value and value.startswith("/ui/") and "//" not in value and "\\" not in value and len(value) < 300:
        return value
    return "/ui/incidents"
