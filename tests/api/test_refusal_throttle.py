"""Refused anonymous requests are rate-limited per client IP: 429 with Retry-After, nothing audited."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select

from irflow.api.app import create_app
from irflow.api.throttle import RefusalLimiter
from irflow.engine.services.tokens import TokenCreate, create_token
from irflow.store.models import AuditEvent


def test_an_empty_bucket_refuses_until_it_refills() -> None:
    limiter = RefusalLimiter(burst=3, rate=0.001)
    for _ in range(3):
        assert limiter.retry_after("198.51.100.7") is None
        limiter.refused("198.51.100.7")
    wait = limiter.retry_after("198.51.100.7")
    assert wait is not None and wait >= 900  # one token at 0.001/s
    assert limiter.retry_after("198.51.100.8") is None  # another address has its own bucket


def test_the_limiter_forgets_the_oldest_addresses_first() -> None:
    limiter = RefusalLimiter(burst=1, rate=0.001, capacity=2)
    for ip in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        limiter.refused(ip)
    assert limiter.retry_after("192.0.2.1") is None
    assert limiter.retry_after("192.0.2.3") is not None


def _events(svc: Any) -> int:
    with svc.db.transaction() as session:
        return session.execute(select(func.count()).select_from(AuditEvent)).scalar_one()


def test_bad_tokens_from_one_address_end_in_429_and_a_good_token_then_waits_too(api_engine) -> None:  # type: ignore[no-untyped-def]
    svc, _sim = api_engine
    good = create_token(svc.db, TokenCreate(name="throttle", role="viewer"), actor="test").token
    app = create_app(svc, worker=True, refusals=RefusalLimiter(burst=5, rate=0.01))
    with TestClient(app) as client:
        assert client.get("/api/v1/incidents", headers={"Authorization": f"Bearer {good}"}).status_code == 200
        statuses = [
            client.get("/api/v1/incidents", headers={"Authorization": "Bearer irf_forged"}).status_code
            for _ in range(5)
        ]
        assert statuses == [401] * 5
        before = _events(svc)
        refused = client.post("/api/v1/incidents", json={}, headers={"Authorization": "Bearer irf_forged"})
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "too_many_refusals"
        assert int(refused.headers["Retry-After"]) >= 1
        # the same address with a good token waits as well: the token is not even looked up
        later = client.get("/api/v1/incidents", headers={"Authorization": f"Bearer {good}"})
        assert later.status_code == 429
        # unsigned webhook deliveries from it are refused the same way, without an audit record each
        webhook = client.post("/api/v1/webhooks/sentinel", json={"x": 1})
        assert webhook.status_code == 429
        assert _events(svc) == before
        assert client.get("/healthz").status_code == 200  # unauthenticated routes are not limited


def test_forged_webhook_deliveries_spend_the_bucket(api_engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    svc, _sim = api_engine
    app = create_app(svc, worker=True, refusals=RefusalLimiter(burst=2, rate=0.01))
    settings = svc.settings.model_copy(update={"sentinel_secret": SecretStr("s" * 32)})
    monkeypatch.setattr(svc, "settings", settings)
    with TestClient(app) as client:
        headers = {"Content-Type": "application/json", "X-IRFlow-Signature": "t=1,v1=00"}
        statuses = [
            client.post("/api/v1/webhooks/sentinel", content=b"{}", headers=headers).status_code
            for _ in range(3)
        ]
    assert statuses == [401, 401, 429]
