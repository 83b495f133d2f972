"""The dashboard's pages and forms. Each route parses, checks the session (and CSRF token and role for a
POST), calls the same engine service as the API, and renders or redirects (POST-redirect-GET)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from irflow.api.entra import EntraTokenError
from irflow.engine.incidents import FactsUpdate, ObligationSent, RiskAssessmentInput
from irflow.engine.services import audit, deadlines, evidence, incidents, runs
from irflow.engine.services.errors import problems
from irflow.engine.services.principals import Principal
from irflow.engine.services.tokens import PREFIX, TokenRefused, authenticate, expires_at
from irflow.ui import chart
from irflow.ui.entra_sign_in import CALLBACK_PATH, EntraSignIn, SignInFailed
from irflow.ui.forms import ORIGINAL, FormError, fact_values, facts_update
from irflow.ui.session import (
    CSRF_FIELD,
    PENDING_COOKIE,
    PENDING_PATH,
    PENDING_SECONDS,
    PendingSignIn,
    Session,
)
from irflow.ui.web import (
    SECURITY_HEADERS,
    UiError,
    error_page,
    load_session,
    posted,
    read_form,
    redirect,
    render,
    require,
    safe_next,
    services,
    signed_in,
    today,
    ui,
)

router = APIRouter(prefix="/ui", include_in_schema=False)

IN_FLIGHT = ("pending", "running")
FOLLOW = {"approved": ("awaiting_approval",), "retried": ("failed",)}
DONE = {
    "facts": "Facts saved; the deadlines were recomputed.",
    "risk": "Risk assessment recorded.",
    "notice": "Notice recorded as sent.",
    "approved": "Approval sent to the waiting steps.",
    "rejected": "Rejection sent to the waiting steps.",
    "cancelled": "Run cancelled.",
    "retried": "Retry started.",
}
NOTICE_METHODS = (
    "first_class_mail",
    "email",
    "telephone",
    "web_posting",
    "media",
    "hhs_portal",
    "regulator_portal",
    "fax",
    "other",
)
AUDIT_LIMIT = 1000


def _validated(model: Any, body: dict[str, Any]) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise UiError(422, problems(exc)) from None


# --- sign-in -----------------------------------------------------------------------------------------------


@router.get("")
@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/ui/incidents", status_code=303)


@router.get("/sign-in")
def sign_in_page(request: Request, next: str = "", expired: str = "", signed_out: str = "") -> HTMLResponse:
    session = load_session(request)
    note = ""
    if expired:
        note = "Your session has ended. Sign in again."
    elif signed_out:
        note = "You are signed out."
    return render(
        request,
        session,
        "sign_in.html",
        next=safe_next(next),
        note=note,
        entra=request.app.state.irflow.entra is not None,
        entra_redirect=ui(request).entra_sign_in is not None,
    )


def _authenticate(request: Request, token: str) -> tuple[Principal, float]:
    """The principal of an API token or an Entra ID access token, and when its session must end."""
    svc = services(request)
    limit = time.time() + ui(request).session_seconds
    if token.startswith(PREFIX):
        try:
            principal = authenticate(svc.db, token)
        except TokenRefused as exc:
            raise UiError(401, f"Sign-in refused: {exc}.") from None
        ends = expires_at(svc.db, principal.id)
        return principal, min(limit, ends.timestamp()) if ends else limit
    entra = request.app.state.irflow.entra
    if entra is None:
        raise UiError(
            401, "Sign-in refused: not an irflow API token, and Entra ID sign-in is not configured."
        )
    try:
        claims = entra.validate(token)
    except EntraTokenError as exc:
        if exc.unavailable:
            raise UiError(503, f"Entra ID cannot be reached to check the token: {exc.message}.") from None
        raise UiError(401, f"Sign-in refused: {exc.message}.") from None
    return claims.principal(), min(limit, claims.expires_at.timestamp())


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    session = await run_in_threadpool(load_session, request)
    form = await read_form(request)
    if not session.csrf_matches(form.get(CSRF_FIELD)):
        raise UiError(403, "The form's security token is missing or stale. Reload the page and try again.")
    token = form.get("token", "").strip()
    if not token or len(token) > 16_000:
        raise UiError(422, "Paste an irflow API token or an Entra ID access token.")
    principal, until = await run_in_threadpool(_authenticate, request, token)
    if not principal.roles:
        raise UiError(403, "Sign-in refused: this identity holds no irflow role.")
    fresh = Session(principal=principal, expires_at=until)  # a new CSRF token with the new session
    await run_in_threadpool(
        audit.record_session_event,
        services(request).db,
        "signed_in",
        actor=principal.actor,
        payload={"with": principal.kind, "roles": sorted(principal.roles), "until": int(until)},
    )
    return redirect(request, fresh, safe_next(form.get("next")))


# --- sign-in with Microsoft (authorization code flow with PKCE; irflow/ui/entra_sign_in.py) ---------------

# Entra ID's error codes on the way back (RFC 6749 section 4.1.2.1; Microsoft's list:
# https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow#error-codes-for-authorization-endpoint-errors)
AUTHORIZE_ERRORS = {
    "access_denied": "consent was denied or the sign-in was cancelled",
    "consent_required": "an administrator must first consent to the dashboard's permissions",
    "interaction_required": "Microsoft needs you to complete a step (such as multi-factor authentication)",
    "login_required": "you are not signed in to Microsoft",
    "invalid_request": "Microsoft refused the request (check the redirect URI and client id registered)",
    "unauthorized_client": "the dashboard's app registration may not use this flow",
    "invalid_resource": "irflow's API is not registered in the tenant",
    "server_error": "Microsoft Entra ID had an error",
    "temporarily_unavailable": "Microsoft Entra ID is busy",
}


def _sign_in_client(request: Request) -> EntraSignIn:
    client = ui(request).entra_sign_in
    if client is None:
        raise UiError(404, "Sign-in with Microsoft is not configured (IRFLOW_UI_CLIENT_ID).")
    return client


def _redirect_uri(request: Request, client: EntraSignIn) -> str:
    return client.redirect_uri or str(request.base_url).rstrip("/") + CALLBACK_PATH


def _forget_pending(response: Response) -> Response:
    response.delete_cookie(PENDING_COOKIE, path=PENDING_PATH, secure=True, httponly=True, samesite="lax")
    return response


@router.get("/auth/sign-in")
def entra_start(request: Request, next: str = "") -> Response:
    """Off to the tenant's sign-in page, with a fresh state, nonce and PKCE challenge."""
    client = _sign_in_client(request)
    pending = PendingSignIn.new(safe_next(next))
    try:
        target = client.authorize_url(
            redirect_uri=_redirect_uri(request, client),
            state=pending.state,
            nonce=pending.nonce,
            verifier=EntraSignIn.verifier(ui(request).key, pending.state),
        )
    except SignInFailed as exc:
        raise UiError(exc.status, exc.message) from None
    response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
    response.set_cookie(
        PENDING_COOKIE,
        ui(request).pending.dumps(pending),
        max_age=PENDING_SECONDS,
        path=PENDING_PATH,
        secure=True,
        httponly=True,
        samesite="lax",  # see irflow/ui/session.py: the way back is a cross-site navigation
    )
    return response


