"""'Sign in with Microsoft' over HTTP: the dashboard against the loopback tenant's authorize and token
endpoints (tests/api/conftest.py), the access token checked by the production EntraValidator.

The browser's part is played by hand: the dashboard's 303 to the authorize endpoint is followed with httpx,
whose 302 back to the callback is then requested through the dashboard's TestClient (its cookie jar)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from irflow.api.app import create_app
from irflow.api.entra import EntraValidator
from irflow.store.models import AuditEvent
from irflow.ui.entra_sign_in import EntraSignIn, SignInFailed

BASE = "https://testserver"


@pytest.fixture(scope="module")
def dashboard(api_engine: Any, oidc_module: Any) -> Iterator[dict[str, Any]]:
    svc, _sim = api_engine
    validator = EntraValidator(
        tenant_id=oidc_module.tenant_id, audience=oidc_module.audience, authority=oidc_module.authority
    )
    settings = svc.settings.model_copy(update={"ui_client_id": oidc_module.client_id})
    app = create_app(svc, entra=validator, worker=True)
    app.state.irflow_ui.entra_sign_in = EntraSignIn.from_settings(settings, validator)
    with TestClient(app, base_url=BASE) as client:
        yield {"client": client, "svc": svc, "oidc": oidc_module}
    validator.close()


@pytest.fixture
def flow(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Each test starts signed out, with a consenting user who holds the approver role."""
    oidc = dashboard["oidc"]
    _reset(oidc)
    dashboard["client"].cookies.clear()
    yield dashboard
    _reset(oidc)


def _reset(oidc: Any) -> None:
    oidc.consent, oidc.user_roles, oidc.id_nonce = True, ["irflow.approver"], None
    oidc.access_audience = oidc.audience


