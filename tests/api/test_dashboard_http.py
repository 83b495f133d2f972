"""The dashboard over HTTP without a browser: what a client without JavaScript gets, the session cookie's
attributes, refusals as HTML pages, no open redirect, revoked tokens ending sessions, the API unchanged."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from irflow.api.app import create_app
from irflow.engine.services.tokens import TokenCreate, create_token, revoke_token


@pytest.fixture(scope="module")
def ui(api_engine: Any) -> Iterator[dict[str, Any]]:
    svc, _sim = api_engine
    tokens = {
        role: create_token(svc.db, TokenCreate(name=f"http-{role}", role=role), actor="test")  # type: ignore[arg-type]
        for role in ("viewer", "admin")
    }
    # https: the client sends the Secure cookie back, as a browser does (or Chromium on loopback http).
    with TestClient(create_app(svc, worker=True), base_url="https://testserver") as client:
        yield {"client": client, "svc": svc, "tokens": tokens}


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def sign_in(client: TestClient, token: str, next_path: str = "/ui/incidents") -> Any:
    client.cookies.clear()
    page = client.get("/ui/sign-in")
    return client.post(
        "/ui/sign-in",
        data={"csrf_token": csrf(page.text), "token": token, "next": next_path},
        follow_redirects=False,
    )


def test_sign_in_sets_a_strict_session_cookie_and_never_redirects_off_site(ui: dict[str, Any]) -> None:
    client = ui["client"]
    client.cookies.clear()
    first = client.get("/ui/incidents", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/ui/sign-in?next=/ui/incidents"
    page = client.get("/ui/sign-in")
    assert page.status_code == 200 and "<script>" not in page.text  # no inline script; works without JS
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    answer = sign_in(client, ui["tokens"]["admin"].token, "https://evil.example/ui/x")
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/incidents"
    cookie = answer.headers["set-cookie"]
    for attribute in ("HttpOnly", "Secure", "SameSite=strict", "Path=/ui", "Max-Age="):
        assert attribute.lower() in cookie.lower(), cookie
    assert ui["tokens"]["admin"].token not in cookie
    listing = client.get("/ui/incidents")
    assert listing.status_code == 200 and "Signed in as" in listing.text
    for bad_next in ("//evil.example/", "/ui/..\\evil", "/api/v1/tokens"):
        assert sign_in(client, ui["tokens"]["admin"].token, bad_next).headers["location"] == "/ui/incidents"


def test_a_refused_sign_in_is_an_html_page_that_does_not_echo_the_token(ui: dict[str, Any]) -> None:
    client = ui["client"]
    guess = "irf_" + "a" * 43
    answer = sign_in(client, guess)
    assert answer.status_code == 401 and answer.headers["content-type"].startswith("text/html")
    assert "unknown API token" in answer.text and guess not in answer.text
    assert client.get("/ui/incidents", follow_redirects=False).status_code == 303  # still signed out


def test_a_revoked_token_ends_its_session(ui: dict[str, Any]) -> None:
    client = ui["client"]
    token = create_token(ui["svc"].db, TokenCreate(name="short-lived", role="viewer"), actor="test")
    assert sign_in(client, token.token).status_code == 303
    assert client.get("/ui/incidents").status_code == 200
    revoke_token(ui["svc"].db, token.id, actor="test")
    gone = client.get("/ui/incidents", follow_redirects=False)
    assert gone.status_code == 303 and "expired=1" in gone.headers["location"]


def test_refusals_are_html_pages_and_the_api_still_answers_json(ui: dict[str, Any]) -> None:
    client = ui["client"]
    assert sign_in(client, ui["tokens"]["admin"].token).status_code == 303
    missing = client.get("/ui/incidents/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and "Not found" in missing.text
    assert missing.headers["content-type"].startswith("text/html")
    bad_filter = client.get("/ui/incidents", params={"severity": "apocalyptic"})
    assert bad_filter.status_code == 422 and "severity" in bad_filter.text
    as_json = client.post("/ui/sign-out", json={"csrf_token": "x"})
    assert as_json.status_code == 415 and as_json.headers["content-type"].startswith("text/html")
    # The API keeps refusing a body that is not JSON, with its JSON error.
    api = client.post(
        "/api/v1/incidents",
        content=b"title=x",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": f"Bearer {ui['tokens']['admin'].token}",
        },
    )
    assert api.status_code == 415 and api.json()["error"]["code"] == "unsupported_media_type"


def test_incidents_are_searched_by_title_in_the_api_and_the_dashboard(ui: dict[str, Any]) -> None:
    client, svc = ui["client"], ui["svc"]
    svc.state.open_incident(
        title="Dashboard search: 100% of exports_2026", severity="low", source="cli", actor="t"
    )
    svc.state.open_incident(title="Something else", severity="low", source="cli", actor="t")
    headers = {"Authorization": f"Bearer {ui['tokens']['viewer'].token}"}
    found = client.get("/api/v1/incidents", params={"q": "100% of EXPORTS_"}, headers=headers).json()
    assert [i["title"] for i in found["items"]] == ["Dashboard search: 100% of exports_2026"]
    assert client.get("/api/v1/incidents", params={"q": "100%_"}, headers=headers).json()["total"] == 0
    assert sign_in(client, ui["tokens"]["viewer"].token).status_code == 303
    page = client.get("/ui/incidents", params={"q": "dashboard search"})
    assert "Dashboard search: 100% of exports_2026" in page.text and "Something else" not in page.text


def test_sign_in_and_sign_out_are_in_the_audit_trail_without_the_token(ui: dict[str, Any]) -> None:
    from sqlalchemy import select

    from irflow.store.models import AuditEvent

    client, svc, viewer = ui["client"], ui["svc"], ui["tokens"]["viewer"]
    assert sign_in(client, viewer.token).status_code == 303
    page = client.get("/ui/incidents")
    assert (
        client.post("/ui/sign-out", data={"csrf_token": csrf(page.text)}, follow_redirects=False).status_code
        == 303
    )
    with svc.db.transaction() as session:
        events = (
            session.execute(select(AuditEvent).where(AuditEvent.type.in_(("ui.signed_in", "ui.signed_out"))))
            .scalars()
            .all()
        )
        mine = [(e.type, e.actor, json.loads(e.payload)) for e in events if e.actor.endswith(f"#{viewer.id}")]
    assert [kind for kind, _, _ in mine][-2:] == ["ui.signed_in", "ui.signed_out"]
    signed_in = [payload for kind, _, payload in mine if kind == "ui.signed_in"][-1]
    assert signed_in["with"] == "token" and signed_in["roles"] == ["viewer"]
    assert all(viewer.token not in str(payload) for _, _, payload in mine)
