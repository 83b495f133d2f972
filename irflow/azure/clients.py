"""Azure SDK clients built from settings: cloud endpoints, credential, CA bundle.

Only synchronous SDK clients are used: their ``requests`` transport is what the simulator's in-process mount
intercepts, and fan-out is done with threads by the engine.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
from azure.core.credentials import AccessToken, TokenCredential
from urllib3.util.retry import Retry

from irflow.azure.principal import network_origin, self_object_id
from irflow.azure.ratelimit import ArmRateLimiter, ArmRateLimitPolicy
from irflow.settings import Settings


@dataclass(frozen=True)
class CloudEndpoints:
    arm: str
    logs: str
    graph: str
    authority: str


# Endpoints per cloud (ARM, Entra ID, Log Analytics):
# https://learn.microsoft.com/azure/azure-government/compare-azure-government-global-azure
# https://learn.microsoft.com/azure/china/resources-developer-guide
# Microsoft Graph (https://learn.microsoft.com/graph/deployments): US Government L4 graph.microsoft.us, L5/DoD
# dod-graph.microsoft.us, China microsoftgraph.chinacloudapi.cn. DoD tenants live in Azure Government: the
# same ARM, Entra ID and Log Analytics endpoints as usgov, with the DoD Graph.
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
    "usgov-dod": CloudEndpoints(
        arm="https://management.usgovcloudapi.net",
        logs="https://api.loganalytics.us",
        graph="https://dod-graph.microsoft.us",
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


_PUBLIC_AUTHORITY = "https://login.microsoftonline.com"
AUTHORITY_HOST_ENV = "AZURE_AUTHORITY_HOST"
_WORKLOAD_IDENTITY_ENV = ("AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_ID", "AZURE_TENANT_ID")


def _host(url: str) -> str:
    url = url.strip().rstrip("/")
    return url if "://" in url else f"https://{url}"


def entra_authority(settings: Settings, endpoints: CloudEndpoints) -> str:
    """The Entra ID authority host for Entra ID credentials, made the process's ``AZURE_AUTHORITY_HOST``.

    ``DefaultAzureCredential(authority=…)`` hands the authority to its environment and shared-cache
    credentials but not to ``WorkloadIdentityCredential`` (nor to the workload identity path of
    ``ManagedIdentityCredential``): those read ``AZURE_AUTHORITY_HOST`` and default to the public cloud
    (azure-identity 1.27, ``_credentials/default.py``; the ``authority`` keyword of
    https://learn.microsoft.com/python/api/azure-identity/azure.identity.workloadidentitycredential). So a
    sovereign or custom cloud sets it, and a value already set for another cloud is a configuration error
    rather than tokens from the wrong cloud."""
    if settings.azure_cloud == "custom" and not settings.authority:
        raise ConfigurationError(
            "IRFLOW_AZURE_CLOUD=custom with an Entra ID credential needs IRFLOW_AUTHORITY (the cloud's "
            "Entra ID authority host); only IRFLOW_AZURE_TOKEN works without it"
        )
    authority = _host(endpoints.authority)
    current = os.environ.get(AUTHORITY_HOST_ENV)
    if current and _host(current).lower() != authority.lower():
        raise ConfigurationError(
            f"{AUTHORITY_HOST_ENV}={current} does not match the authority of IRFLOW_AZURE_CLOUD="
            f"{settings.azure_cloud} ({authority}): unset it or set IRFLOW_AUTHORITY to it"
        )
    if not current and authority.lower() != _PUBLIC_AUTHORITY:
        os.environ[AUTHORITY_HOST_ENV] = authority
    return authority


def build_credential(settings: Settings, endpoints: CloudEndpoints) -> TokenCredential:
    """The static token (simulator, tests), else Entra ID credentials for the configured cloud: workload
    identity first when its environment is there (with the cloud's authority, explicitly), then
    ``DefaultAzureCredential`` (managed identity, environment, CLI …) with the same authority."""
    if settings.azure_token is not None:
        return StaticTokenCredential(settings.azure_token.get_secret_value())
    from azure.identity import ChainedTokenCredential, DefaultAzureCredential, WorkloadIdentityCredential

    authority = entra_authority(settings, endpoints)
    if all(os.environ.get(name) for name in _WORKLOAD_IDENTITY_ENV):
        return ChainedTokenCredential(
            WorkloadIdentityCredential(authority=authority),
            DefaultAzureCredential(authority=authority, exclude_workload_identity_credential=True),
        )
    return DefaultAzureCredential(authority=authority)


# Connections kept per host: as many as targets may call Azure at once (the fan-out queue's worker
# concurrency), so a busy fan-out reuses its TLS connections instead of opening and dropping them.
POOL_SIZE = 64
# LogsQueryClient.query_workspace waits up to its server_timeout (180 s by default, at most 10 minutes) for
# Log Analytics to run a query before it answers
# (https://learn.microsoft.com/python/api/azure-monitor-query/azure.monitor.query.logsqueryclient).
LOGS_SERVER_TIMEOUT_S = 180.0


def pooled_session(pool_size: int = POOL_SIZE) -> requests.Session:
    """A ``requests`` session whose per-host pool holds ``pool_size`` connections (requests keeps 10), with
    retries left to azure-core's retry policy, as its own transport sets them."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=8,
        pool_maxsize=pool_size,
        max_retries=Retry(total=False, redirect=False, raise_on_status=False),
    )
    for prefix in ("http://", "https://"):
        session.mount(prefix, adapter)
    return session


class AzureClients:
    """Client factory for one process: one credential, one client per (kind, subscription).

    Every ARM client shares one connection pool sized to the fan-out and one :class:`ArmRateLimiter`
    (ARM's budget per subscription and kind, :mod:`irflow.azure.ratelimit`)."""

    def __init__(
        self,
        settings: Settings,
        credential: TokenCredential | None = None,
        *,
        rate_limiter: ArmRateLimiter | None = None,
        pool_size: int = POOL_SIZE,
    ) -> None:
        self.endpoints = resolve_endpoints(settings)
        self.credential = credential or build_credential(settings, self.endpoints)
        self.verify: str | bool = str(settings.azure_ca_bundle) if settings.azure_ca_bundle else True
        self.polling_interval = settings.azure_lro_polling_interval
        self.timeouts = {
            "connection_timeout": settings.azure_connect_timeout,
            "read_timeout": settings.azure_read_timeout,
        }
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._settings = settings
        self._self_object_id: str | None = None
        self.origin = network_origin(settings)
        self.rate_limiter = rate_limiter or ArmRateLimiter()
        self.pool_size = pool_size
        self._arm_session = pooled_session(pool_size)

    def self_object_id(self) -> str:
        """irflow's own object id (configured, or its token's ``oid``); cached for the process."""
        if self._self_object_id is None:
            self._self_object_id = self_object_id(self._settings, self.credential, self.arm_scope)
        return self._self_object_id

    @property
    def arm_scope(self) -> str:
        return f"{self.endpoints.arm}/.default"

    def _common(self) -> dict[str, Any]:
        from azure.core.pipeline.transport import RequestsTransport

        common: dict[str, Any] = {
            "base_url": self.endpoints.arm,
            "credential_scopes": [self.arm_scope],
            "connection_verify": self.verify,
            "transport": RequestsTransport(
                session=self._arm_session, session_owner=False, connection_verify=self.verify, **self.timeouts
            ),
            "per_retry_policies": [ArmRateLimitPolicy(self.rate_limiter)],
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
                    **self.timeouts,
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
                    connection_timeout=self.timeouts["connection_timeout"],
                    # a query may run for its server timeout (180 s by default) before Log Analytics answers
                    read_timeout=LOGS_SERVER_TIMEOUT_S + self.timeouts["read_timeout"],
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
                    **self.timeouts,
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
                    account_url, credential=self.credential, connection_verify=self.verify, **self.timeouts
                )
                self._clients[key] = client
            return client

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
            self._arm_session.close()
