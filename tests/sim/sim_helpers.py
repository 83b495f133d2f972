"""Shared helpers of the simulator tests: the demo scenario's names, a static credential, a mounted tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
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


DEVELOPERS = "8e3f1a52-7c4d-4b9e-a6f0-2d1c5b7e9a43"  # demo: clinical-data-developers on kv-phi-prod
ETL_IDENTITY = "4b7d2e19-3a6c-4f8e-9d15-7c2a0e6b8f31"


def keyvault_client(sim: Sim, **kwargs: Any):  # type: ignore[no-untyped-def]
    """The official azure-mgmt-keyvault client, pointed at the simulator."""
    from azure.mgmt.keyvault import KeyVaultManagementClient

    return KeyVaultManagementClient(
        StaticTokenCredential(sim.tenant.token),
        sim.subscription_id,
        base_url=sim.endpoint,
        credential_scopes=[sim.endpoint + "/.default"],
        connection_verify=sim.verify,
        **kwargs,
    )


ONE_ACCOUNT_SUBSCRIPTION = "11111111-2222-4333-8444-555555555555"


def one_account_scenario(path: Path, faults: str = "") -> Path:
    """Write a scenario with one subscription, resource group ``rg-x`` and account ``onlyaccount``."""
    path.write_text(
        (f"faults: {faults}\n" if faults else "") + "subscriptions:\n"
        f"  - id: {ONE_ACCOUNT_SUBSCRIPTION}\n"
        "    resource_groups:\n"
        "      - name: rg-x\n"
        "        storage_accounts:\n"
        "          - name: onlyaccount\n",
        encoding="utf-8",
    )
    return path
