"""The actions the API takes on runs and incidents, shown by their effect: a run cancelled, a failed run
retried, a notice recorded as sent moving a dependent deadline, an evidence package that verifies offline."""

from __future__ import annotations

import io
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from irflow.api.app import create_app
from irflow.engine.services.tokens import TokenCreate, create_token
from irflow.redaction import fingerprint

FLAKY_TARGETS = """\
name: isolate-then-rotate
version: 1
inputs:
  storage_accounts: {type: "list[resource_id]"}
steps:
  - id: isolate
    action: storage.isolate_account
    for_each: "{{ inputs.storage_accounts }}"
    retry: {max_attempts: 1}
  - id: rotate
    action: storage.rotate_account_keys
    for_each: "{{ inputs.storage_accounts }}"
"""


@pytest.fixture(scope="module")
def api(api_engine) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    svc, sim = api_engine
    (svc.settings.playbooks_dir / "isolate-then-rotate.yaml").write_text(FLAKY_TARGETS)
    token = create_token(svc.db, TokenCreate(name="actions", role="admin"), actor="test")
    with TestClient(create_app(svc, worker=True)) as client:
        client.headers["Authorization"] = f"Bearer {token.token}"
        yield {"client": client, "svc": svc, "sim": sim, "actor": f"token/actions#{token.id}"}


def _until(client: TestClient, run_id: str, statuses: tuple[str, ...]) -> dict[str, Any]:
    for _ in range(1200):
        run = client.get(f"/api/v1/runs/{run_id}").json()
        if run["status"] in statuses:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} never reached {statuses}: {run}")


def _events(client: TestClient, incident_id: str, kind: str) -> list[dict[str, Any]]:
    items = client.get("/api/v1/audit", params={"incident_id": incident_id, "limit": 1000}).json()["items"]
    return [e for e in items if e["type"] == kind]


def test_cancel_stops_a_run_waiting_at_its_gate(api) -> None:  # type: ignore[no-untyped-def]
    client = api["client"]
    account = api["sim"].tenant.storage_account("phiclaimsarchive").id
    created = client.post(
        "/api/v1/incidents",
        json={
            "title": "cancel me",
            "severity": "low",
            "playbook": "gated-capture",
            "params": {"storage_accounts": [account]},
        },
    ).json()
    run_id = created["run_id"]
    _until(client, run_id, ("awaiting_approval",))
    cancelled = client.post(f"/api/v1/runs/{run_id}/cancel", json={"comment": "false positive"})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json() == {
        "run_id": run_id,
        "previous_status": "awaiting_approval",
        "status": "cancelled",
        "steps_cancelled": 1,
    }
    run = client.get(f"/api/v1/runs/{run_id}").json()
    assert run["status"] == "cancelled" and [s["state"] for s in run["steps"]] == ["cancelled"]
    [event] = _events(client, created["id"], "run.cancelled")
    assert event["actor"] == api["actor"]
    assert event["payload"]["reason_fingerprint"] == fingerprint("false positive")
    again = client.post(f"/api/v1/runs/{run_id}/cancel", json={})
    assert again.status_code == 409 and "already ended" in again.json()["error"]["message"]
    assert client.post("/api/v1/runs/no-such-run/cancel", json={}).status_code == 404


def test_retry_reruns_the_failed_steps_and_keeps_what_succeeded(api) -> None:  # type: ignore[no-untyped-def]
    client, tenant = api["client"], api["sim"].tenant
    present = tenant.storage_account("phiimaging").id
    later = present.replace("phiimaging", "phiarrivinglate")
    created = client.post(
        "/api/v1/incidents",
        json={
            "title": "retry me",
            "severity": "high",
            "playbook": "isolate-then-rotate",
            "params": {"storage_accounts": [present, later]},
        },
    ).json()
    run_id = created["run_id"]
    failed = _until(client, run_id, ("succeeded", "failed", "cancelled"))
    assert failed["status"] == "failed" and [s["state"] for s in failed["steps"]] == ["succeeded", "failed"]
    parts = present.split("/")
    tenant.add_storage_account(parts[2], parts[4], "phiarrivinglate")
    started = client.post(f"/api/v1/runs/{run_id}/retry")
    assert started.status_code == 202, started.text
    assert started.json()["run_id"] == run_id and started.json()["workflow_id"].startswith(run_id)
    done = _until(client, run_id, ("succeeded",))
    assert [(s["step"], s["state"]) for s in done["steps"]] == [("isolate", "succeeded")] * 2 + [
        ("rotate", "succeeded")
    ] * 2
    retried = _events(client, created["id"], "run.retried")
    assert retried and all(e["actor"] == api["actor"] for e in retried)
    again = client.post(f"/api/v1/runs/{run_id}/retry")
    assert again.status_code == 409 and "only a failed run" in again.json()["error"]["message"]


