"""Azure clients from settings: cloud endpoints, credential choice, CA bundle."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from irflow.azure.clients import AzureClients, ConfigurationError, StaticTokenCredential, resolve_endpoints
from irflow.settings import Settings, get_settings
from irflow.sim.models import Tenant
from irflow.sim.server import SimServer


@pytest.mark.parametrize(
    ("cloud", "arm", "logs"),
    [
        ("public", "https://management.azure.com", "https://api.loganalytics.io"),
        ("usgov", "https://management.usgovcloudapi.net", "https://api.loganalytics.us"),
        ("china", "https://management.chinacloudapi.cn", "https://api.loganalytics.azure.cn"),
    ],
)
def test_sovereign_clouds(cloud: str, arm: str, logs: str) -> None:
    endpoints = resolve_endpoints(Settings(azure_cloud=cloud))
    assert (endpoints.arm, endpoints.logs) == (arm, logs)


def test_overrides_and_custom_cloud() -> None:
    endpoints = resolve_endpoints(Settings(arm_endpoint="https://arm.proxy.example/"))
    assert endpoints.arm == "https://arm.proxy.example" and endpoints.graph == "https://graph.microsoft.com"
    custom = resolve_endpoints(Settings(azure_cloud="custom", arm_endpoint="https://127.0.0.1:9443"))
    assert custom.arm == custom.logs == custom.graph == "https://127.0.0.1:9443"
    with pytest.raises(ConfigurationError, match="IRFLOW_ARM_ENDPOINT"):
        resolve_endpoints(Settings(azure_cloud="custom"))


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("IRFLOW_AZURE_CLOUD", "custom")
    monkeypatch.setenv("IRFLOW_ARM_ENDPOINT", "https://127.0.0.1:9443")
    monkeypatch.setenv("IRFLOW_AZURE_CA_BUNDLE", str(ca))
    monkeypatch.setenv("IRFLOW_AZURE_TOKEN", "not-a-real-token")
    settings = get_settings()
    assert settings.azure_ca_bundle == ca
    assert "not-a-real-token" not in repr(settings)
    clients = AzureClients(settings)
    assert isinstance(clients.credential, StaticTokenCredential)
    assert clients.verify == str(ca)
    assert clients.arm_scope == "https://127.0.0.1:9443/.default"


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValidationError, match="no such file"):
        Settings(azure_ca_bundle=Path("/nonexistent/ca.pem"))
    with pytest.raises(ValidationError, match="IRFLOW_DATABASE_URL"):
        Settings(database_url="mysql://x")


def test_without_a_token_the_default_credential_is_used() -> None:
    from azure.identity import DefaultAzureCredential

    clients = AzureClients(Settings())
    assert isinstance(clients.credential, DefaultAzureCredential)


def test_storage_client_reaches_a_custom_endpoint_through_its_ca_bundle() -> None:
    with SimServer(Tenant.demo()) as server:
        clients = AzureClients(
            Settings(
                azure_cloud="custom",
                arm_endpoint=server.endpoint,
                azure_ca_bundle=Path(server.ca_file),
                azure_token=SecretStr(server.token),
            )
        )
        assert server.subscription_id is not None
        client = clients.storage(server.subscription_id)
        assert clients.storage(server.subscription_id) is client  # one client per subscription
        names = sorted(a.name for a in client.storage_accounts.list())
        clients.close()
    assert names == ["phiclaimsarchive", "phiimaging", "phipatientexports", "webassetscdn"]


# ------------------------------------------------------------------------------------------- sovereign clouds
@pytest.fixture
def clean_identity_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No Azure identity variables; whatever the code under test sets is undone afterwards."""
    names = (
        "AZURE_AUTHORITY_HOST", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_ID", "AZURE_TENANT_ID",
        "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME", "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT", "AZURE_TOKEN_CREDENTIALS",
    )  # fmt: skip
    for name in names:
        monkeypatch.setenv(name, "x")  # recorded as absent: undone even when the code sets it later
        monkeypatch.delenv(name)
    return monkeypatch


def test_the_dod_cloud_uses_azure_government_with_the_dod_graph() -> None:
    dod = resolve_endpoints(Settings(azure_cloud="usgov-dod"))
    assert dod.graph == "https://dod-graph.microsoft.us"
    assert (dod.arm, dod.logs, dod.authority) == (
        "https://management.usgovcloudapi.net",
        "https://api.loganalytics.us",
        "https://login.microsoftonline.us",
    )
    assert resolve_endpoints(Settings(azure_cloud="usgov")).graph == "https://graph.microsoft.us"


def test_a_sovereign_cloud_sets_the_authority_host_for_azure_identity(clean_identity_env) -> None:  # type: ignore[no-untyped-def]
    import os

    AzureClients(Settings(azure_cloud="china"))
    assert os.environ["AZURE_AUTHORITY_HOST"] == "https://login.chinacloudapi.cn"
    with pytest.raises(
        ConfigurationError, match="AZURE_AUTHORITY_HOST=https://login.chinacloudapi.cn does not"
    ):
        AzureClients(Settings(azure_cloud="usgov"))
    with pytest.raises(ConfigurationError, match="needs IRFLOW_AUTHORITY"):
        AzureClients(Settings(azure_cloud="custom", arm_endpoint="https://arm.example"))