def start(client: TestClient, next_path: str = "/ui/incidents") -> str:
    """The dashboard's redirect to the tenant; the tenant's redirect back (a callback path and query)."""
    answer = client.get("/ui/auth/sign-in", params={"next": next_path}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    back = httpx.get(answer.headers["location"], follow_redirects=False, timeout=30)
    assert back.status_code == 302, back.text
    location = back.headers["location"]
    assert location.startswith(f"{BASE}/ui/auth/callback?")
    return location.removeprefix(BASE)


def test_the_sign_in_page_offers_microsoft_and_the_redirect_carries_state_nonce_and_pkce(
    flow: dict[str, Any],
) -> None:
    client, oidc = flow["client"], flow["oidc"]
    page = client.get("/ui/sign-in")
    assert "Sign in with Microsoft" in page.text and 'href="/ui/auth/sign-in?next=' in page.text
    answer = client.get("/ui/auth/sign-in", params={"next": "/ui/deadlines"}, follow_redirects=False)
    target = urlsplit(answer.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == (
        f"{oidc.authority}/{oidc.tenant_id}/oauth2/v2.0/authorize"
    )
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert query["client_id"] == oidc.client_id and query["response_type"] == "code"
    assert query["redirect_uri"] == f"{BASE}/ui/auth/callback" and query["response_mode"] == "query"
    assert query["scope"].split() == ["openid", f"{oidc.audience}/.default"]
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 40 and len(query["nonce"]) >= 40 and query["state"] != query["nonce"]
    assert "code_verifier" not in answer.headers["location"]
    cookie = answer.headers["set-cookie"].lower()
    for attribute in (
        "irflow_sign_in=",
        "httponly",
        "secure",
        "samesite=lax",
        "path=/ui/auth",
        "max-age=600",
    ):
        assert attribute in cookie, cookie


def test_the_redirect_sign_in_creates_a_strict_session_with_the_app_roles_and_is_audited(
    flow: dict[str, Any],
) -> None:
    client, oidc, svc = flow["client"], flow["oidc"], flow["svc"]
    callback = start(client, "/ui/incidents?status=open")
    done = client.get(callback, follow_redirects=False)
    assert done.status_code == 200, done.text
    assert '<meta http-equiv="refresh" content="0;url=/ui/incidents?status=open">' in done.text
    cookies = done.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("irflow_session="))
    for attribute in ("HttpOnly", "Secure", "SameSite=strict", "Path=/ui", "Max-Age="):
        assert attribute.lower() in session.lower(), session
    pending = next(c for c in cookies if c.startswith("irflow_sign_in="))
    assert "max-age=0" in pending.lower()  # the state is spent
    listing = client.get("/ui/incidents")
    assert listing.status_code == 200 and f"entra:{oidc.user_oid}" not in listing.text
    assert "approver" in listing.text and "Signed in as" in listing.text
    with svc.db.transaction() as db_session:
        event = (
            db_session.execute(
                select(AuditEvent)
                .where(AuditEvent.type == "ui.signed_in", AuditEvent.actor == f"entra:{oidc.user_oid}")
                .order_by(AuditEvent.seq.desc())
            )
            .scalars()
            .first()
        )
        assert event is not None
        payload = json.loads(event.payload)
    assert payload["with"] == "entra" and payload["via"] == "redirect" and payload["roles"] == ["approver"]
    assert "token" not in event.payload.lower() and "eyJ" not in event.payload


def test_a_forged_or_missing_state_is_refused_before_the_code_is_redeemed(flow: dict[str, Any]) -> None:
    client, oidc = flow["client"], flow["oidc"]
    callback = start(client)
    before = oidc.token_requests
    path, query = callback.split("?", 1)
    params = {k: v[0] for k, v in parse_qs(query).items()}
    forged = client.get(path, params={**params, "state": "forged-" + params["state"][7:]})
    assert forged.status_code == 400 and "cannot be matched" in forged.text
    assert forged.headers["content-type"].startswith("text/html")
    client.cookies.clear()
    no_cookie = client.get(callback)
    assert no_cookie.status_code == 400 and "cannot be matched" in no_cookie.text
    assert oidc.token_requests == before
    assert client.get("/ui/incidents", follow_redirects=False).status_code == 303


def test_a_replayed_code_is_refused(flow: dict[str, Any]) -> None:
    client = flow["client"]
    callback = start(client)
    pending = client.cookies.get("irflow_sign_in", path="/ui/auth")
    assert client.get(callback, follow_redirects=False).status_code == 200
    client.cookies.clear()
    # Without its cookie the callback is not even tried; with a copy of it the tenant refuses the used code.
    assert client.get(callback).status_code == 400
    client.cookies.set("irflow_sign_in", pending, domain="testserver.local", path="/ui/auth")
    replay = client.get(callback)
    assert replay.status_code == 401 and "refused to redeem" in replay.text and "invalid_grant" in replay.text
    assert client.get("/ui/incidents", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"id_nonce": "a-nonce-of-another-sign-in"}, 401, "nonce"),
        ({"access_audience": "api://someone-else"}, 401, "another audience"),
        ({"user_roles": None}, 403, "no irflow role"),
        ({"user_roles": ["Reader"]}, 403, "no irflow role"),
        ({"consent": False}, 401, "consent was denied"),
    ],
)
def test_refused_sign_ins_are_clear_pages_and_sign_nobody_in(
    flow: dict[str, Any], change: dict[str, Any], status: int, message: str
) -> None:
    client, oidc = flow["client"], flow["oidc"]
    for name, value in change.items():
        setattr(oidc, name, value)
    answer = client.get(start(client), follow_redirects=False)
    assert answer.status_code == status and message in answer.text, answer.text[:2000]
    assert answer.headers["content-type"].startswith("text/html") and "Traceback" not in answer.text
    assert client.get("/ui/incidents", follow_redirects=False).status_code == 303


def test_without_a_client_id_there_is_no_redirect_sign_in(api_engine: Any) -> None:
    svc, _sim = api_engine
    with TestClient(create_app(svc, worker=True), base_url=BASE) as client:
        assert "Sign in with Microsoft" not in client.get("/ui/sign-in").text
        assert client.get("/ui/auth/sign-in").status_code == 404
        assert client.get("/ui/auth/callback?code=x&state=y").status_code == 404


def test_an_unreachable_token_endpoint_is_a_503_not_a_hang(oidc: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    oidc.token_endpoint = f"http://127.0.0.1:{closed}/token"
    validator = EntraValidator(tenant_id=oidc.tenant_id, audience=oidc.audience, authority=oidc.authority)
    client = EntraSignIn(
        validator=validator, client_id=oidc.client_id, client_secret=None, scope="s", redirect_uri=None
    )
    with pytest.raises(SignInFailed) as failed:
        client.redeem(code="c", redirect_uri=f"{BASE}/ui/auth/callback", verifier="v" * 43, nonce="n")
    assert failed.value.status == 503 and "cannot be reached" in failed.value.message
    validator.close()
