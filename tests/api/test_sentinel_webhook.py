"""The Sentinel webhook in process: authentication, limits, idempotent intake, routing and escalation."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sentinel_helpers import (
    SECRET,
    STORAGE,
    body_of,
    common_alert,
    incident,
    signed_headers,
)
from sqlalchemy import func, select

from irflow.api.app import create_app
from irflow.api.entra import EntraValidator
from irflow.api.routes import webhooks
from irflow.engine import runtime
from irflow.engine.runs import submit_run
from irflow.engine.sentinel import receive
from irflow.engine.sentinel_claims import claims_of
from irflow.engine.sentinel_payload import parse_delivery
from irflow.settings import Settings
from irflow.sim.models import Tenant
from irflow.sim.server import SimServer
from irflow.store.models import AuditEvent, Incident, Notification, Run

URL = "/api/v1/webhooks/sentinel"
PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
ONCALL = "soc-oncall@example.org"
# irflow's egress IP, configured as a deployment would: the strict tenant's firewalls see irflow come from it.
IRFLOW_EGRESS_IP = "192.0.2.10"


@pytest.fixture
def sim() -> Iterator[SimServer]:
    tenant = Tenant.demo()
    tenant.set_caller_origin(ip=IRFLOW_EGRESS_IP)
    with SimServer(tenant) as server:
        yield server


def _settings(database_url: str, sim: SimServer, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "azure_cloud": "custom",
        "arm_endpoint": sim.endpoint,
        "azure_ca_bundle": Path(sim.ca_file),
        "azure_token": SecretStr(sim.token),
        "queue_polling_interval": 0.05,
        "oncall_recipients": ONCALL,
        "playbooks_dir": PLAYBOOKS,
        "sentinel_secret": SecretStr(SECRET),
        "egress_ips": IRFLOW_EGRESS_IP,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def svc(database_url: str, sim: SimServer) -> Iterator[runtime.Services]:
    services = runtime.launch(_settings(database_url, sim))
    yield services
    runtime.shutdown()


@pytest.fixture
def client(svc: runtime.Services) -> Iterator[TestClient]:
    webhooks._replays = webhooks.ReplayGuard()
    with TestClient(create_app(svc, worker=True)) as test_client:
        yield test_client


def _subscription(sim: SimServer) -> str:
    assert sim.subscription_id is not None
    return sim.subscription_id


def _post(client: TestClient, document: object) -> object:
    body = body_of(document)
    return client.post(URL, content=body, headers=signed_headers(body))


def _counts(svc: runtime.Services) -> dict[str, int]:
    with svc.db.transaction() as session:
        return {
            "incidents": session.scalar(select(func.count()).select_from(Incident)) or 0,
            "runs": session.scalar(select(func.count()).select_from(Run)) or 0,
            "notifications": session.scalar(select(func.count()).select_from(Notification)) or 0,
        }


def _audit_types(svc: runtime.Services) -> list[str]:
    with svc.db.transaction() as session:
        return list(session.execute(select(AuditEvent.type).order_by(AuditEvent.seq)).scalars())


def _wait_for_run(svc: runtime.Services, run_id: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with svc.db.transaction() as session:
            status = session.get(Run, run_id).status  # type: ignore[union-attr]
        if status in ("succeeded", "failed", "cancelled"):
            return status
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} still {status}")


def test_a_signed_sentinel_incident_starts_containment_and_redeliveries_attach(
    client: TestClient, svc: runtime.Services, sim: SimServer
) -> None:
    sub = _subscription(sim)
    first = _post(client, incident(sub))
    assert first.status_code == 202, first.text
    answer = first.json()
    assert answer["deduplicated"] is False and answer["run_id"]
    assert _wait_for_run(svc, answer["run_id"]) == "succeeded"
    with svc.db.transaction() as session:
        row = session.get(Incident, answer["incident_id"])
        assert row is not None and row.source == "sentinel"
        assert row.title == "Sentinel incident 4127: Mass blob download with a SAS from an unfamiliar IP"
        run = session.get(Run, answer["run_id"])
        assert run is not None and run.playbook_name == "storage-sas-exfiltration"
        assert run.params["storage_accounts"] == [
            STORAGE.format(sub=sub, name="phipatientexports"),
            STORAGE.format(sub=sub, name="phiimaging"),
        ]

    again = _post(client, incident(sub))
    update = _post(client, incident(sub, objectEventType="Update", status="Active"))
    for response in (again, update):
        assert response.status_code == 202
        assert response.json() == {**answer, "deduplicated": True}
    assert _counts(svc)["incidents"] == 1 and _counts(svc)["runs"] == 1
    types = _audit_types(svc)
    assert types.count("sentinel.received") == 1 and types.count("sentinel.incident_updated") == 1


def test_fifty_simultaneous_deliveries_make_one_incident_and_one_run(
    svc: runtime.Services, sim: SimServer
) -> None:
    delivery = parse_delivery(body_of(incident(_subscription(sim), incident_name="race-50")))
    barrier = threading.Barrier(50)
    results: list[object] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        barrier.wait()
        try:
            results.append(receive(svc, delivery, actor="sentinel:test"))
        except BaseException as exc:  # noqa: BLE001  (surfaced below)
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(results) == 50
    assert len({r.incident_id for r in results}) == 1  # type: ignore[attr-defined]
    assert [r.deduplicated for r in results].count(False) == 1  # type: ignore[attr-defined]
    counts = _counts(svc)
    assert counts["incidents"] == 1 and counts["runs"] == 1
    started = next(r for r in results if not r.deduplicated)  # type: ignore[attr-defined]
    assert _wait_for_run(svc, started.run_id) == "succeeded"  # type: ignore[attr-defined]


def test_an_incident_no_rule_matches_is_recorded_and_escalated(
    client: TestClient, svc: runtime.Services, sim: SimServer
) -> None:
    response = _post(client, incident(_subscription(sim), title="Impossible travel to a printer"))
    assert response.status_code == 202
    assert response.json()["run_id"] is None
    with svc.db.transaction() as session:
        note = session.execute(select(Notification)).scalar_one()
        assert note.template == "internal-escalation.txt" and note.channel == "email"
        assert note.incident_id == response.json()["incident_id"]
        assert "No playbook matches" in note.body
    assert _counts(svc) == {"incidents": 1, "runs": 0, "notifications": 1}
    received = _received_payload(svc)
    assert received["routed"] is False


def test_a_rule_without_auto_start_waits_for_a_responder(
    client: TestClient, svc: runtime.Services, sim: SimServer
) -> None:
    response = _post(client, incident(_subscription(sim), title="Anomalous sign-in from a new country"))
    assert response.status_code == 202 and response.json()["run_id"] is None
    received = _received_payload(svc)
    assert received["playbook"] == "compromised-identity" and received["auto_start"] is False
    assert received["params"] == {"users": ["6b7c8d9e-0f1a-4b2c-8d3e-4f5a6b7c8d9e"]}
    assert _counts(svc) == {"incidents": 1, "runs": 0, "notifications": 1}


def test_a_remembered_re_delivery_is_answered_on_the_event_loop(
    client: TestClient, svc: runtime.Services, sim: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import starlette.concurrency

    document = incident(_subscription(sim), title="Anomalous sign-in from a new country")

    def delivery(**extra: object) -> dict[str, object]:  # each one signed anew: another body
        return {**document, "eventUniqueId": str(uuid.uuid4()), **extra}

    first = _post(client, delivery())
    assert first.status_code == 202 and first.json()["deduplicated"] is False
    threaded: list[str] = []
    to_thread = starlette.concurrency.run_in_threadpool

    async def counted(func: Any, *args: Any, **kwargs: Any) -> Any:
        threaded.append(func.__name__)
        return await to_thread(func, *args, **kwargs)

    monkeypatch.setattr(starlette.concurrency, "run_in_threadpool", counted)
    again = _post(client, delivery())
    assert again.status_code == 202 and again.json() == {**first.json(), "deduplicated": True}
    assert threaded == []  # signed, small, remembered: no worker thread
    # A body past the inline limit is authenticated and parsed in a worker thread, with the same answer.
    large = _post(client, delivery(padding=["x" * 20_000] * (webhooks.INLINE_BODY_BYTES // 20_000 + 1)))
    assert large.status_code == 202 and large.json() == again.json()
    assert threaded == ["_accept"]
    body = body_of(delivery())
    forged = client.post(URL, content=body, headers=signed_headers(body, secret="not-the-secret"))
    assert forged.status_code == 401 and threaded == ["_accept", "_audit_rejection"]
    assert _counts(svc) == {"incidents": 1, "runs": 0, "notifications": 1}
    assert _audit_types(svc).count("sentinel.delivery_rejected") == 1


def test_an_azure_monitor_common_alert_routes_by_its_targets(
    client: TestClient, svc: runtime.Services, sim: SimServer
) -> None:
    sub = _subscription(sim)
    target = STORAGE.format(sub=sub, name="phiimaging")
    fired = common_alert(sub, [target], rule="Anonymous reads of PHI containers")
    response = _post(client, fired)
    assert response.status_code == 202, response.text
    answer = response.json()
    with svc.db.transaction() as session:
        run = session.get(Run, answer["run_id"])
        assert run is not None and run.playbook_name == "public-blob-exposure"
        assert run.params["storage_accounts"] == [target]
    resolved = _post(
        client, common_alert(sub, [target], rule="Anonymous reads of PHI containers", condition="Resolved")
    )
    assert resolved.json() == {**answer, "deduplicated": True}
    assert _wait_for_run(svc, answer["run_id"]) == "succeeded"


def _received_payload(svc: runtime.Services) -> dict[str, object]:
    with svc.db.transaction() as session:
        payload = session.execute(
            select(AuditEvent.payload).where(AuditEvent.type == "sentinel.received")
        ).scalar_one()
    return json.loads(payload)


# -- refusals: a 4xx, an audit event of the refusal, nothing else ----------------------------------------


def _refusals(client: TestClient, sub: str) -> list[tuple[str, int, str, bytes, dict[str, str]]]:
    good = body_of(incident(sub))
    deep = b'{"objectSchemaType": ' + b"[" * 40 + b"]" * 40 + b"}"
    long_title = body_of(incident(sub, title="x" * 40_000))
    headers = signed_headers(good)
    return [
        ("forged", 401, "bad_signature", good, signed_headers(good, secret="not-the-secret")),
        ("tampered", 401, "bad_signature", good.replace(b"High", b"Low"), headers),
        ("stale", 401, "stale_signature", good, signed_headers(good, at=time.time() - 301)),
        ("future", 401, "stale_signature", good, signed_headers(good, at=time.time() + 360)),
        ("unsigned", 401, "unauthenticated", good, {"Content-Type": "application/json"}),
        ("garbled header", 401, "bad_signature", good, {**headers, "X-IRFlow-Signature": "v1=abc"}),
        ("bearer without Entra", 401, "unauthenticated", good, {**headers, "Authorization": "Bearer x.y.z"}),
        ("oversized", 413, "body_too_large", b"{" + b" " * (1024 * 1024) + b"}", {}),
        ("not JSON", 400, "invalid_json", b"{not json", {}),
        ("too deep", 400, "too_deep", deep, {}),
        ("string too long", 422, "field_too_long", long_title, {}),
        ("wrong schema", 422, "unsupported_schema", b'{"hello": "world"}', {}),
        ("missing fields", 422, "invalid_payload", body_of({"objectSchemaType": "Incident"}), {}),
        ("duplicate keys", 400, "invalid_json", b'{"schemaId": "a", "schemaId": "b"}', {}),
        (
            "not an incident id",
            422,
            "invalid_payload",
            body_of(_with_id(incident(sub), "/subscriptions/x")),
            {},
        ),
        ("a list", 422, "invalid_payload", b"[1, 2]", {}),
    ]


def _with_id(document: dict, arm_id: str) -> dict:  # type: ignore[type-arg]
    document["object"]["id"] = arm_id
    return document


def test_every_bad_delivery_gets_a_4xx_and_writes_only_its_refusal(
    client: TestClient, svc: runtime.Services, sim: SimServer
) -> None:
    cases = _refusals(client, _subscription(sim))
    for name, status, code, body, headers in cases:
        sent_headers = headers or signed_headers(body)
        response = client.post(URL, content=body, headers=sent_headers)
        assert response.status_code == status, (name, response.text)
        assert response.json()["error"]["code"] == code, name
        assert set(response.json()) == {"error"}
    # a replay of an accepted delivery is refused too
    body = body_of(incident(_subscription(sim), title="Impossible travel to a printer"))
    headers = signed_headers(body)
    assert client.post(URL, content=body, headers=headers).status_code == 202
    replay = client.post(URL, content=body, headers=headers)
    assert replay.status_code == 401 and replay.json()["error"]["code"] == "replayed_signature"
    assert (
        client.post(URL, content=body, headers={**headers, "Content-Type": "text/plain"}).status_code == 415
    )

    assert _counts(svc) == {"incidents": 1, "runs": 0, "notifications": 1}
    types = _audit_types(svc)
    # limits on size, nesting, JSON and media type are the API's request guard's (api.request_rejected)
    assert types.count("sentinel.delivery_rejected") + types.count("api.request_rejected") == len(cases) + 2
    assert set(types) == {
        "sentinel.delivery_rejected",
        "api.request_rejected",
        "incident.opened",
        "sentinel.received",
        "notification.queued",
    }
    with svc.db.transaction() as session:
        payloads = session.execute(
            select(AuditEvent.payload).where(AuditEvent.type.like("%rejected"))
        ).scalars()
        assert not any("Mass blob download" in p or "etl-runner" in p for p in payloads)


def test_the_webhook_refuses_everything_when_no_authentication_is_configured(
    database_url: str, sim: SimServer
) -> None:
    services = runtime.launch(_settings(database_url, sim, sentinel_secret=None))
    try:
        with TestClient(create_app(services, worker=True)) as test_client:
            body = body_of(incident(_subscription(sim)))
            response = test_client.post(URL, content=body, headers=signed_headers(body))
            assert response.status_code == 403
            assert response.json()["error"]["code"] == "webhook_not_configured"
        assert _counts(services)["incidents"] == 0
    finally:
        runtime.shutdown()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_managed_identity_token_is_the_other_way_in(
    database_url: str, sim: SimServer, oidc: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    caller = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
    audience = oidc.audience
    monkeypatch.setenv("IRFLOW_SENTINEL_CALLERS", f"{caller.upper()}, 11111111-2222-4333-8444-555555555555")
    settings = _settings(
        database_url,
        sim,
        sentinel_secret=None,
        entra_tenant_id=oidc.tenant_id,
        entra_audience=audience,
        entra_authority=oidc.authority,
    )
    services = runtime.launch(settings)
    try:
        entra = EntraValidator.from_settings(settings)
        with TestClient(create_app(services, entra=entra, worker=True)) as test_client:
            body = body_of(incident(_subscription(sim), title="Impossible travel to a printer"))

            def post(token: str) -> object:
                headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
                return test_client.post(URL, content=body, headers=headers)

            refused = {
                "another identity": (post(oidc.token(oid=str(uuid.uuid4()))), 403),
                "wrong audience": (post(oidc.token(oid=caller, audience="api://other")), 401),
                "wrong issuer": (post(oidc.token(oid=caller, issuer="https://evil/")), 401),
                "expired": (post(oidc.token(oid=caller, expires_in=-600)), 401),
                "foreign key": (post(oidc.token(oid=caller, key=_other_key())), 401),
                "another tenant": (post(oidc.token(oid=caller, tenant_id=str(uuid.uuid4()))), 401),
                "not a JWT": (post("x.y.z"), 401),
            }
            for name, (response, status) in refused.items():
                assert response.status_code == status, (name, response.text)  # type: ignore[attr-defined]
            assert _counts(services)["incidents"] == 0
            # A managed identity's token is a v1.0 access token (issuer https://sts.windows.net/{tid}/).
            accepted = post(oidc.token(oid=caller, issuer=oidc.issuer_v1))
            assert accepted.status_code == 202, accepted.text  # type: ignore[attr-defined]
            signed = test_client.post(URL, content=body, headers=signed_headers(body))
            assert signed.status_code == 401  # no secret configured: signatures are not a way in
        with services.db.transaction() as session:
            actors = set(session.execute(select(AuditEvent.actor)).scalars())
        assert f"sentinel:{caller}" in actors
    finally:
        runtime.shutdown()


def _other_key() -> object:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_a_re_delivery_reports_the_run_the_intake_started_from_memory_and_from_the_database(
    client: TestClient, svc: runtime.Services, sim: SimServer
) -> None:
    """Re-deliveries answered from this process's claim memory and from the database say the same: the
    incident and the run the intake started, not a run a responder started later."""
    document = incident(_subscription(sim), title="Mass blob download with a SAS")
    first = _post(client, document).json()  # type: ignore[attr-defined]
    assert _wait_for_run(svc, first["run_id"]) == "succeeded"
    with svc.db.read() as session:
        intake_run = session.get(Run, first["run_id"])
        assert intake_run is not None
        playbook = intake_run.playbook_name
        params = {name: value for name, value in intake_run.params.items() if value not in ("", None)}
    later = submit_run(
        svc, playbook, params, actor="responder", dry_run=True, incident_id=first["incident_id"]
    )
    assert later.run_id != first["run_id"]
    _wait_for_run(svc, later.run_id)
    expected = {"incident_id": first["incident_id"], "run_id": first["run_id"], "deduplicated": True}
    assert claims_of(svc.db).get(parse_delivery(body_of(document)).external_ref) is not None
    assert _post(client, {**document, "eventUniqueId": str(uuid.uuid4())}).json() == expected  # type: ignore[attr-defined]
    claims_of(svc.db).clear()
    assert _post(client, {**document, "eventUniqueId": str(uuid.uuid4())}).json() == expected  # type: ignore[attr-defined]
    assert claims_of(svc.db).get(parse_delivery(body_of(document)).external_ref) is not None
    assert _counts(svc)["runs"] == 2
