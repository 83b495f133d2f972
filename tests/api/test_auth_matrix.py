"""Every route × (no token, bad token, expired, revoked, each role, Entra ID tokens) gets the right status."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from irflow import clock
from irflow.api.app import create_app
from irflow.api.entra import EntraValidator
from irflow.api.throttle import RefusalLimiter
from irflow.engine.services.principals import ROLES, Principal
from irflow.engine.services.tokens import TokenCreate, create_token, revoke_token
from irflow.store.models import ApiToken

INC, RUN, FRESH_RUN = "{incident}", "{run}", "{fresh-run}"
# (method, path, role needed, body, status for a caller with that role)
ROUTES: list[tuple[str, str, str, Any, int]] = [
    ("POST", "/api/v1/incidents", "responder", {"title": "t", "severity": "low", "playbook": "no-such"}, 422),
    ("GET", "/api/v1/incidents", "viewer", None, 200),
    ("GET", f"/api/v1/incidents/{INC}", "viewer", None, 200),
    ("PATCH", f"/api/v1/incidents/{INC}/facts", "compliance", {"role": "covered_entity"}, 200),
    (
        "POST",
        f"/api/v1/incidents/{INC}/risk-assessment",
        "compliance",
        {
            "nature_and_extent": "names and dates of service",
            "unauthorized_person": "unknown",
            "acquired_or_viewed": "unknown",
            "mitigation": "keys rotated",
            "outcome": "notify",
        },
        200,
    ),
    ("GET", f"/api/v1/incidents/{INC}/notices", "compliance", None, 200),
    ("GET", f"/api/v1/incidents/{INC}/notices/none", "compliance", None, 404),
    ("GET", "/api/v1/notices/none", "compliance", None, 404),
    (
        "POST",
        f"/api/v1/incidents/{INC}/notices/none/sent",
        "compliance",
        {"on": "2026-03-01", "method": "first_class_mail", "count": 3},
        404,
    ),
    (
        "POST",
        f"/api/v1/incidents/{INC}/notices/sent",
        "compliance",
        {"kind": "individuals", "sent_on": "2026-03-01", "method": "email", "count": 1},
        404,  # the matrix incident has no obligations yet
    ),
    ("GET", "/api/v1/runs", "viewer", None, 200),
    ("POST", "/api/v1/runs", "responder", {"playbook": "no-such"}, 422),
    ("GET", f"/api/v1/runs/{RUN}", "viewer", None, 200),
    ("POST", f"/api/v1/runs/{RUN}/approve", "approver", {}, 409),
    ("POST", f"/api/v1/runs/{RUN}/reject", "approver", {"comment": "no"}, 409),
    # each call cancels a run of its own (a second cancel of one run is a true conflict)
    ("POST", f"/api/v1/runs/{FRESH_RUN}/cancel", "responder", {"comment": "matrix"}, 200),
    # the matrix run has not failed: nothing to retry (the retry itself: test_run_actions.py)
    ("POST", f"/api/v1/runs/{RUN}/retry", "responder", None, 409),
    ("GET", f"/api/v1/incidents/{INC}/evidence", "compliance", None, 200),
    ("GET", "/api/v1/deadlines?status=open", "compliance", None, 200),
    ("GET", "/api/v1/audit", "viewer", None, 200),
    ("GET", "/api/v1/audit/verify", "viewer", None, 200),
    ("GET", "/api/v1/playbooks", "viewer", None, 200),
    ("GET", "/api/v1/actions", "viewer", None, 200),
    ("POST", "/api/v1/tokens", "admin", {"name": "made-by-matrix", "role": "viewer"}, 201),
    ("GET", "/api/v1/tokens", "admin", None, 200),
    ("DELETE", "/api/v1/tokens/none", "admin", None, 404),
]
REFUSED = ("none", "bad", "expired", "revoked", "entra-expired", "entra-wrong-audience")
CALLERS = (*REFUSED, *ROLES, "entra-viewer", "entra-approver", "entra-admin", "entra-no-role")


def _open_run(svc: Any) -> Any:
    return svc.state.open_incident_and_run(
        title="matrix",
        severity="low",
        source="api",
        actor="test",
        playbook_name="p",
        playbook_version=1,
        playbook_hash="0" * 64,
        playbook_content=(
            "name: p\nversion: 1\nsteps:\n  - id: escalate\n    action: notify.escalate\n"
            "    with: {reason: matrix}\n"
        ),
        params={},
        dry_run=True,
        auto_approve=False,
    )


@pytest.fixture(scope="module")
def matrix(api_engine, oidc_module) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    svc, _sim = api_engine
    oidc = oidc_module
    entra = EntraValidator(tenant_id=oidc.tenant_id, audience=oidc.audience, authority=oidc.authority)
    created = _open_run(svc)
    tokens = {
        role: create_token(svc.db, TokenCreate(name=role, role=role), actor="test").token for role in ROLES
    }
    tokens["bad"] = "irf_" + "x" * 43
    expired = create_token(svc.db, TokenCreate(name="old", role="admin", expires_days=1), actor="test")
    with svc.db.transaction() as session:
        session.get(ApiToken, expired.id).expires_at = clock.now() - timedelta(seconds=1)
    tokens["expired"] = expired.token
    revoked = create_token(svc.db, TokenCreate(name="gone", role="admin"), actor="test")
    revoke_token(svc.db, revoked.id, actor="test")
    tokens["revoked"] = revoked.token
    for role in ("viewer", "approver", "admin"):
        tokens[f"entra-{role}"] = oidc.token(roles=[f"irflow.{role}"])
    tokens["entra-no-role"] = oidc.token(roles=["Something.Else"])
    tokens["entra-expired"] = oidc.token(roles=["irflow.admin"], expires_in=-600)
    tokens["entra-wrong-audience"] = oidc.token(roles=["irflow.admin"], audience="api://other")
    # Every refused caller of the matrix comes from one address: a bucket roomy enough for all of them
    # (the limit itself: test_refusal_throttle.py).
    refusals = RefusalLimiter(burst=100_000, rate=1.0)
    with TestClient(create_app(svc, entra=entra, worker=True, refusals=refusals)) as client:
        yield {
            "client": client,
            "tokens": tokens,
            "incident": created.incident_id,
            "run": created.run_id,
            "new_run": lambda: _open_run(svc).run_id,
        }
    entra.close()


def _held(caller: str) -> frozenset[str]:
    if caller in ROLES:
        return frozenset({caller})
    if caller.startswith("entra-") and caller.removeprefix("entra-") in ROLES:
        return frozenset({caller.removeprefix("entra-")})
    return frozenset()


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(
    ("method", "path", "needs", "body", "ok"), ROUTES, ids=[f"{r[0]} {r[1]}" for r in ROUTES]
)
def test_route_by_caller(matrix, caller, method, path, needs, body, ok) -> None:  # type: ignore[no-untyped-def]
    url = path.replace(INC, matrix["incident"]).replace(RUN, matrix["run"])
    if FRESH_RUN in url:
        url = url.replace(FRESH_RUN, matrix["new_run"]())
    headers = {} if caller == "none" else {"Authorization": f"Bearer {matrix['tokens'][caller]}"}
    response = matrix["client"].request(method, url, headers=headers, json=body)
    if caller in REFUSED:
        expected = 401
    else:
        allowed = Principal(kind="token", id="x", name="x", roles=_held(caller)).may(needs)  # type: ignore[arg-type]
        expected = ok if allowed else 403
    assert response.status_code == expected, response.text
    if expected >= 400:
        error = response.json()["error"]
        assert set(error) == {"code", "message"} and error["message"]
    if expected == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.headers["X-Request-Id"]
