"""The dashboard (``/ui``): server-rendered pages over the engine's services, usable without JavaScript.

Mounted by :func:`irflow.api.app.create_app` on the same app as the API; see docs/dashboard.md.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from irflow.engine.runtime import Services
from irflow.ui.entra_sign_in import EntraSignIn
from irflow.ui.routes import router
from irflow.ui.web import (
    STATIC,
    SignInRequired,
    UiContext,
    UiError,
    error_page,
    make_templates,
    sign_in_redirect,
)

PREFIX = "/ui"


def is_ui(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def mount(app: FastAPI, svc: Services) -> None:
    app.state.irflow_ui = UiContext(
        services=svc,
        templates=make_templates(),
        session_seconds=svc.settings.ui_session_minutes * 60,
        entra_sign_in=EntraSignIn.from_settings(svc.settings, app.state.irflow.entra),
    )
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="ui-static")

    @app.exception_handler(SignInRequired)
    def sign_in_required(request: Request, exc: SignInRequired) -> Response:
        return sign_in_redirect(request, exc)


__all__ = ["UiError", "error_page", "is_ui", "mount"]
