"""The dashboard in a real browser: Debian's Chromium driven headless by Playwright, against ``irflow serve``
and ``irflow sim serve`` running as processes on loopback (one pair for this module).

Screenshots go to ``build/ui-screenshots/`` (gitignored). Every page passes an axe-core audit (bundled by
axe-playwright-python) with no serious or critical violation. In CI a missing /usr/bin/chromium fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from hashlib import sha256
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from itsdangerous import URLSafeSerializer
from procs import irflow_env, serve, sim_serve
from sentinel_helpers import SECRET, body_of, incident, signed_headers
from sqlalchemy import select

from irflow.engine.services.tokens import TokenCreate, create_token
from irflow.store.db import Database
from irflow.store.models import AuditEvent

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "ui-screenshots"
CHROMIUM = Path("/usr/bin/chromium")
SESSION_SECRET = "ui-test-session-secret-" + "x" * 16
TIMEOUT_MS = 180_000


def _need_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = "Debian's chromium is not installed (/usr/bin/chromium); .ci/run installs it"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, oidc_cross_site: Any) -> Iterator[dict[str, Any]]:
    """``irflow sim serve`` and ``irflow serve`` (with a playbook whose key rotation waits for an approver),
    and API tokens of each role."""
    _need_chromium()
    tmp = tmp_path_factory.mktemp("dashboard")
    playbooks = tmp / "playbooks"
    shutil.copytree(ROOT / "playbooks", playbooks)
    sas = playbooks / "storage-sas-exfiltration.yaml"
    gated = sas.read_text().replace(
        "  - id: rotate-keys\n", "  - id: rotate-keys\n    requires_approval: true\n", 1
    )
    assert gated != sas.read_text()
    sas.write_text(gated)

    database_url = f"sqlite:///{tmp / 'irflow.db'}"
    with sim_serve() as sim:
        env = {
            # set up before the suite's autouse fixture clears IRFLOW_* of the environment for a test
            **irflow_env(
                sim.info,
                database_url,
                playbooks=playbooks,
                base={k: v for k, v in os.environ.items() if not k.startswith("IRFLOW_")},
            ),
            "IRFLOW_SENTINEL_SECRET": SECRET,
            "IRFLOW_UI_SESSION_SECRET": SESSION_SECRET,
            "IRFLOW_ENTRA_TENANT_ID": oidc_cross_site.tenant_id,
            "IRFLOW_ENTRA_AUDIENCE": oidc_cross_site.audience,
            "IRFLOW_ENTRA_AUTHORITY": oidc_cross_site.authority,
            "IRFLOW_UI_CLIENT_ID": oidc_cross_site.client_id,
        }
        with serve(env, tmp, log=tmp / "serve.log", ready_within=120) as server:
            db = Database(database_url)
            tokens = {
                role: create_token(db, TokenCreate(name=f"ui-{role}", role=role), actor="test").token  # type: ignore[arg-type]
                for role in ("viewer", "approver", "compliance", "admin")
            }
            yield {
                "base": server.base,
                "sim": sim.info,
                "db": db,
                "tokens": tokens,
                "oidc": oidc_cross_site,
                "log": server.log,
            }
            db.dispose()


@pytest.fixture(scope="module")
def browser(stack: dict[str, Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(60_000)
    tab = context.new_page()
    yield tab
    context.close()


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def accessible(page: Any, name: str) -> None:
    """axe-core over the page as rendered: no serious or critical violation."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    bad = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    assert not bad, (name, [(v["id"], v["help"], [n["target"] for n in v["nodes"]][:3]) for v in bad])


def sign_in(page: Any, base: str, token: str) -> None:
    page.goto(f"{base}/ui/")
    assert "/ui/sign-in" in page.url
    page.get_by_label(re.compile("API token")).fill(token)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(re.compile(r"/ui/incidents"))


def deliver(stack: dict[str, Any]) -> dict[str, Any]:
    document = incident(stack["sim"]["subscription_id"], incident_name=str(uuid.uuid4()))
    document["eventUniqueId"] = str(uuid.uuid4())
    body = body_of(document)
    answer = httpx.post(
        f"{stack['base']}/api/v1/webhooks/sentinel", content=body, headers=signed_headers(body), timeout=60
    )
    assert answer.status_code == 202, answer.text
    return answer.json()


def csrf_of(page: Any) -> str:
    return page.locator("input[name=csrf_token]").first.get_attribute("value")