@router.get("/auth/callback", name="entra_callback")
async def entra_callback(request: Request) -> Response:
    try:
        response = await _entra_callback(request)
    except UiError as exc:
        response = error_page(request, exc.status, exc.message)
    return _forget_pending(response)  # one sign-in per state, successful or not


async def _entra_callback(request: Request) -> Response:
    client = _sign_in_client(request)
    query = request.query_params
    pending = ui(request).pending.loads(request.cookies.get(PENDING_COOKIE))
    if pending is None or not pending.state_matches(query.get("state")):
        raise UiError(
            400,
            "This sign-in cannot be matched to one this browser started (its state is missing, stale or "
            "forged). Start again from the sign-in page.",
        )
    error = query.get("error")
    if error:
        reason = AUTHORIZE_ERRORS.get(error, "Microsoft Entra ID reported an error")
        raise UiError(401, f"Sign-in with Microsoft did not complete: {reason}.")
    code = query.get("code", "")
    if not code or len(code) > 8_000:
        raise UiError(400, "The sign-in came back without an authorization code. Start again.")
    try:
        claims = await run_in_threadpool(
            client.redeem,
            code=code,
            redirect_uri=_redirect_uri(request, client),
            verifier=EntraSignIn.verifier(ui(request).key, pending.state),
            nonce=pending.nonce,
        )
    except SignInFailed as exc:
        raise UiError(exc.status, exc.message) from None
    principal = claims.principal()
    if not principal.roles:
        raise UiError(
            403, "Sign-in refused: this identity holds no irflow role (ask for an app role on irflow's API)."
        )
    until = min(time.time() + ui(request).session_seconds, claims.expires_at.timestamp())
    session = Session(principal=principal, expires_at=until)
    await run_in_threadpool(
        audit.record_session_event,
        services(request).db,
        "signed_in",
        actor=principal.actor,
        payload={"with": "entra", "via": "redirect", "roles": sorted(principal.roles), "until": int(until)},
    )
    # A page that moves on by itself rather than a 303: this response ends a redirect chain that began on
    # login.microsoftonline.com, and RFC 6265bis (section 5.2.1) lets a browser treat a request of a chain
    # that crossed sites as cross-site, withholding the new SameSite=Strict session from it (Chromium 14x
    # does not by default; the test passes either way). The next page's request, started from this page,
    # is same-site in every browser.
    return render(request, session, "signed_in.html", next=safe_next(pending.next))


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    _session, principal, _form = await posted(request, None)
    await run_in_threadpool(
        audit.record_session_event, services(request).db, "signed_out", actor=principal.actor, payload={}
    )
    return redirect(request, Session(), "/ui/sign-in?signed_out=1")


