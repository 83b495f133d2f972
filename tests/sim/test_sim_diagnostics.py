"""Diagnostic settings on blob services and key vaults via azure-mgmt-monitor, in both mounts."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.monitor import MonitorManagementClient
from sim_helpers import PHI_RG, Sim

from irflow.azure.clients import StaticTokenCredential

WORKSPACE_ID = (
    "/subscriptions/9b2f6c1d-4e8a-4f3b-a1c7-2d5e8f0a6b3c/resourceGroups/rg-security/providers/"
    "Microsoft.OperationalInsights/workspaces/law-security"
)


def monitor(sim: Sim) -> MonitorManagementClient:
    return MonitorManagementClient(
        StaticTokenCredential(sim.tenant.token),
        sim.subscription_id,
        base_url=sim.endpoint,
        credential_scopes=[sim.endpoint + "/.default"],
        connection_verify=sim.verify,
    )


def blob_service(sim: Sim, account: str = "phipatientexports") -> str:
    return (
        f"/subscriptions/{sim.subscription_id}/resourceGroups/{PHI_RG}/providers/Microsoft.Storage/"
        f"storageAccounts/{account}/blobServices/default"
    )


def vault(sim: Sim) -> str:
    group = f"/subscriptions/{sim.subscription_id}/resourceGroups/{PHI_RG}"
    return f"{group}/providers/Microsoft.KeyVault/vaults/kv-phi-prod"


SETTING = {
    "workspace_id": WORKSPACE_ID,
    "logs": [
        {"category": "StorageRead", "enabled": True},
        {"category": "StorageWrite", "enabled": True},
        {"category": "StorageDelete", "enabled": True},
    ],
    "metrics": [{"category": "Transaction", "enabled": True}],
}


def test_blob_service_setting_round_trip(sim: Sim) -> None:
    client = monitor(sim)
    resource = blob_service(sim)
    assert list(client.diagnostic_settings.list(resource)) == []
    with pytest.raises(ResourceNotFoundError):
        client.diagnostic_settings.get(resource, "to-law")

    created = client.diagnostic_settings.create_or_update(resource, "to-law", SETTING)

    assert created.id == f"{resource}/providers/microsoft.insights/diagnosticSettings/to-law"
    assert created.name == "to-law" and created.type == "Microsoft.Insights/diagnosticSettings"
    assert created.workspace_id == WORKSPACE_ID
    assert [(log.category, log.enabled) for log in created.logs] == [
        ("StorageRead", True),
        ("StorageWrite", True),
        ("StorageDelete", True),
    ]
    assert created.logs[0].retention_policy.enabled is False
    fetched = client.diagnostic_settings.get(resource, "to-law")
    assert fetched.as_dict() == created.as_dict()
    assert [s.name for s in client.diagnostic_settings.list(resource)] == ["to-law"]
    # Idempotent: the same PUT again leaves one setting with the same content.
    client.diagnostic_settings.create_or_update(resource, "to-law", SETTING)
    assert len(list(client.diagnostic_settings.list(resource))) == 1
    assert [e.route for e in sim.tenant.journal.writes()] == [
        "monitor.diagnostic_settings.create_or_update.blob_service"
    ] * 2

    client.diagnostic_settings.delete(resource, "to-law")
    assert list(client.diagnostic_settings.list(resource)) == []


def test_key_vault_setting_with_category_group(sim: Sim) -> None:
    client = monitor(sim)
    setting = client.diagnostic_settings.create_or_update(
        vault(sim),
        "audit",
        {"workspace_id": WORKSPACE_ID, "logs": [{"category_group": "audit", "enabled": True}]},
    )
    assert setting.logs[0].category_group == "audit" and setting.logs[0].category is None
    assert [s.name for s in client.diagnostic_settings.list(vault(sim))] == ["audit"]
    # Same sink and an overlapping category from a second setting: Azure's conflict.
    with pytest.raises(HttpResponseError) as caught:
        client.diagnostic_settings.create_or_update(
            vault(sim),
            "again",
            {"workspace_id": WORKSPACE_ID, "logs": [{"category": "AuditEvent", "enabled": True}]},
        )
    assert caught.value.status_code == 409


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"logs": [{"category": "StorageRead", "enabled": True}]}, "destination"),
        ({"workspace_id": WORKSPACE_ID, "logs": [{"category": "AuditEvent", "enabled": True}]}, "AuditEvent"),
        ({"workspace_id": WORKSPACE_ID, "logs": [{"category": "StorageRead", "enabled": False}]}, "enabled"),
    ],
)
def test_invalid_settings_are_refused(sim: Sim, body: dict, fragment: str) -> None:
    with pytest.raises(HttpResponseError) as caught:
        monitor(sim).diagnostic_settings.create_or_update(blob_service(sim), "bad", body)
    assert caught.value.status_code == 400
    assert fragment in caught.value.error.message
    assert sim.tenant.diagnostic_settings.list(blob_service(sim)) == []


def test_missing_resource_and_rbac(sim: Sim) -> None:
    client = monitor(sim)
    with pytest.raises(ResourceNotFoundError):
        client.diagnostic_settings.list(blob_service(sim, "nosuchaccount")).next()
    sim.tenant.deny("Microsoft.Insights/diagnosticSettings/write")
    with pytest.raises(HttpResponseError) as caught:
        client.diagnostic_settings.create_or_update(blob_service(sim), "to-law", SETTING)
    assert caught.value.status_code == 403 and caught.value.error.code == "AuthorizationFailed"