def test_a_sentinel_incident_is_approved_its_facts_move_deadlines_and_a_notice_is_met(
    stack: dict[str, Any], page: Any
) -> None:
    base = stack["base"]
    sign_in(page, base, stack["tokens"]["admin"])
    cookie = next(c for c in page.context.cookies() if c["name"] == "irflow_session")
    # Secure cookies work over http on loopback: Chromium treats 127.0.0.1 as a secure context.
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    accessible(page, "sign-in landing")

    started = deliver(stack)
    page.goto(f"{base}/ui/incidents?source=sentinel&q=SAS")
    link = page.get_by_role("link", name=re.compile("Sentinel incident"))
    assert link.count() >= 1
    shot(page, "01-incidents")
    accessible(page, "incidents")
    page.goto(f"{base}/ui/incidents/{started['incident_id']}")
    run = page.locator(f"#run-{started['run_id']}")
    status = run.locator("[data-run-status]")

    # The run reaches the key-rotation gate; the page follows it (live updates, then a reload at the gate).
    status.wait_for(state="attached")
    page.wait_for_function(
        "id => { const s = document.querySelector(`#run-${id} [data-run-status]`);"
        " return s && s.dataset.runStatus === 'awaiting_approval'; }",
        arg=started["run_id"],
        timeout=TIMEOUT_MS,
    )
    approve = run.get_by_role("button", name="Approve")
    approve.wait_for()
    shot(page, "02-awaiting-approval")
    accessible(page, "incident awaiting approval")
    run.get_by_label("Comment (audited)").fill("keys may rotate")
    approve.click()
    page.wait_for_url(re.compile(r"done=approved"))
    # No reload by the test: the page's own live update shows the run complete.
    page.wait_for_function(
        "id => { const s = document.querySelector(`#run-${id} [data-run-status]`);"
        " return s && s.dataset.runStatus === 'succeeded'; }",
        arg=started["run_id"],
        timeout=TIMEOUT_MS,
    )
    assert run.locator("text=rotate-keys").count() >= 1
    # the decision is audited with its author; its free-text comment only as a keyed fingerprint
    trail = page.locator("#audit").text_content()
    assert '"by": "token/ui-admin#' in trail and '"comment_fingerprint": "hmac-sha256:' in trail
    assert "keys may rotate" not in trail
    shot(page, "03-run-succeeded")

    # Facts: discovery ten days ago, 600 affected (550 in California) -> obligations with due dates.
    today = datetime.now(ZoneInfo("America/New_York")).date()  # the organisation's day (the default zone)
    first = today - timedelta(days=10)
    page.get_by_label(re.compile("^Discovered at")).fill(f"{first.isoformat()}T09:00")
    page.get_by_label("Affected individuals, total").fill("600")
    page.get_by_label("Affected by state").fill("CA=550, TX=50")
    page.get_by_role("button", name="Save facts").click()
    page.wait_for_url(re.compile(r"done=facts"))
    individuals = page.locator("li.deadline[data-kind=individuals][data-jurisdiction=US]")
    assert individuals.locator("time").inner_text() == (first + timedelta(days=60)).isoformat()
    assert "50 days left" in individuals.inner_text()
    chart = page.locator("figure.chart svg")
    assert chart.count() == 1
    assert chart.locator("line.today").count() == 1
    assert (
        chart.locator("g.row").count() == page.locator("li.deadline:not([data-status=not_required])").count()
    )
    shot(page, "04-deadlines")
    accessible(page, "incident with deadlines")

    # Moving discovery back 20 days moves every clock that runs from it; a written delay is shaded.
    moved = today - timedelta(days=30)
    page.get_by_label(re.compile("^Discovered at")).fill(f"{moved.isoformat()}T09:00")
    page.get_by_label("Written statement given on").fill((today - timedelta(days=5)).isoformat())
    page.get_by_label("Written statement delays until").fill((today + timedelta(days=10)).isoformat())
    page.get_by_role("button", name="Save facts").click()
    page.wait_for_url(re.compile(r"done=facts"))
    assert individuals.locator("time").inner_text() == (moved + timedelta(days=60)).isoformat()
    assert page.locator("figure.chart rect.tolling").count() == 1
    shot(page, "05-deadlines-moved")

    # Record the individual notice as sent: the obligation is met.
    individuals.get_by_label("Method").select_option("first_class_mail")
    individuals.get_by_label("Recipients").fill("600")
    individuals.get_by_role("button", name="Record as sent").click()
    page.wait_for_url(re.compile(r"done=notice"))
    assert individuals.get_attribute("data-status") == "met"
    assert "met: sent" in individuals.inner_text()
    assert individuals.get_by_role("button", name="Record as sent").count() == 0
    shot(page, "06-notice-met")

    # Risk assessment form, the deadlines board, the evidence items.
    for label in ("1. Nature", "2. The unauthorized", "3. Whether", "4. The extent"):
        page.get_by_label(re.compile("^" + re.escape(label))).fill("recorded for the drill")
    page.get_by_label("Notify (breach)").check()
    page.get_by_role("button", name="Record assessment").click()
    page.wait_for_url(re.compile(r"done=risk"))
    assert "notify" in page.locator("#risk").inner_text()
    evidence_rows = page.locator("#evidence tbody tr")
    assert evidence_rows.count() >= 2  # state before and after of the accounts
    assert re.fullmatch(r"[0-9a-f]{64}", evidence_rows.first.locator("code.hash").inner_text())

    page.goto(f"{base}/ui/deadlines?status=open")
    assert page.get_by_role("link", name=re.compile("incident")).count() >= 1
    shot(page, "07-deadlines-board")
    accessible(page, "deadlines board")