def test_the_public_cloud_leaves_the_environment_alone(clean_identity_env) -> None:  # type: ignore[no-untyped-def]
    import os

    AzureClients(Settings())
    assert "AZURE_AUTHORITY_HOST" not in os.environ


def _jwt(claims: dict) -> str:  # type: ignore[type-arg]
    import base64
    import json

    def part(value: dict) -> str:  # type: ignore[type-arg]
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.sig"


def test_workload_identity_gets_its_token_from_the_clouds_authority(  # type: ignore[no-untyped-def]
    clean_identity_env, tmp_path: Path
) -> None:
    import responses

    tenant, client = "72f988bf-0000-4000-8000-000000000001", "0b1c2d3e-0000-4000-8000-000000000002"
    token_file = tmp_path / "federated-token"
    token_file.write_text(
        _jwt({"aud": "api://AzureADTokenExchange", "sub": "system:serviceaccount:ir:irflow"})
    )
    clean_identity_env.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    clean_identity_env.setenv("AZURE_CLIENT_ID", client)
    clean_identity_env.setenv("AZURE_TENANT_ID", tenant)
    gov = "https://login.microsoftonline.us"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(
            responses.GET,
            f"{gov}/{tenant}/v2.0/.well-known/openid-configuration",
            json={
                "token_endpoint": f"{gov}/{tenant}/oauth2/v2.0/token",
                "authorization_endpoint": f"{gov}/{tenant}/oauth2/v2.0/authorize",
                "issuer": f"{gov}/{tenant}/v2.0",
            },
        )
        mock.add(
            responses.POST,
            f"{gov}/{tenant}/oauth2/v2.0/token",
            json={"access_token": "gov-token", "expires_in": 3600, "token_type": "Bearer"},
        )
        clients = AzureClients(Settings(azure_cloud="usgov"))
        token = clients.credential.get_token(clients.arm_scope)
        calls = [call.request.url for call in mock.calls]
        body = mock.calls[-1].request.body
    body = body.decode() if isinstance(body, bytes) else body
    assert token.token == "gov-token"
    assert calls and all(url.startswith(gov) for url in calls), calls  # never the public login host
    assert "client_assertion_type" in body and "management.usgovcloudapi.net%2F.default" in body


def test_managed_identity_asks_for_the_clouds_audiences(clean_identity_env) -> None:  # type: ignore[no-untyped-def]
    import responses

    endpoint = "http://127.0.0.1:41234/msi/token"  # App Service / Functions managed identity
    clean_identity_env.setenv("IDENTITY_ENDPOINT", endpoint)
    clean_identity_env.setenv("IDENTITY_HEADER", "header-secret")
    clean_identity_env.setenv("AZURE_TOKEN_CREDENTIALS", "ManagedIdentityCredential")
    with responses.RequestsMock() as mock:
        mock.add(
            responses.GET,
            endpoint,
            json={"access_token": "mi-token", "expires_on": "4102444800", "token_type": "Bearer"},
        )
        clients = AzureClients(Settings(azure_cloud="usgov-dod"))
        clients.credential.get_token(clients.arm_scope)
        clients.credential.get_token(f"{clients.endpoints.graph}/.default")
        resources = [call.request.params["resource"] for call in mock.calls]
    assert resources == ["https://management.usgovcloudapi.net", "https://dod-graph.microsoft.us"]


# ------------------------------------------------------------------------------------------- timeouts
@pytest.mark.timeout(120)  # without irflow's read timeout the call would wait azure-core's 300 s
def test_an_endpoint_that_never_answers_fails_the_call_at_the_read_timeout() -> None:
    """A black-holed ARM endpoint (it accepts the connection and never answers) fails each call after
    IRFLOW_AZURE_READ_TIMEOUT with a transport error the step's retry policy handles, instead of holding the
    step for azure-core's default 300 s."""
    import socket
    import threading

    from azure.core.exceptions import ServiceResponseError

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])  # kept open, never answered
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    settings = Settings(
        azure_cloud="custom",
        arm_endpoint=f"https://127.0.0.1:{listener.getsockname()[1]}",
        azure_token=SecretStr("t"),
        azure_read_timeout=0.5,
    )
    clients = AzureClients(settings)
    try:
        client = clients.storage("00000000-0000-0000-0000-000000000000")
        with pytest.raises(ServiceResponseError) as caught:
            list(client.storage_accounts.list())
        assert "timed out" in str(caught.value).lower()
        assert accepted  # it did connect: the wait was for an answer
    finally:
        stop.set()
        thread.join(5)
        clients.close()
        for connection in accepted:
            connection.close()
        listener.close()


def test_timeouts_are_settings_with_bounds() -> None:
    assert Settings().azure_read_timeout == 60.0 and Settings().azure_connect_timeout == 10.0
    with pytest.raises(ValidationError):
        Settings(azure_read_timeout=0)