# --- incidents ---------------------------------------------------------------------------------------------


@router.get("/incidents")
def incidents_page(request: Request) -> HTMLResponse:
    session, principal = signed_in(request)
    params = {k: v for k, v in request.query_params.items() if v.strip() and k != "page"}
    query = _validated(incidents.IncidentFilter, params)
    page = incidents.list_incidents(services(request).db, query)
    kept = urlencode({k: v for k, v in params.items() if k != "offset"})
    return render(
        request,
        session,
        "incidents.html",
        page=page,
        filters=params,
        base_query=f"{kept}&" if kept else "",
    )


def _incident_values(request: Request, incident_id: str, after: str = "") -> dict[str, Any]:
    """*after* is the decision just taken (approved, retried): until the workflow picks it up the run still
    shows its old status, so the page keeps following it."""
    svc = services(request)
    detail = incidents.show_incident(svc.db, incident_id)
    run_views = [runs.show_run(svc, r.id) for r in detail.runs]
    day = today(svc)
    tolls = deadlines.tolling(detail.facts)
    return {
        "incident": detail,
        "runs": run_views,
        "live": any(r.status in IN_FLIGHT + FOLLOW.get(after, ()) for r in run_views),
        "after": after if after in FOLLOW else "",
        "today": day,
        "chart": chart.timeline(detail.deadlines, detail.facts.discovered_on, tolls, day),
        "tolling": tolls,
        "urgency": chart.urgency,
        "countdown": chart.countdown,
        "deadline_label": chart.label,
    }


@router.get("/incidents/{incident_id}")
def incident_page(request: Request, incident_id: str, done: str = "") -> HTMLResponse:
    session, principal = signed_in(request)
    svc = services(request)
    values = _incident_values(request, incident_id, done)
    trail = audit.list_events(svc.db, audit.AuditFilter(incident_id=incident_id, limit=AUDIT_LIMIT))
    facts = fact_values(values["incident"].facts, svc.settings.timezone)
    return render(
        request,
        session,
        "incident.html",
        **values,
        audit=trail,
        evidence=evidence.evidence_items(svc.db, incident_id),
        facts=facts,
        original=ORIGINAL,
        done=DONE.get(done, ""),
        methods=NOTICE_METHODS,
    )


@router.get("/incidents/{incident_id}/runs")
def runs_fragment(request: Request, incident_id: str, after: str = "") -> HTMLResponse:
    """The runs section alone: what the page's script polls while a run is in flight."""
    session, _ = signed_in(request)
    return render(request, session, "_runs.html", **_incident_values(request, incident_id, after))