def test_a_viewer_sees_no_decision_buttons_and_is_refused_when_posting(
    stack: dict[str, Any], page: Any
) -> None:
    base = stack["base"]
    started = deliver(stack)
    sign_in(page, base, stack["tokens"]["viewer"])
    page.goto(f"{base}/ui/incidents/{started['incident_id']}")
    page.wait_for_function(
        "id => { const s = document.querySelector(`#run-${id} [data-run-status]`);"
        " return s && s.dataset.runStatus === 'awaiting_approval'; }",
        arg=started["run_id"],
        timeout=TIMEOUT_MS,
    )
    assert page.get_by_role("button", name="Approve").count() == 0
    assert page.get_by_role("button", name="Cancel run").count() == 0
    assert page.get_by_role("button", name="Save facts").count() == 0
    assert page.get_by_role("navigation", name="Main").get_by_role("link", name="Deadlines").count() == 0
    accessible(page, "incident as viewer")
    shot(page, "08-viewer")

    # The form posted directly, with the viewer's own valid CSRF token: 403, and the run still waits.
    answer = page.request.post(
        f"{base}/ui/runs/{started['run_id']}/approve",
        form={"csrf_token": csrf_of(page), "comment": "let me"},
        max_redirects=0,
    )
    assert answer.status == 403
    assert "approver" in answer.text()
    page.goto(f"{base}/ui/deadlines")
    assert page.get_by_role("heading", name="Not allowed").count() == 1
    accessible(page, "error page")
    page.goto(f"{base}/ui/incidents/{started['incident_id']}")
    assert (
        page.locator(f"#run-{started['run_id']} [data-run-status]").get_attribute("data-run-status")
        == "awaiting_approval"
    )


def test_a_form_without_its_csrf_token_is_refused(stack: dict[str, Any], page: Any) -> None:
    base = stack["base"]
    started = deliver(stack)
    sign_in(page, base, stack["tokens"]["approver"])
    for form in ({"comment": "no token"}, {"comment": "wrong token", "csrf_token": "forged"}):
        answer = page.request.post(f"{base}/ui/runs/{started['run_id']}/cancel", form=form, max_redirects=0)
        assert answer.status == 403, answer.text()
    answer = page.request.post(f"{base}/ui/sign-out", form={}, max_redirects=0)
    assert answer.status == 403
    # The session still works, the run was not cancelled, and each refusal is audited.
    page.goto(f"{base}/ui/incidents/{started['incident_id']}")
    assert "/ui/incidents/" in page.url
    assert (
        page.locator(f"#run-{started['run_id']} [data-run-status]").get_attribute("data-run-status")
        != "cancelled"
    )
    with stack["db"].transaction() as session:
        refused = session.scalars(
            select(AuditEvent.payload).where(AuditEvent.type == "api.request_rejected")
        ).all()
    assert sum('"/ui/runs/{run_id}/{decision}"' in p and '"status":403' in p for p in refused) >= 2


def cookie(value: str) -> dict[str, Any]:
    """The session cookie as the server sets it (same name, host and path, so it replaces the browser's)."""
    return {
        "name": "irflow_session",
        "value": value,
        "domain": "127.0.0.1",
        "path": "/ui",
        "secure": True,
        "httpOnly": True,
        "sameSite": "Strict",
    }


