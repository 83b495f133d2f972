"""Shared helpers of the simulator tests: the demo scenario's names, a static credential, a mounted tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.mgmt.storage import StorageManagementClient

from irflow.azure.clients import StaticTokenCredential
from irflow.sim import Tenant

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
PHI_RG = "rg-phi-prod"
PHI_ACCOUNTS = ["phiclaimsarchive", "phiimaging", "phipatientexports"]
ALL_ACCOUNTS = [*PHI_ACCOUNTS, "webassetscdn"]


@dataclass
class Sim:
    """One mounted tenant and how to reach it."""

    mode: str  # "mock" or "server"
    tenant: Tenant
    endpoint: str
    verify: str | bool

    @property
    def subscription_id(self) -> str:
        subscription_id = self.tenant.default_subscription_id
        assert subscription_id is not None
        return subscription_id

    def client(
        self, token: str | None = None, subscription_id: str | None = None, **kwargs: Any
    ) -> StorageManagementClient:
        """The official sync client, pointed at the simulator (the right token unless one is given)."""
        return StorageManagementClient(
            StaticTokenCredential(token or self.tenant.token),
            subscription_id or self.subscription_id,
            base_url=self.endpoint,
            credential_scopes=[self.endpoint + "/.default"],
            connection_verify=self.verify,
            **kwargs,
        )
