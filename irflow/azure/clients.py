"""Azure SDK clients built from settings: cloud endpoints, credential, CA bundle.

Only synchronous SDK clients are used: their ``requests`` transport is what the simulator's in-process mount
intercepts, and fan-out is done with threads by the engine.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from azure.core.credentials import AccessToken, TokenCredential

from irflow.azure.principal import network_origin, self_object_id
from irflow.settings import Settings


@dataclass(frozen=True)
class CloudEndpoints:
    arm: str
    logs: str
    graph: str
    authority: str


CLOUDS: dict[str, CloudEndpoints] = {
    "public": CloudEndpoints(
        arm="https://management.azure.com",
        logs="https://api.loganalytics.io",
        graph="https://graph.microsoft.com",
        authority="https://login.microsoftonline.com",
    ),
    "usgov": CloudEndpoints(
        arm="https://management.usgovcloudapi.net",
        logs="https://api.loganalytics.us",
        graph="https://graph.microsoft.us",
        authority="https://login.microsoftonline.us",
    ),
    "china": CloudEndpoints(
        arm="https://management.chinacloudapi.cn",
        logs="https://api.loganalytics.azure.cn",
        graph="https://microsoftgraph.chinacloudapi.cn",
        authority="https://login.chinacloudapi.cn",
    ),
}


class ConfigurationError(ValueError):
    """Settings that cannot produce working Azure clients."""


def resolve_endpoints(settings: Settings) -> CloudEndpoints:
    if settings.azure_cloud == "custom":
        missing = [name for name, value in (("IRFLOW_ARM_ENDPOINT", settings.arm_endpoint),) if not value]
        if missing:
            raise ConfigurationError(f"IRFLOW_AZURE_CLOUD=custom needs {', '.join(missing)}")
        arm = settings.arm_endpoint.rstrip("/")  # type: ignore[union-attr]
        return CloudEndpoints(
            arm=arm,
            logs=(settings.logs_endpoint or arm).rstrip("/"),
            graph=(settings.graph_endpoint or arm).rstrip("/"),
            authority=(settings.authority or arm).rstrip("/"),
        )
    base = CLOUDS[settings.azure_cloud]
    return CloudEndpoints(
        arm=(settings.arm_endpoint or base.arm).rstrip("/"),
        logs=(settings.logs_endpoint or base.logs).rstrip("/"),
        graph=(settings.graph_endpoint or base.graph).rstrip("/"),
        authority=(settings.authority or base.authority).rstrip("/"),
    )


class StaticTokenCredential:
    """A fixed bearer token (simulator and tests only), shaped as azure-core's ``TokenCredential``."""

    def __init__(self, token: str, lifetime_s: int = 3600) -> None:
        self._token = token
        self._lifetime_s = lifetime_s

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + self._lifetime_s)

    def __repr__(self) -> str:
        return "StaticTokenCredential(<redacted>)"


_VAULT_SUFFIXES = (".vault.azure.net", ".vault.usgovcloudapi.net", ".vault.azure.cn", ".managedhsm.azure.net")


def _is_azure_vault_host(vault_url: str) -> bool:
    """Key Vault's challenge check only holds for Azure's own vault hosts (not a simulator or proxy)."""
    from urllib.parse import urlparse

    return (urlparse(vault_url).hostname or "").endswith(_VAULT_SUFFIXES)


def build_credential(settings: Settings, endpoints: CloudEndpoints) -> TokenCredential:
    if settings.azure_token is not None:
        return StaticTokenCredential(settings.azure_token.get_secret_value())
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(authority=endpoints.authority)


