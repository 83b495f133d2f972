"""Sentinel deliveries against real processes: ``irflow serve`` and ``irflow sim serve`` on loopback."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from procs import irflow_env, start_serve
from sentinel_helpers import SECRET, body_of, incident, signed_headers
from sqlalchemy import func, select

from irflow.store.db import Database
from irflow.store.models import AuditEvent, Incident, Run

pytestmark = pytest.mark.slow


def _deliver(base: str, document: dict[str, Any], **header_args: Any) -> httpx.Response:
    document = {**document, "eventUniqueId": str(uuid.uuid4())}  # each delivery is its own event
    body = body_of(document)
    return httpx.post(
        f"{base}/api/v1/webhooks/sentinel",
        content=body,
        headers=signed_headers(body, **header_args),
        timeout=60,
    )


def _wait_for_run(db: Database, run_id: str, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    status = "unknown"
    while time.monotonic() < deadline:
        with db.transaction() as session:
            run = session.get(Run, run_id)
            status = run.status if run else "missing"
        if status in ("succeeded", "failed", "cancelled"):
            return status
        time.sleep(0.25)
    raise AssertionError(f"run {run_id} is still {status}")


def _sim_writes(sim: dict[str, Any]) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{sim['endpoint']}/_sim/journal",
        params={"writes": "true"},
        headers={"Authorization": f"Bearer {sim['token']}"},
        verify=sim["ca_file"],
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()


def _incident_count(db: Database, external_ref: str | None = None) -> int:
    with db.transaction() as session:
        query = select(func.count()).select_from(Incident)
        if external_ref is not None:
            query = query.where(Incident.external_ref == external_ref)
        return session.scalar(query) or 0


def test_a_sentinel_delivery_contains_on_its_own_and_storms_and_forgeries_change_nothing(
    database_url: str, sim_process: dict[str, Any], tmp_path: Path
) -> None:
    sub = sim_process["subscription_id"]
    env = {**irflow_env(sim_process, database_url), "IRFLOW_SENTINEL_SECRET": SECRET}
    server = start_serve(env, tmp_path, log=tmp_path / "serve.log")
    base = server.base
    db = Database(database_url)
    try:
        # 1. A delivery in Sentinel's schema starts containment by itself, and the containment completes.
        first = _deliver(base, incident(sub))
        assert first.status_code == 202, first.text
        answer = first.json()
        assert answer["deduplicated"] is False and answer["run_id"]
        assert _wait_for_run(db, answer["run_id"]) == "succeeded"
        patched = {
            w["path"].split("?")[0].rsplit("/", 1)[-1]
            for w in _sim_writes(sim_process)
            if w["method"] == "PATCH"
        }
        assert {"phipatientexports", "phiimaging"} <= patched

        # 2. Fifty simultaneous deliveries of one new incident: one incident, one run.
        storm = incident(sub, incident_name=str(uuid.uuid4()), incidentNumber=4128)
        barrier = threading.Barrier(50)
        answers: list[httpx.Response] = []
        lock = threading.Lock()

        def deliver(index: int) -> None:
            barrier.wait()
            response = _deliver(base, storm, at=time.time() - index)
            with lock:
                answers.append(response)

        threads = [threading.Thread(target=deliver, args=(i,)) for i in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=180)
        assert [r.status_code for r in answers] == [202] * 50, [
            r.text for r in answers if r.status_code != 202
        ]
        bodies = [r.json() for r in answers]
        assert len({b["incident_id"] for b in bodies}) == 1
        assert [b["deduplicated"] for b in bodies].count(False) == 1
        storm_ref = storm["object"]["id"].lower()
        assert _incident_count(db, storm_ref) == 1
        with db.transaction() as session:
            runs = list(
                session.execute(
                    select(Run.id)
                    .join(Incident, Incident.id == Run.incident_id)
                    .where(Incident.external_ref == storm_ref)
                ).scalars()
            )
        assert len(runs) == 1
        assert _wait_for_run(db, runs[0]) == "succeeded"

        # 3. Forged, replayed, stale, oversized and malformed deliveries: 4xx, nothing created.
        before = _incident_count(db)
        fresh = incident(sub, incident_name=str(uuid.uuid4()))
        fresh_body = body_of(fresh)
        replay_headers = signed_headers(body_of(incident(sub)))
        url = f"{base}/api/v1/webhooks/sentinel"
        attempts = {
            "forged": httpx.post(url, content=fresh_body, headers=signed_headers(fresh_body, secret="guess")),
            "stale": httpx.post(
                url, content=fresh_body, headers=signed_headers(fresh_body, at=time.time() - 600)
            ),
            "replayed": _replay_twice(url, body_of(incident(sub)), replay_headers),
            "oversized": httpx.post(
                url, content=b'{"a": "' + b"x" * (1024 * 1024) + b'"}', headers=signed_headers(b"{}")
            ),
            "malformed": httpx.post(
                url, content=b'{"objectSchemaType": ', headers=signed_headers(b'{"objectSchemaType": ')
            ),
            "wrong schema": httpx.post(url, content=b'{"a": 1}', headers=signed_headers(b'{"a": 1}')),
            "unsigned": httpx.post(url, content=fresh_body, headers={"Content-Type": "application/json"}),
        }
        for name, response in attempts.items():
            assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
            assert set(response.json()) == {"error"}, name
        assert _incident_count(db) == before
        assert _incident_count(db, fresh["object"]["id"].lower()) == 0
        with db.transaction() as session:
            refused = session.scalar(
                select(func.count()).where(
                    AuditEvent.type.in_(("sentinel.delivery_rejected", "api.request_rejected"))
                )
            )
        assert refused == len(attempts)
    finally:
        server.stop()
        db.dispose()


def _replay_twice(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    """The same signed request sent twice: the copy is the replay (the original attaches, deduplicated)."""
    original = httpx.post(url, content=body, headers=headers)
    assert original.status_code == 202 and original.json()["deduplicated"] is True
    return httpx.post(url, content=body, headers=headers)
