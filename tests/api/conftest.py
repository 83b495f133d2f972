"""Fixtures of the API tests.

A Microsoft Entra ID tenant on loopback for tests: OIDC metadata (v1.0 and v2.0) and JWKS over HTTP,
and access tokens signed with a generated RSA key, so the validator under test is the production code.
It also answers the authorization code flow with PKCE as the v2.0 endpoints do: ``/authorize`` consents at
once (or denies, when told) and redirects back with a code or an error; ``/token`` redeems a code once, for
the client, redirect URI and code verifier it was issued to, with an access token and an ID token carrying
the nonce.

The documents have the shape of Microsoft's (issuer, jwks_uri, id_token_signing_alg_values_supported);
the v1.0 issuer is ``https://sts.windows.net/{tid}/`` as in a real tenant's v1.0 metadata.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from procs import sim_serve

AUDIENCE = "api://irflow-test"
DASHBOARD_CLIENT_ID = "5a0c5f37-0b35-4a0a-9b7e-1f6f4fd3d7a1"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class OidcTenant:
    def __init__(self, tenant_id: str | None = None, host: str = "127.0.0.1") -> None:
        """*host* names the loopback address in the tenant's URLs: "localhost" makes the tenant another site
        than a dashboard on 127.0.0.1 (as login.microsoftonline.com is), for the browser's SameSite rules."""
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.key = new_key()
        self.kid = uuid.uuid4().hex
        self.audience = AUDIENCE
        self.metadata_requests = 0
        # The authorization code flow: what the signed-in user gets, and knobs for the negative tests.
        self.client_id = DASHBOARD_CLIENT_ID
        self.client_secret: str | None = None
        self.consent = True
        self.user_oid = str(uuid.uuid4())
        self.user_roles: list[str] | None = ["irflow.approver"]
        self.access_audience = AUDIENCE
        self.id_nonce: str | None = None  # None: the nonce of the authorize request
        self.codes: dict[str, dict[str, str]] = {}
        self.token_endpoint: str | None = None  # None: its own /token
        self.token_requests = 0
        tenant = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if self.path != f"/{tenant.tenant_id}/oauth2/v2.0/token":
                    self._json(404, {"error": "not_found"})
                    return
                self._json(*tenant._redeem(form))

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                parts = urlsplit(self.path)
                if parts.path == f"/{tenant.tenant_id}/oauth2/v2.0/authorize":
                    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                    status, location = tenant._authorize(query)
                    self.send_response(status)
                    if location:
                        self.send_header("Location", location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
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
        self.authority = f"http://{host}:{self._server.server_address[1]}"
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

    def _authorize(self, query: dict[str, str]) -> tuple[int, str | None]:
        """Microsoft's authorize endpoint, consenting at once: 302 back with a code (or an error)."""
        redirect_uri = query.get("redirect_uri", "")
        well_formed = (
            query.get("client_id") == self.client_id
            and query.get("response_type") == "code"
            and query.get("code_challenge_method") == "S256"
            and len(query.get("code_challenge", "")) == 43
            and "openid" in query.get("scope", "").split()
            and redirect_uri.startswith(("https://", "http://127.0.0.1", "http://localhost"))
        )
        if not well_formed:
            return 400, None
        state = query.get("state", "")
        if not self.consent:
            back = {"error": "access_denied", "error_description": "AADSTS65004: User declined to consent"}
            return 302, f"{redirect_uri}?{urlencode({**back, 'state': state})}"
        code = secrets.token_urlsafe(48)
        self.codes[code] = {
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "challenge": query["code_challenge"],
            "nonce": query.get("nonce", ""),
            "scope": query.get("scope", ""),
        }
        return 302, f"{redirect_uri}?{urlencode({'code': code, 'state': state})}"

    def _redeem(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Microsoft's token endpoint for grant_type=authorization_code: each code once (AADSTS54005)."""
        self.token_requests += 1
        if form.get("grant_type") != "authorization_code":
            return 400, {"error": "unsupported_grant_type"}
        if self.client_secret is not None and form.get("client_secret") != self.client_secret:
            return 401, {"error": "invalid_client"}
        issued = self.codes.pop(form.get("code", ""), None)
        if issued is None:
            return 400, {"error": "invalid_grant", "error_description": "AADSTS54005: code already redeemed"}
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if (
            form.get("client_id") != issued["client_id"]
            or form.get("redirect_uri") != issued["redirect_uri"]
            or challenge != issued["challenge"]
        ):
            return 400, {"error": "invalid_grant", "error_description": "AADSTS501481: code verifier"}
        nonce = issued["nonce"] if self.id_nonce is None else self.id_nonce
        return 200, {
            "token_type": "Bearer",
            "scope": issued["scope"],
            "expires_in": 3600,
            "access_token": self.token(
                oid=self.user_oid, roles=self.user_roles, audience=self.access_audience
            ),
            "id_token": self.token(oid=self.user_oid, audience=self.client_id, nonce=nonce, name="Test User"),
        }

    def _metadata(self, issuer: str, jwks_uri: str) -> dict[str, Any]:
        return {
            "issuer": issuer,
            "jwks_uri": jwks_uri,
            "authorization_endpoint": f"{self.authority}/{self.tenant_id}/oauth2/v2.0/authorize",
            "token_endpoint": self.token_endpoint or f"{self.authority}/{self.tenant_id}/oauth2/v2.0/token",
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


@pytest.fixture
def sim_process() -> Iterator[dict[str, Any]]:
    """``irflow sim serve`` as a real process, 20 ms per Azure call, irflow's calls coming from its egress IP;
    yields its JSON start line."""
    with sim_serve(latency_ms=20) as sim:
        yield sim.info


@pytest.fixture(scope="module")
def oidc_module() -> Iterator[OidcTenant]:
    with OidcTenant() as tenant:
        yield tenant


@pytest.fixture(scope="module")
def oidc_cross_site() -> Iterator[OidcTenant]:
    """The loopback tenant as another site than a dashboard on 127.0.0.1 (it names itself localhost), as
    login.microsoftonline.com is: the way back from its sign-in page is a cross-site navigation."""
    with OidcTenant(host="localhost") as tenant:
        yield tenant
