"""Fixtures of the API tests.

A Microsoft Entra ID tenant on loopback for tests: OIDC metadata (v1.0 and v2.0) and JWKS over HTTP,
and access tokens signed with a generated RSA key, so the validator under test is the production code.

The documents have the shape of Microsoft's (issuer, jwks_uri, id_token_signing_alg_values_supported);
the v1.0 issuer is ``https://sts.windows.net/{tid}/`` as in a real tenant's v1.0 metadata.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

AUDIENCE = "api://irflow-test"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class OidcTenant:
    def __init__(self, tenant_id: str | None = None) -> None:
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.key = new_key()
        self.kid = uuid.uuid4().hex
        self.audience = AUDIENCE
        self.metadata_requests = 0
        tenant = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                body = tenant._document(self.path)
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.authority = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def issuer_v2(self) -> str:
        return f"{self.authority}/{self.tenant_id}/v2.0"

    @property
    def issuer_v1(self) -> str:
        return f"https://sts.windows.net/{self.tenant_id}/"

    def _document(self, path: str) -> dict[str, Any] | None:
        base = f"/{self.tenant_id}"
        if path == f"{base}/v2.0/.well-known/openid-configuration":
            self.metadata_requests += 1
            return self._metadata(self.issuer_v2, f"{self.authority}{base}/discovery/v2.0/keys")
        if path == f"{base}/.well-known/openid-configuration":
            return self._metadata(self.issuer_v1, f"{self.authority}{base}/discovery/keys")
        if path in (f"{base}/discovery/v2.0/keys", f"{base}/discovery/keys"):
            jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
            return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "kty": "RSA"}]}
        return None

    def _metadata(self, issuer: str, jwks_uri: str) -> dict[str, Any]:
        return {
            "issuer": issuer,
            "jwks_uri": jwks_uri,
            "authorization_endpoint": f"{self.authority}/{self.tenant_id}/oauth2/v2.0/authorize",
            "token_endpoint": f"{self.authority}/{self.tenant_id}/oauth2/v2.0/token",
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def token(
        self,
        *,
        oid: str | None = None,
        roles: list[str] | None = None,
        audience: str = AUDIENCE,
        issuer: str | None = None,
        tenant_id: str | None = None,
        expires_in: int = 3600,
        key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
        drop: tuple[str, ...] = (),
        **extra: Any,
    ) -> str:
        now = int(time.time())
        claims = {
            "aud": audience,
            "iss": issuer or self.issuer_v2,
            "iat": now - 60,
            "nbf": now - 60,
            "exp": now + expires_in,
            "oid": str(uuid.uuid4()) if oid is None else oid,
            "tid": tenant_id or self.tenant_id,
            "sub": "subject",
            "ver": "2.0",
            **extra,
        }
        if roles is not None:
            claims["roles"] = roles
        for name in drop:
            del claims[name]
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})

    def __enter__(self) -> OidcTenant:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def oidc() -> Iterator[OidcTenant]:
    with OidcTenant() as tenant:
        yield tenant


@pytest.fixture
def entra_env(oidc: OidcTenant, monkeypatch: pytest.MonkeyPatch) -> OidcTenant:
    """Settings pointing irflow at the loopback tenant."""
    monkeypatch.setenv("IRFLOW_ENTRA_TENANT_ID", oidc.tenant_id)
    monkeypatch.setenv("IRFLOW_ENTRA_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("IRFLOW_ENTRA_AUTHORITY", oidc.authority)
    return oidc


# A playbook whose only step waits for an approver (the repository's playbooks gate only late steps).
GATED_PLAYBOOK = """\
name: gated-capture
version: 1
description: Capture the accounts' state once an approver agrees.
inputs:
  storage_accounts: {type: "list[resource_id]"}
steps:
  - id: capture
    action: forensics.capture_resource_state
    requires_approval: true
    with: {resources: "{{ inputs.storage_accounts }}", phase: before}
"""


@pytest.fixture(scope="module")
def api_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The engine launched over a new SQLite database and the simulated tenant (one per test module)."""
    from pathlib import Path

    from pydantic import SecretStr

    from irflow.engine import runtime
    from irflow.settings import Settings
    from irflow.sim.models import Tenant
    from irflow.sim.server import SimServer

    tmp = tmp_path_factory.mktemp("api")
    playbooks = tmp / "playbooks"
    shutil.copytree(Path(__file__).resolve().parents[2] / "playbooks", playbooks)
    (playbooks / "gated-capture.yaml").write_text(GATED_PLAYBOOK)
    tenant = Tenant.demo()
    tenant.set_caller_origin(ip="192.0.2.10")  # irflow's egress IP, as a deployment configures it
    with SimServer(tenant) as sim:
        settings = Settings(
            egress_ips="192.0.2.10",
            database_url=f"sqlite:///{tmp / 'irflow.db'}",
            azure_cloud="custom",
            arm_endpoint=sim.endpoint,
            azure_ca_bundle=Path(sim.ca_file),
            azure_token=SecretStr(sim.token),
            queue_polling_interval=0.05,
            oncall_recipients="soc-oncall@example.org",
            playbooks_dir=playbooks,
        )
        svc = runtime.launch(settings)
        try:
            yield svc, sim
        finally:
            runtime.shutdown()


@pytest.fixture(scope="module")
def oidc_module() -> Iterator[OidcTenant]:
    with OidcTenant() as tenant:
        yield tenant