@pytest.fixture(scope="module")
def incident_with_facts(api) -> str:  # type: ignore[no-untyped-def]
    incident_id = api["svc"].state.open_incident(
        title="PHI export exposed", severity="high", source="api", actor="test"
    )
    facts = {"discovered_at": "2026-03-02T09:00:00-05:00", "affected_total": 700}
    changed = api["client"].patch(f"/api/v1/incidents/{incident_id}/facts", json=facts)
    assert changed.status_code == 200, changed.text
    return incident_id


def test_a_notice_recorded_as_sent_meets_its_obligation_and_moves_hhs(api, incident_with_facts) -> None:  # type: ignore[no-untyped-def]
    client, incident_id = api["client"], incident_with_facts
    obligations = client.get(f"/api/v1/incidents/{incident_id}/notices").json()["obligations"]
    [individuals] = [o for o in obligations if o["kind"] == "individuals"]
    [hhs] = [o for o in obligations if o["kind"] == "hhs"]
    assert individuals["status"] == "open" and hhs["due"] == "2026-05-01"
    url = f"/api/v1/incidents/{incident_id}/notices/{individuals['id']}/sent"
    body = {"on": "2026-03-20", "method": "first_class_mail", "count": 700}
    recorded = client.post(url, json=body)
    assert recorded.status_code == 200, recorded.text
    result = recorded.json()
    assert result["notice"]["kind"] == "individuals" and result["notice"]["count"] == 700
    assert result["notice"]["author"] == api["actor"]
    # 45 CFR 164.408(b): HHS is due contemporaneously with the individual notice once that went out
    assert {"kind": "hhs", "jurisdiction": "US", "old_due": "2026-05-01", "new_due": "2026-03-20"} in (
        result["deadline_changes"]
    )
    after = {
        o["kind"]: o for o in client.get(f"/api/v1/incidents/{incident_id}/notices").json()["obligations"]
    }
    assert after["individuals"]["status"] == "met" and after["individuals"]["sent_on"] == "2026-03-20"
    assert after["hhs"]["due"] == "2026-03-20"
    [event] = _events(client, incident_id, "notice.sent_recorded")
    assert event["actor"] == api["actor"]
    second = client.post(url, json=body)
    assert second.status_code == 409 and "already recorded" in second.json()["error"]["message"]
    future = client.post(
        f"/api/v1/incidents/{incident_id}/notices/{hhs['id']}/sent",
        json={"on": "2999-01-01", "method": "hhs_portal", "count": 1},
    )
    assert future.status_code == 409 and "in the future" in future.json()["error"]["message"]
    assert len(_events(client, incident_id, "notice.sent_recorded")) == 1  # the refusals wrote nothing


def test_the_evidence_package_download_verifies_offline(api, incident_with_facts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client, incident_id = api["client"], incident_with_facts
    response = client.get(f"/api/v1/incidents/{incident_id}/evidence")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert f"evidence-{incident_id}.zip" in response.headers["content-disposition"]
    assert zipfile.ZipFile(io.BytesIO(response.content)).testzip() is None
    package = tmp_path / "evidence.zip"
    package.write_bytes(response.content)
    verified = subprocess.run(
        [sys.executable, "-m", "irflow", "audit", "verify-package", str(package)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(package) as source, zipfile.ZipFile(tampered, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            target.writestr(item, data + b" " if item.filename.endswith(".json") else data)
    refused = subprocess.run(
        [sys.executable, "-m", "irflow", "audit", "verify-package", str(tampered)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0
    assert client.get("/api/v1/incidents/no-such-incident/evidence").status_code == 404


def test_the_openapi_describes_each_action_with_its_schemas_and_errors(api) -> None:  # type: ignore[no-untyped-def]
    spec = api["client"].get("/openapi.json").json()
    paths, schemas = spec["paths"], spec["components"]["schemas"]
    cancel = paths["/api/v1/runs/{run_id}/cancel"]["post"]
    assert cancel["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/RunCancel")
    assert cancel["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Cancelled")
    retry = paths["/api/v1/runs/{run_id}/retry"]["post"]
    assert "requestBody" not in retry
    assert retry["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/RetryStarted"
    )
    sent = paths["/api/v1/incidents/{incident_id}/notices/{obligation_id}/sent"]["post"]
    assert sent["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ObligationSent")
    assert set(schemas["ObligationSent"]["required"]) == {"on", "method", "count"}
    ok = sent["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ok.endswith("/NoticeRecordedView")
    evidence = paths["/api/v1/incidents/{incident_id}/evidence"]["get"]
    assert evidence["responses"]["200"]["content"]["application/zip"]["schema"]["format"] == "binary"
    for operation, errors in (
        (cancel, {"401", "403", "404", "409", "422"}),
        (retry, {"401", "403", "404", "409", "503"}),
        (sent, {"401", "403", "404", "409", "422"}),
        (evidence, {"401", "403", "404"}),
    ):
        assert errors <= set(operation["responses"])
        assert all(
            operation["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith(
                "/ErrorResponse"
            )
            for status in errors
        )