def test_an_expired_session_goes_to_sign_in_and_sign_out_ends_the_session(
    stack: dict[str, Any], page: Any
) -> None:
    base = stack["base"]
    serializer = URLSafeSerializer(
        SESSION_SECRET.encode(), salt="irflow.ui.session.v1", signer_kwargs={"digest_method": sha256}
    )
    expired = serializer.dumps(
        {
            "csrf": "c",
            "kind": "system",
            "id": "x",
            "name": "x",
            "roles": ["admin"],
            "exp": int(time.time()) - 5,
        }
    )
    page.context.add_cookies([cookie(expired)])
    page.goto(f"{base}/ui/incidents")
    assert "/ui/sign-in" in page.url and "expired=1" in page.url
    assert "session has ended" in page.locator("main").inner_text()
    shot(page, "09-expired")

    # The same cookie while still valid is accepted: the expiry, not the forgery check, sent it away.
    valid = serializer.dumps(
        {
            "csrf": "c",
            "kind": "system",
            "id": "x",
            "name": "x",
            "roles": ["viewer"],
            "exp": int(time.time()) + 60,
        }
    )
    page.context.add_cookies([cookie(valid)])
    page.goto(f"{base}/ui/incidents")
    assert page.url.endswith("/ui/incidents"), page.url
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/ui/sign-in\?signed_out=1"))
    page.goto(f"{base}/ui/incidents")
    assert "/ui/sign-in" in page.url
    accessible(page, "sign-in")

    # Keyboard alone: the first Tab reaches the skip link, which leads to the form, filled and sent by keys.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")  # to the main content, past the header
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Sign in with Microsoft"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "token"
    page.keyboard.type(stack["tokens"]["viewer"])
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/ui/incidents"))
    assert "ui-viewer" in page.locator("header").inner_text()


def test_sign_in_with_an_entra_id_token_carries_its_app_roles(stack: dict[str, Any], page: Any) -> None:
    base = stack["base"]
    token = stack["oidc"].token(roles=["irflow.approver"])
    sign_in(page, base, token)
    assert "approver" in page.locator("header").inner_text()
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{base}/ui/sign-in")
    page.get_by_label(re.compile("API token")).fill(
        stack["oidc"].token(roles=["approver"], audience="api://other")
    )
    page.get_by_role("button", name="Sign in", exact=True).click()
    assert page.get_by_role("alert").inner_text().startswith("Sign-in refused")
    page.goto(f"{base}/ui/incidents")
    assert "/ui/sign-in" in page.url


def test_sign_in_with_microsoft_through_the_redirect(stack: dict[str, Any], page: Any) -> None:
    """The whole way in Chromium: the tenant's sign-in page on another site, back to the callback with the
    SameSite=Lax state cookie, on to the page asked for with the SameSite=Strict session."""
    base, oidc = stack["base"], stack["oidc"]
    oidc.user_roles = ["irflow.compliance"]
    try:
        page.goto(f"{base}/ui/deadlines")
        assert "/ui/sign-in" in page.url
        accessible(page, "sign-in-with-microsoft")
        page.get_by_role("link", name="Sign in with Microsoft").click()
        page.wait_for_url(lambda url: urlsplit(url).path == "/ui/deadlines")
        assert "compliance" in page.locator("header").inner_text()
        assert page.get_by_role("heading", level=1).inner_text() != "Signed in"
        cookies = {c["name"]: c for c in page.context.cookies()}
        assert cookies["irflow_session"]["sameSite"] == "Strict" and "irflow_sign_in" not in cookies
        shot(page, "10-signed-in-with-microsoft")
        with stack["db"].transaction() as session:
            event = (
                session.execute(
                    select(AuditEvent)
                    .where(AuditEvent.type == "ui.signed_in", AuditEvent.actor == f"entra:{oidc.user_oid}")
                    .order_by(AuditEvent.seq.desc())
                )
                .scalars()
                .first()
            )
            assert event is not None and json.loads(event.payload)["with"] == "entra"

        page.get_by_role("button", name="Sign out").click()
        oidc.consent = False
        page.get_by_role("link", name="Sign in with Microsoft").click()
        alert = page.get_by_role("alert")
        assert "consent was denied" in alert.inner_text()
        shot(page, "11-microsoft-consent-denied")
        page.goto(f"{base}/ui/incidents")
        assert "/ui/sign-in" in page.url
    finally:
        oidc.user_roles, oidc.consent = ["irflow.approver"], True
