"""Sentinel webhook test helpers: real-schema payloads, signatures, a local Entra ID tenant (OIDC + JWKS)."""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from irflow.notify.channels import sign

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_SUBSCRIPTION = "9b2f6c1d-4e8a-4f3b-a1c7-2d5e8f0a6b3c"
SECRET = "test-sentinel-secret-7f3a"
STORAGE = "/subscriptions/{sub}/resourceGroups/rg-phi-prod/providers/Microsoft.Storage/storageAccounts/{name}"


def incident(subscription_id: str = FIXTURE_SUBSCRIPTION, **changes: Any) -> dict[str, Any]:
    """The recorded Sentinel incident (Create), in another subscription, with *changes* to its properties."""
    text = (FIXTURES / "sentinel_incident_create.json").read_text()
    document = json.loads(text.replace(FIXTURE_SUBSCRIPTION, subscription_id))
    event = changes.pop("objectEventType", None)
    if event:
        document["objectEventType"] = event
    incident_name = changes.pop("incident_name", None)
    if incident_name:
        document["object"]["id"] = document["object"]["id"].rsplit("/", 1)[0] + f"/{incident_name}"
        document["object"]["name"] = incident_name
    document["object"]["properties"].update(changes)
    return document


def common_alert(subscription_id: str, targets: list[str], *, rule: str, condition: str = "Fired") -> dict:  # type: ignore[type-arg]
    """An Azure Monitor common alert schema payload (log search alert), as in Microsoft's samples."""
    alert_guid = str(uuid.uuid5(uuid.NAMESPACE_URL, rule + subscription_id))
    return {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": {
                "alertId": (
                    f"/subscriptions/{subscription_id}/providers/Microsoft.AlertsManagement/alerts/{alert_guid}"
                ),
                "alertRule": rule,
                "severity": "Sev1",
                "signalType": "Log",
                "monitorCondition": condition,
                "monitoringService": "Log Alerts V2",
                "alertTargetIDs": [t.lower() for t in targets],
                "configurationItems": [t.rsplit("/", 1)[-1] for t in targets],
                "originAlertId": alert_guid,
                "firedDateTime": "2026-03-01T03:00:14.3920176Z",
                "description": "",
                "essentialsVersion": "1.0",
                "alertContextVersion": "1.0",
            },
            "alertContext": {"properties": None, "conditionType": "LogQueryCriteria"},
            "customProperties": None,
        },
    }


def body_of(document: Any) -> bytes:
    return json.dumps(document).encode("utf-8")


def signed_headers(body: bytes, *, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    stamp = int(time.time() if at is None else at)
    return {"Content-Type": "application/json", "X-IRFlow-Signature": sign(secret, body, stamp)}


def variant(document: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(document)


@dataclass
class LocalTenant:
    """A Microsoft Entra tenant on loopback: both metadata documents and a JWKS, and tokens it signs."""

    authority: str
    tenant_id: str
    key: Any
    kid: str

    def token(self, *, oid: str, audience: str, expires_in: int = 3600, issuer: str | None = None,
              key: Any = None) -> str:  # fmt: skip
        now = int(time.time())
        claims = {
            "aud": audience,
            "iss": issuer or f"https://sts.windows.net/{self.tenant_id}/",
            "iat": now - 5,
            "nbf": now - 5,
            "exp": now + expires_in,
            "oid": oid,
            "tid": self.tenant_id,
            "sub": oid,
            "idtyp": "app",
        }
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": self.kid})


@contextmanager
def local_tenant() -> Iterator[LocalTenant]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = "test-key-1"
    tenant_id = str(uuid.uuid4())
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            documents = {
                f"/{tenant_id}/v2.0/.well-known/openid-configuration": {
                    "issuer": f"{base}/{tenant_id}/v2.0",
                    "jwks_uri": f"{base}/{tenant_id}/discovery/v2.0/keys",
                },
                f"/{tenant_id}/.well-known/openid-configuration": {
                    "issuer": f"https://sts.windows.net/{tenant_id}/",
                    "jwks_uri": f"{base}/{tenant_id}/discovery/keys",
                },
                f"/{tenant_id}/discovery/v2.0/keys": {"keys": [jwk]},
                f"/{tenant_id}/discovery/keys": {"keys": [jwk]},
            }
            document = documents.get(self.path)
            payload = json.dumps(document or {"error": "not found"}).encode()
            self.send_response(200 if document else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LocalTenant(f"http://127.0.0.1:{server.server_address[1]}", tenant_id, key, kid)
    finally:
        server.shutdown()
        server.server_close()
