"""Hostile and malformed input: a clear 4xx, nothing written but an audit record of the refusal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from irflow.api.app import create_app
from irflow.api.guard import MAX_BODY_BYTES
from irflow.engine.services.tokens import TokenCreate, create_token
from irflow.redaction import fingerprint
from irflow.store.models import AuditEvent, Incident, Run


@pytest.fixture(scope="module")
def api(api_engine) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    svc, sim = api_engine
    token = create_token(svc.db, TokenCreate(name="limits", role="admin"), actor="test")
    with TestClient(create_app(svc, worker=True)) as client:
        client.headers["Authorization"] = f"Bearer {token.token}"
        yield {"client": client, "svc": svc, "sim": sim, "actor": f"token/limits#{token.id}"}


def _counts(svc) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    with svc.db.transaction() as session:
        incidents = session.execute(select(func.count()).select_from(Incident)).scalar_one()
        runs = session.execute(select(func.count()).select_from(Run)).scalar_one()
    return incidents, runs


def _last_event(svc) -> AuditEvent:  # type: ignore[no-untyped-def]
    with svc.db.transaction() as session:
        return session.execute(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).scalar_one()


VALID = {"title": "t", "severity": "high", "playbook": "storage-sas-exfiltration", "params": {}}


@pytest.mark.parametrize(
    ("body", "status", "code", "says"),
    [
        (b"x" * (MAX_BODY_BYTES + 1), 413, "body_too_large", "larger than"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "too_deep", "deeper"),
        (
            json.dumps({**VALID, "params": {"a": [[[[[[[[["x"]]]]]]]]]}}).encode(),
            422,
            "invalid_request",
            "params",
        ),
        (b'{"title": "t",', 400, "invalid_json", "not valid JSON"),
        (b'{"n": ' + b"9" * 5000 + b"}", 400, "invalid_json", "number"),
        (json.dumps({**VALID, "title": "x" * 301}).encode(), 422, "invalid_request", "body.title"),
        (json.dumps({**VALID, "severity": "apocalyptic"}).encode(), 422, "invalid_request", "body.severity"),
        (json.dumps({**VALID, "owner": "eve"}).encode(), 422, "invalid_request", "body.owner: Extra inputs"),
        (
            json.dumps({**VALID, "playbook": "../../etc/passwd"}).encode(),
            422,
            "invalid_request",
            "body.playbook",
        ),
        (json.dumps({**VALID, "playbook": "no-such-playbook"}).encode(), 422, "invalid", "no playbook named"),
        (json.dumps({**VALID, "params": {"bogus": "1"}}).encode(), 422, "invalid", "unknown parameter"),
        (
            json.dumps({**VALID, "discovered_at": "2026-03-01T09:00:00"}).encode(),
            422,
            "invalid_request",
            "zone",
        ),
    ],
)
def test_refused_bodies_write_nothing_but_an_audit_record(api, body, status, code, says) -> None:  # type: ignore[no-untyped-def]
    before = _counts(api["svc"])
    response = api["client"].post(
        "/api/v1/incidents",
        content=body,
        headers={"Content-Type": "application/json", "X-Request-Id": "req-12345678"},
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and says in error["message"]
    assert response.headers["X-Request-Id"] == "req-12345678"
    assert _counts(api["svc"]) == before
    event = _last_event(api["svc"])
    assert event.type == "api.request_rejected"
    payload = json.loads(event.payload)
    assert payload["status"] == status and payload["code"] == code and payload["request_id"] == "req-12345678"
    # Refusals before authentication (size, depth) have no actor yet; later ones name the caller.
    assert event.actor == ("anonymous" if status in (400, 413) else api["actor"])


def test_other_content_types_are_refused(api) -> None:  # type: ignore[no-untyped-def]
    response = api["client"].post(
        "/api/v1/incidents", content=b"title=t", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415 and response.json()["error"]["code"] == "unsupported_media_type"


def test_an_invalid_request_id_is_replaced(api) -> None:  # type: ignore[no-untyped-def]
    response = api["client"].get("/api/v1/incidents", headers={"X-Request-Id": "bad id\\with spaces"})
    assert response.status_code == 200 and len(response.headers["X-Request-Id"]) == 32


def test_open_an_incident_through_the_api_and_its_run_finishes(api) -> None:  # type: ignore[no-untyped-def]
    from irflow.engine.runtime import Services

    svc: Services = api["svc"]
    account = api["sim"].tenant.storage_account("phiimaging").id
    body = {
        "title": "SAS exfiltration from imaging",
        "severity": "high",
        "playbook": "storage-sas-exfiltration",
        "params": {"storage_accounts": [account]},
        "discovered_at": "2026-03-01T09:00:00-05:00",
        "dry_run": True,
    }
    created = api["client"].post("/api/v1/incidents", json=body)
    assert created.status_code == 201, created.text
    ids = created.json()
    from dbos import DBOS

    DBOS.retrieve_workflow(ids["run_id"]).get_result()
    run = api["client"].get(f"/api/v1/runs/{ids['run_id']}").json()
    assert run["status"] == "succeeded" and run["dry_run"] and run["steps"], (run["error"], run["steps"])
    incident = api["client"].get(f"/api/v1/incidents/{ids['id']}").json()
    assert incident["source"] == "api" and incident["facts"]["discovered_at"].startswith("2026-03-01T14:00")
    assert [r["id"] for r in incident["runs"]] == [ids["run_id"]]
    events = api["client"].get("/api/v1/audit", params={"incident_id": ids["id"]}).json()["items"]
    assert {e["type"] for e in events} >= {"incident.opened", "incident.facts_changed", "run.created"}
    assert {e["actor"] for e in events if e["type"] in ("incident.opened", "run.created")} == {api["actor"]}
    listed = api["client"].get("/api/v1/incidents", params={"source": "api", "limit": 1}).json()
    assert listed["total"] >= 1 and len(listed["items"]) == 1
    assert svc.db is not None


def test_a_gate_waits_for_an_approval_given_through_the_api(api) -> None:  # type: ignore[no-untyped-def]
    import time

    from dbos import DBOS

    client = api["client"]
    account = api["sim"].tenant.storage_account("phiclaimsarchive").id
    created = client.post(
        "/api/v1/incidents",
        json={
            "title": "gate",
            "severity": "low",
            "playbook": "gated-capture",
            "params": {"storage_accounts": [account]},
        },
    ).json()
    run_id = created["run_id"]
    for _ in range(600):
        run = client.get(f"/api/v1/runs/{run_id}").json()
        if run["status"] == "awaiting_approval":
            break
        time.sleep(0.1)
    assert run["status"] == "awaiting_approval", run
    wrong_step = client.post(f"/api/v1/runs/{run_id}/approve", json={"step_id": "no-such-step"})
    assert wrong_step.status_code == 409 and "no step waiting" in wrong_step.json()["error"]["message"]
    approved = client.post(f"/api/v1/runs/{run_id}/approve", json={"step_id": "capture", "comment": "go"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["decision"] == "approved" and len(approved.json()["steps"]) == 1
    assert DBOS.retrieve_workflow(run_id).get_result() == "succeeded"
    events = client.get("/api/v1/audit", params={"incident_id": created["id"], "limit": 1000}).json()["items"]
    approvals = [e for e in events if e["payload"].get("by") == api["actor"]]
    # The comment is free text: the trail holds its keyed fingerprint (the step row keeps it, sealed).
    assert approvals and approvals[0]["payload"].get("comment_fingerprint") == fingerprint("go")


def test_an_unexpected_failure_is_a_json_500_with_the_request_id(api, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from irflow.engine.services import audit

    def broken(*_args: object) -> None:
        raise RuntimeError("database exploded")

    monkeypatch.setattr(audit, "verify_chain", broken)
    client = TestClient(api["client"].app, raise_server_exceptions=False)
    response = client.get(
        "/api/v1/audit/verify", headers={**api["client"].headers, "X-Request-Id": "req-failure-1"}
    )
    assert response.status_code == 500 and response.headers["X-Request-Id"] == "req-failure-1"
    assert response.json() == {
        "error": {"code": "internal_error", "message": "internal error; see the server log"}
    }
