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
