"""Microsoft Graph users and service principals through an azure-core pipeline, as the product calls Graph."""

from __future__ import annotations

import json

import pytest
from azure.core import PipelineClient
from azure.core.pipeline.policies import BearerTokenCredentialPolicy, RetryPolicy
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest
from sim_helpers import NOW, Sim

from irflow.azure.clients import StaticTokenCredential
from irflow.clock import FrozenClock
from irflow.sim import Tenant

AVERY = "7f2a4c6e-8b0d-4e2f-a4c6-e8b0d2f4a6c8"  # keyvault-overbroad-access
SQL_IDENTITY = "4b7d2e19-3a6c-4f8e-9d15-7c2a0e6b8f31"


@pytest.fixture
def tenant(clock: FrozenClock) -> Tenant:
    return Tenant.from_scenario("keyvault-overbroad-access", clock=clock)


def graph(sim: Sim, token: str | None = None) -> PipelineClient:
    policies = [
        RetryPolicy(retry_total=0),
        BearerTokenCredentialPolicy(
            StaticTokenCredential(token or sim.tenant.token), "https://graph.microsoft.com/.default"
        ),
    ]
    return PipelineClient(
        base_url=sim.endpoint, policies=policies, transport=RequestsTransport(connection_verify=sim.verify)
    )


def send(sim: Sim, method: str, path: str, body: dict | None = None, token: str | None = None):  # type: ignore[no-untyped-def]
    request = HttpRequest(method, f"{sim.endpoint}{path}", json=body)
    return graph(sim, token).send_request(request)


def test_get_user_and_revoke_sessions(sim: Sim) -> None:
    response = send(sim, "GET", f"/v1.0/users/{AVERY}")
    assert response.status_code == 200
    user = response.json()
    assert user["userPrincipalName"] == "avery@tailspin.example" and user["accountEnabled"] is True
    assert user["signInSessionsValidFromDateTime"] is None
    assert send(sim, "GET", "/v1.0/users/AVERY@tailspin.example").json()["id"] == AVERY  # by UPN too

    response = send(sim, "POST", f"/v1.0/users/{AVERY}/revokeSignInSessions")
    assert response.status_code == 200
    assert response.json()["value"] is True
    assert sim.tenant.directory.user(AVERY).revocations == [NOW]
    assert (
        send(sim, "GET", f"/v1.0/users/{AVERY}").json()["signInSessionsValidFromDateTime"]
        == "2026-03-02T09:30:00Z"
    )
    writes = sim.tenant.journal.writes()
    assert [(e.route, e.status) for e in writes] == [("graph.users.revoke_sign_in_sessions", 200)]


def test_disable_service_principal_and_user(sim: Sim) -> None:
    assert send(sim, "GET", f"/v1.0/servicePrincipals/{SQL_IDENTITY}").json()["accountEnabled"] is True
    response = send(sim, "PATCH", f"/v1.0/servicePrincipals/{SQL_IDENTITY}", {"accountEnabled": False})
    assert response.status_code == 204 and not response.content
    principal = send(sim, "GET", f"/v1.0/servicePrincipals/{SQL_IDENTITY}").json()
    assert principal["accountEnabled"] is False and principal["servicePrincipalType"] == "ManagedIdentity"
    # Applying it again is the same state.
    assert (
        send(sim, "PATCH", f"/v1.0/servicePrincipals/{SQL_IDENTITY}", {"accountEnabled": False}).status_code
        == 204
    )
    assert send(sim, "PATCH", f"/v1.0/users/{AVERY}", {"accountEnabled": False}).status_code == 204
    assert sim.tenant.directory.user(AVERY).account_enabled is False

    sim.tenant.reset()
    assert sim.tenant.directory.service_principal(SQL_IDENTITY).account_enabled is True


def test_graph_errors(sim: Sim) -> None:
    missing = send(sim, "GET", "/v1.0/users/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "Request_ResourceNotFound"
    assert "innerError" in missing.json()["error"]
    assert send(sim, "POST", "/v1.0/users/nobody@x.example/revokeSignInSessions").status_code == 404
    bad = send(sim, "PATCH", f"/v1.0/servicePrincipals/{SQL_IDENTITY}", {"displayName": "x"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "Request_BadRequest"
    assert send(sim, "GET", "/v1.0/groups/x").status_code == 400
    assert send(sim, "GET", f"/v1.0/users/{AVERY}", token="wrong").status_code == 401

    sim.tenant.deny("microsoft.directory/users/invalidateAllRefreshTokens", f"/users/{AVERY}")
    denied = send(sim, "POST", f"/v1.0/users/{AVERY}/revokeSignInSessions")
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "Authorization_RequestDenied"
    assert sim.tenant.directory.user(AVERY).revocations == []
    assert json.loads(denied.text())["error"]["message"].startswith("Insufficient privileges")