@router.get("/incidents/{incident_id}/evidence")
def evidence_download(request: Request, incident_id: str) -> Response:
    _, principal = signed_in(request)
    require(principal, "compliance")
    package = evidence.evidence_package(services(request), incident_id)
    return Response(
        content=package.data,
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{package.file_name}"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/incidents/{incident_id}/facts")
async def facts_submit(request: Request, incident_id: str) -> Response:
    session, principal, form = await posted(request, "compliance")
    try:
        body = facts_update(form)
    except FormError as exc:
        raise UiError(422, str(exc)) from None
    command = _validated(FactsUpdate, body)
    await run_in_threadpool(incidents.change_facts, services(request).db, incident_id, command, by=principal)
    return redirect(request, session, f"/ui/incidents/{incident_id}?done=facts#deadlines")


@router.post("/incidents/{incident_id}/risk")
async def risk_submit(request: Request, incident_id: str) -> Response:
    session, principal, form = await posted(request, "compliance")
    fields = ("nature_and_extent", "unauthorized_person", "acquired_or_viewed", "mitigation", "outcome")
    command = _validated(RiskAssessmentInput, {f: form.get(f, "") for f in fields})
    await run_in_threadpool(incidents.assess_risk, services(request).db, incident_id, command, by=principal)
    return redirect(request, session, f"/ui/incidents/{incident_id}?done=risk#risk")


@router.post("/incidents/{incident_id}/notices/{obligation_id}/sent")
async def notice_submit(request: Request, incident_id: str, obligation_id: str) -> Response:
    session, principal, form = await posted(request, "compliance")
    command = _validated(
        ObligationSent,
        {"on": form.get("on", ""), "method": form.get("method", ""), "count": form.get("count", "")},
    )
    await run_in_threadpool(
        deadlines.record_notice_sent, services(request).db, incident_id, obligation_id, command, by=principal
    )
    return redirect(request, session, f"/ui/incidents/{incident_id}?done=notice#deadlines")


# --- runs --------------------------------------------------------------------------------------------------


@router.post("/runs/{run_id}/{decision}")
async def run_action(request: Request, run_id: str, decision: str) -> Response:
    roles = {"approve": "approver", "reject": "approver", "cancel": "responder", "retry": "responder"}
    if decision not in roles:
        raise UiError(404, "No such action on a run.")
    session, principal, form = await posted(request, roles[decision])  # type: ignore[arg-type]
    # DBOS's synchronous calls (send, cancel) refuse to run on the event loop: a worker thread runs them.
    incident_id, done = await run_in_threadpool(_decide, request, run_id, decision, principal, form)
    return redirect(request, session, f"/ui/incidents/{incident_id}?done={done}#run-{run_id}")


def _decide(
    request: Request, run_id: str, decision: str, principal: Principal, form: dict[str, str]
) -> tuple[str, str]:
    svc = services(request)
    run = runs.show_run(svc, run_id)
    comment = form.get("comment", "")
    if decision in ("approve", "reject"):
        step = form.get("step_id", "").strip() or None
        command = _validated(runs.RunDecision, {"step_id": step, "comment": comment})
        runs.decide(svc, run_id, command, approved=decision == "approve", by=principal)
        return run.incident_id, "approved" if decision == "approve" else "rejected"
    if decision == "cancel":
        runs.cancel(svc, run_id, _validated(runs.RunCancel, {"comment": comment}), by=principal)
        return run.incident_id, "cancelled"
    runs.retry(svc, run_id, by=principal)
    return run.incident_id, "retried"


# --- deadlines board ---------------------------------------------------------------------------------------


@router.get("/deadlines")
def deadlines_page(request: Request) -> HTMLResponse:
    session, principal = signed_in(request)
    require(principal, "compliance")
    params = {k: v for k, v in request.query_params.items() if v.strip()}
    query = _validated(deadlines.DeadlineFilter, {"limit": 500, **params})
    page = deadlines.list_deadlines(services(request).db, query)
    day = today(services(request))
    return render(
        request,
        session,
        "deadlines.html",
        page=page,
        filters=params,
        today=day,
        urgency=chart.urgency,
        countdown=chart.countdown,
        deadline_label=chart.label,
    )