class AzureClients:
    """Client factory for one process: one credential, one client per (kind, subscription)."""

    def __init__(self, settings: Settings, credential: TokenCredential | None = None) -> None:
        self.endpoints = resolve_endpoints(settings)
        self.credential = credential or build_credential(settings, self.endpoints)
        self.verify: str | bool = str(settings.azure_ca_bundle) if settings.azure_ca_bundle else True
        self.polling_interval = settings.azure_lro_polling_interval
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._settings = settings
        self._self_object_id: str | None = None
        self.origin = network_origin(settings)

    def self_object_id(self) -> str:
        """irflow's own object id (configured, or its token's ``oid``); cached for the process."""
        if self._self_object_id is None:
            self._self_object_id = self_object_id(self._settings, self.credential, self.arm_scope)
        return self._self_object_id

    @property
    def arm_scope(self) -> str:
        return f"{self.endpoints.arm}/.default"

    def _common(self) -> dict[str, Any]:
        common: dict[str, Any] = {
            "base_url": self.endpoints.arm,
            "credential_scopes": [self.arm_scope],
            "connection_verify": self.verify,
        }
        if self.polling_interval is not None:
            common["polling_interval"] = self.polling_interval
        return common

    def storage(self, subscription_id: str) -> Any:
        """``azure.mgmt.storage.StorageManagementClient`` for one subscription."""
        key = ("storage", subscription_id)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                from azure.mgmt.storage import StorageManagementClient

                client = StorageManagementClient(self.credential, subscription_id, **self._common())
                self._clients[key] = client
            return client

    def _mgmt(self, kind: str, subscription_id: str, factory: Any) -> Any:
        key = (kind, subscription_id)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = factory(self.credential, subscription_id, **self._common())
                self._clients[key] = client
            return client

    def keyvault_mgmt(self, subscription_id: str) -> Any:
        """``azure.mgmt.keyvault.KeyVaultManagementClient`` (vaults, access policies)."""
        from azure.mgmt.keyvault import KeyVaultManagementClient

        return self._mgmt("keyvault", subscription_id, KeyVaultManagementClient)

    def authorization(self, subscription_id: str) -> Any:
        """``azure.mgmt.authorization.AuthorizationManagementClient`` (role assignments and definitions)."""
        from azure.mgmt.authorization import AuthorizationManagementClient

        return self._mgmt("authorization", subscription_id, AuthorizationManagementClient)

    def network(self, subscription_id: str) -> Any:
        """``azure.mgmt.network.NetworkManagementClient`` (NSGs, rules, VNets, peerings)."""
        from azure.mgmt.network import NetworkManagementClient

        return self._mgmt("network", subscription_id, NetworkManagementClient)

    def monitor(self, subscription_id: str) -> Any:
        """``azure.mgmt.monitor.MonitorManagementClient`` (diagnostic settings)."""
        from azure.mgmt.monitor import MonitorManagementClient

        return self._mgmt("monitor", subscription_id, MonitorManagementClient)

    def keys(self, vault_url: str) -> Any:
        """``azure.keyvault.keys.KeyClient`` for one vault's data plane."""
        key = ("keys", vault_url)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                from azure.keyvault.keys import KeyClient

                client = KeyClient(
                    vault_url,
                    self.credential,
                    connection_verify=self.verify,
                    verify_challenge_resource=_is_azure_vault_host(vault_url),
                )
                self._clients[key] = client
            return client

    def logs(self) -> Any:
        """``azure.monitor.query.LogsQueryClient`` at the cloud's Log Analytics endpoint."""
        key = ("logs", "")
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                from azure.monitor.query import LogsQueryClient

                client = LogsQueryClient(
                    self.credential,
                    endpoint=self.endpoints.logs,
                    audience=self.endpoints.logs,
                    connection_verify=self.verify,
                )
                self._clients[key] = client
            return client

    def graph(self) -> Any:
        """An azure-core pipeline client for Microsoft Graph (no Graph SDK needed for our few calls)."""
        key = ("graph", "")
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                from azure.core import PipelineClient
                from azure.core.pipeline import policies

                scope = f"{self.endpoints.graph}/.default"
                client = PipelineClient(
                    base_url=self.endpoints.graph,
                    policies=[
                        policies.HeadersPolicy(),
                        policies.RetryPolicy(),
                        policies.BearerTokenCredentialPolicy(self.credential, scope),
                        policies.NetworkTraceLoggingPolicy(),
                    ],
                    connection_verify=self.verify,
                )
                self._clients[key] = client
            return client

    def blob_service(self, account_url: str) -> Any:
        """``azure.storage.blob.BlobServiceClient`` for one account's blob endpoint (Entra ID token)."""
        key = ("blob", account_url)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                from azure.storage.blob import BlobServiceClient

                client = BlobServiceClient(
                    account_url, credential=self.credential, connection_verify=self.verify
                )
                self._clients[key] = client
            return client

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
