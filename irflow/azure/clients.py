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
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    @property
    def arm_scope(self) -> str:
        return f"{self.endpoints.arm}/.default"

    def _common(self) -> dict[str, Any]:
        return {
            "base_url": self.endpoints.arm,
            "credential_scopes": [self.arm_scope],
            "connection_verify": self.verify,
        }

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

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
