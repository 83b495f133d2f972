"""Blob service properties and containers, driven only through the official azure-mgmt-storage client, in
both mounts. Wire shapes are checked against the x-ms-examples of Microsoft.Storage."""

from __future__ import annotations

from datetime import timedelta

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from sim_helpers import NOW, PHI_RG, Sim

from irflow.clock import FrozenClock

CONTAINER_TYPE = "Microsoft.Storage/storageAccounts/blobServices/containers"


def raw(pipeline_response, deserialized, headers):  # type: ignore[no-untyped-def]
    """``cls=`` hook: the JSON body exactly as it came over the wire."""
    return pipeline_response.http_response.json()


def with_headers(pipeline_response, deserialized, headers):  # type: ignore[no-untyped-def]
    return deserialized, pipeline_response.http_response.headers


# ---------------------------------------------------------------------------------------------- blob service
def test_blob_service_properties_have_azure_shape(sim: Sim) -> None:
    client = sim.client()
    archive = client.blob_services.get_service_properties(PHI_RG, "phiclaimsarchive")
    assert archive.delete_retention_policy.enabled is True
    assert archive.delete_retention_policy.days == 7
    assert archive.sku.name == "Standard_RAGRS"

    body = client.blob_services.get_service_properties(PHI_RG, "phipatientexports", cls=raw)
    account = sim.tenant.storage_account("phipatientexports")
    assert body == {  # BlobServicesGet.json: id, name, type, properties, sku
        "id": f"{account.id}/blobServices/default",
        "name": "default",
        "type": "Microsoft.Storage/storageAccounts/blobServices",
        "properties": {
            "cors": {"corsRules": []},
            "deleteRetentionPolicy": {"allowPermanentDelete": False, "enabled": False},
        },
        "sku": {"name": "Standard_GRS", "tier": "Standard"},
    }


def test_set_blob_service_properties_enables_soft_delete_and_versioning(sim: Sim) -> None:
    client = sim.client()
    answer = client.blob_services.set_service_properties(
        PHI_RG,
        "phipatientexports",
        {
            "properties": {
                "deleteRetentionPolicy": {"enabled": True, "days": 30},
                "containerDeleteRetentionPolicy": {"enabled": True, "days": 14},
                "isVersioningEnabled": True,
            }
        },
    )
    assert answer.delete_retention_policy.enabled is True and answer.delete_retention_policy.days == 30
    assert answer.container_delete_retention_policy.days == 14
    assert answer.is_versioning_enabled is True

    again = client.blob_services.get_service_properties(PHI_RG, "phipatientexports", cls=raw)
    assert again["properties"]["isVersioningEnabled"] is True
    assert again["properties"]["cors"] == {"corsRules": []}  # a property the PUT left out is kept
    untouched = client.blob_services.get_service_properties(PHI_RG, "phiimaging")
    assert untouched.is_versioning_enabled is None
    [entry] = sim.tenant.journal.writes()
    assert entry.route == "storage.blob_services.set_service_properties" and entry.method == "PUT"


def test_set_blob_service_properties_refuses_a_bad_retention_and_changes_nothing(sim: Sim) -> None:
    client = sim.client()
    with pytest.raises(HttpResponseError) as caught:
        client.blob_services.set_service_properties(
            PHI_RG,
            "phipatientexports",
            {
                "properties": {
                    "isVersioningEnabled": True,
                    "deleteRetentionPolicy": {"enabled": True, "days": 0},
                }
            },
        )
    assert caught.value.status_code == 400
    assert caught.value.error.code == "InvalidValuesForRequestParameters"
    assert "deleteRetentionPolicy.days" in caught.value.error.message
    assert (
        client.blob_services.get_service_properties(PHI_RG, "phipatientexports").is_versioning_enabled is None
    )


# ---------------------------------------------------------------------------------------------- containers
def test_list_containers_has_the_list_shape(sim: Sim) -> None:
    client = sim.client()
    items = list(client.blob_containers.list(PHI_RG, "phipatientexports"))
    assert [c.name for c in items] == ["etl-staging", "patient-exports"]
    exports = items[1]
    assert exports.public_access == "Container"
    assert exports.type == CONTAINER_TYPE
    assert exports.etag.startswith('"0x') and exports.etag.endswith('"')
    assert exports.has_legal_hold is False and exports.has_immutability_policy is False

    entry = sim.tenant.journal.entries()[-1].response["value"][1]
    assert set(entry) == {"id", "name", "type", "etag", "properties"}
    for key in ("publicAccess", "leaseStatus", "leaseState", "lastModifiedTime", "hasImmutabilityPolicy"):
        assert key in entry["properties"], key
    assert entry["properties"]["lastModifiedTime"].endswith("Z")


def test_list_containers_pages_through_next_link_and_honours_maxpagesize(sim: Sim) -> None:
    client = sim.client()
    names = [c.name for c in client.blob_containers.list(PHI_RG, "phiimaging", maxpagesize="1")]
    assert names == ["dicom-archive", "dicom-studies"]
    pages = [e for e in sim.tenant.journal.entries() if e.route == "storage.containers.list"]
    assert len(pages) == 2
    assert pages[0].query["$maxpagesize"] == "1"
    assert pages[0].response["nextLink"].startswith(sim.endpoint + "/subscriptions/")
    assert "$skipToken" in pages[1].query and "nextLink" not in pages[1].response

    sim.tenant.page_size = 1
    assert [c.name for c in client.blob_containers.list(PHI_RG, "phiimaging", filter="dicom-s")] == [
        "dicom-studies"
    ]


def test_get_container_matches_the_x_ms_example(sim: Sim) -> None:
    client = sim.client()
    container = client.blob_containers.get(PHI_RG, "phipatientexports", "patient-exports")
    assert container.name == "patient-exports"
    assert container.id == (
        f"/subscriptions/{sim.subscription_id}/resourceGroups/{PHI_RG}/providers/Microsoft.Storage"
        "/storageAccounts/phipatientexports/blobServices/default/containers/patient-exports"
    )
    assert container.public_access == "Container"
    assert container.metadata == {"dataset": "patient-demographics", "exporter": "nightly-etl"}
    assert container.lease_state == "Available" and container.lease_status == "Unlocked"
    assert container.last_modified_time == NOW - timedelta(days=540)
    assert container.legal_hold.has_legal_hold is False

    body = client.blob_containers.get(PHI_RG, "phipatientexports", "PATIENT-EXPORTS", cls=raw)
    assert set(body) == {"id", "name", "type", "etag", "properties"}
    assert body["properties"]["legalHold"] == {"hasLegalHold": False, "tags": []}


def test_get_a_missing_container_is_container_not_found(sim: Sim) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        sim.client().blob_containers.get(PHI_RG, "phipatientexports", "no-such-container")
    assert caught.value.error.code == "ContainerNotFound"


def test_patch_container_turns_public_access_off(sim: Sim) -> None:
    client = sim.client()
    before = client.blob_containers.get(PHI_RG, "phipatientexports", "patient-exports").etag
    answer = client.blob_containers.update(
        PHI_RG, "phipatientexports", "patient-exports", {"properties": {"publicAccess": "None"}}
    )
    assert answer.public_access == "None"
    assert answer.metadata == {"dataset": "patient-demographics", "exporter": "nightly-etl"}  # kept

    body = sim.tenant.journal.entries()[-1].response  # BlobContainersPatch.json
    assert set(body) == {"id", "name", "type", "properties"}
    assert set(body["properties"]) == {"metadata", "publicAccess", "hasImmutabilityPolicy", "hasLegalHold"}

    again = client.blob_containers.get(PHI_RG, "phipatientexports", "patient-exports")
    assert again.public_access == "None"
    assert again.etag != before
    assert client.blob_containers.get(PHI_RG, "phiimaging", "dicom-studies").public_access == "Container"
    [entry] = sim.tenant.journal.writes()
    assert entry.route == "storage.containers.update" and entry.body == {
        "properties": {"publicAccess": "None"}
    }


def test_patch_container_replaces_metadata(sim: Sim) -> None:
    client = sim.client()
    answer = client.blob_containers.update(
        PHI_RG, "phiimaging", "dicom-archive", {"properties": {"metadata": {"incident": "ir-2026-0042"}}}
    )
    assert answer.metadata == {"incident": "ir-2026-0042"}
    assert answer.public_access == "None"


def test_public_access_is_refused_when_the_account_disallows_it(sim: Sim) -> None:
    client = sim.client()
    client.storage_accounts.update(
        PHI_RG, "phipatientexports", {"properties": {"allowBlobPublicAccess": False}}
    )
    with pytest.raises(ResourceExistsError) as caught:
        client.blob_containers.update(
            PHI_RG,
            "phipatientexports",
            "etl-staging",
            {"properties": {"publicAccess": "Blob", "metadata": {"x": "y"}}},
        )
    assert caught.value.status_code == 409
    assert caught.value.error.code == "PublicAccessNotPermitted"
    staging = client.blob_containers.get(PHI_RG, "phipatientexports", "etl-staging")
    assert staging.public_access == "None" and staging.metadata == {"dataset": "staging"}
    # Turning access off is always allowed.
    client.blob_containers.update(
        PHI_RG, "phipatientexports", "patient-exports", {"properties": {"publicAccess": "None"}}
    )
    with pytest.raises(HttpResponseError) as bad:
        client.blob_containers.update(
            PHI_RG, "phipatientexports", "etl-staging", {"properties": {"publicAccess": "Everyone"}}
        )
    assert bad.value.status_code == 400


def test_set_and_clear_legal_hold(sim: Sim) -> None:
    client = sim.client()
    held = client.blob_containers.set_legal_hold(
        PHI_RG, "phipatientexports", "patient-exports", {"tags": ["IR2026x0042", "hipaa"]}
    )
    assert held.has_legal_hold is True
    assert held.tags == ["ir2026x0042", "hipaa"]  # the resource provider lower-cases tags
    assert sim.tenant.journal.entries()[-1].response == {  # BlobContainersSetLegalHold.json
        "hasLegalHold": True,
        "tags": ["ir2026x0042", "hipaa"],
    }
    again = client.blob_containers.set_legal_hold(
        PHI_RG, "phipatientexports", "patient-exports", {"tags": ["hipaa", "litigation"]}
    )
    assert again.tags == ["ir2026x0042", "hipaa", "litigation"]

    container = client.blob_containers.get(PHI_RG, "phipatientexports", "patient-exports")
    assert container.has_legal_hold is True
    tags = container.legal_hold.tags
    assert [t.tag for t in tags] == ["ir2026x0042", "hipaa", "litigation"]
    assert all(t.timestamp == NOW for t in tags)
    assert tags[0].object_identifier == sim.tenant.principal_id
    assert tags[0].tenant_id == sim.tenant.tenant_id
    assert sim.tenant.storage_account("phipatientexports").container("patient-exports").legal_hold_tags == [
        "ir2026x0042",
        "hipaa",
        "litigation",
    ]

    partly = client.blob_containers.clear_legal_hold(
        PHI_RG, "phipatientexports", "patient-exports", {"tags": ["hipaa"]}
    )
    assert partly.has_legal_hold is True and partly.tags == ["ir2026x0042", "litigation"]
    cleared = client.blob_containers.clear_legal_hold(
        PHI_RG, "phipatientexports", "patient-exports", {"tags": ["ir2026x0042", "litigation"]}
    )
    assert cleared.has_legal_hold is False and cleared.tags == []  # BlobContainersClearLegalHold.json

    writes = sim.tenant.journal.writes()
    assert [e.route for e in writes] == [
        "storage.containers.set_legal_hold",
        "storage.containers.set_legal_hold",
        "storage.containers.clear_legal_hold",
        "storage.containers.clear_legal_hold",
    ]
    assert all(e.method == "POST" and e.is_write for e in writes)


def test_legal_hold_refuses_invalid_tags(sim: Sim) -> None:
    client = sim.client()
    with pytest.raises(HttpResponseError) as caught:
        client.blob_containers.set_legal_hold(PHI_RG, "phiimaging", "dicom-studies", {"tags": ["no", "fine"]})
    assert caught.value.status_code == 400
    assert sim.tenant.storage_account("phiimaging").container("dicom-studies").legal_hold_tags == []


def test_immutability_policy_put_update_and_etag(sim: Sim, clock: FrozenClock) -> None:
    client = sim.client()
    policy, headers = client.blob_containers.create_or_update_immutability_policy(
        PHI_RG,
        "phiclaimsarchive",
        "claims-2025",
        {"properties": {"immutabilityPeriodSinceCreationInDays": 180, "allowProtectedAppendWrites": True}},
        cls=with_headers,
    )
    assert policy.immutability_period_since_creation_in_days == 180
    assert policy.allow_protected_append_writes is True
    assert policy.state == "Unlocked"
    assert policy.etag and headers["ETag"] == policy.etag
    body = sim.tenant.journal.entries()[-1].response  # BlobContainersPutImmutabilityPolicy.json
    assert set(body) == {"id", "name", "type", "etag", "properties"}
    assert body["name"] == "default"
    assert body["id"].endswith("/blobServices/default/containers/claims-2025/immutabilityPolicies/default")
    assert body["type"] == "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies"

    clock.advance(timedelta(minutes=5))
    longer = client.blob_containers.create_or_update_immutability_policy(
        PHI_RG,
        "phiclaimsarchive",
        "claims-2025",
        {"properties": {"immutabilityPeriodSinceCreationInDays": 365}},
        etag=policy.etag,
        match_condition=MatchConditions.IfNotModified,
    )
    assert longer.immutability_period_since_creation_in_days == 365
    assert longer.etag != policy.etag

    with pytest.raises(ResourceModifiedError) as stale:
        client.blob_containers.create_or_update_immutability_policy(
            PHI_RG,
            "phiclaimsarchive",
            "claims-2025",
            {"properties": {"immutabilityPeriodSinceCreationInDays": 1}},
            etag=policy.etag,
            match_condition=MatchConditions.IfNotModified,
        )
    assert stale.value.status_code == 412

    container = client.blob_containers.get(PHI_RG, "phiclaimsarchive", "claims-2025")
    assert container.has_immutability_policy is True
    assert container.immutability_policy.immutability_period_since_creation_in_days == 365
    assert container.immutability_policy.etag == longer.etag
    history = container.immutability_policy.update_history
    assert [h.immutability_period_since_creation_in_days for h in history] == [180, 365]
    assert history[1].timestamp == NOW + timedelta(minutes=5)
    assert [e.route for e in sim.tenant.journal.writes()] == [
        "storage.containers.create_or_update_immutability_policy"
    ] * 3


def test_a_locked_immutability_policy_cannot_be_replaced(sim: Sim) -> None:
    client = sim.client()
    client.blob_containers.create_or_update_immutability_policy(
        PHI_RG, "phiimaging", "dicom-archive", {"properties": {"immutabilityPeriodSinceCreationInDays": 7}}
    )
    container = sim.tenant.storage_account("phiimaging").container("dicom-archive")
    assert container.immutability is not None
    container.immutability.state = "Locked"  # no lock route yet: lock it through the model
    with pytest.raises(ResourceExistsError) as caught:
        client.blob_containers.create_or_update_immutability_policy(
            PHI_RG,
            "phiimaging",
            "dicom-archive",
            {"properties": {"immutabilityPeriodSinceCreationInDays": 1}},
        )
    assert caught.value.error.code == "ContainerImmutabilityPolicyLocked"
    assert container.immutability.days == 7


def test_immutability_policy_refuses_a_bad_period(sim: Sim) -> None:
    with pytest.raises(HttpResponseError) as caught:
        sim.client().blob_containers.create_or_update_immutability_policy(
            PHI_RG,
            "phiimaging",
            "dicom-archive",
            {"properties": {"immutabilityPeriodSinceCreationInDays": 0}},
        )
    assert caught.value.status_code == 400
    assert sim.tenant.storage_account("phiimaging").container("dicom-archive").immutability is None


def test_reset_restores_containers(sim: Sim) -> None:
    client = sim.client()
    client.blob_containers.update(
        PHI_RG, "phipatientexports", "patient-exports", {"properties": {"publicAccess": "None"}}
    )
    client.blob_containers.set_legal_hold(PHI_RG, "phipatientexports", "patient-exports", {"tags": ["case1"]})
    sim.tenant.reset()
    container = client.blob_containers.get(PHI_RG, "phipatientexports", "patient-exports")
    assert container.public_access == "Container" and container.has_legal_hold is False


def test_lock_immutability_policy_needs_the_etag_and_is_final(sim: Sim, clock: FrozenClock) -> None:
    client = sim.client()
    with pytest.raises(ResourceNotFoundError):  # nothing to lock yet
        client.blob_containers.lock_immutability_policy(
            PHI_RG,
            "phiclaimsarchive",
            "claims-2025",
            etag='"0"',
            match_condition=MatchConditions.IfNotModified,
        )
    policy = client.blob_containers.create_or_update_immutability_policy(
        PHI_RG,
        "phiclaimsarchive",
        "claims-2025",
        {"properties": {"immutabilityPeriodSinceCreationInDays": 30}},
    )
    with pytest.raises(ResourceModifiedError) as stale:
        client.blob_containers.lock_immutability_policy(
            PHI_RG,
            "phiclaimsarchive",
            "claims-2025",
            etag='"1"',
            match_condition=MatchConditions.IfNotModified,
        )
    assert stale.value.status_code == 412
    clock.advance(timedelta(seconds=1))
    locked = client.blob_containers.lock_immutability_policy(
        PHI_RG,
        "phiclaimsarchive",
        "claims-2025",
        etag=policy.etag,
        match_condition=MatchConditions.IfNotModified,
    )
    assert locked.state == "Locked" and locked.etag != policy.etag
    assert locked.immutability_period_since_creation_in_days == 30
    with pytest.raises(ResourceExistsError) as shorter:  # a locked policy is never shortened or replaced
        client.blob_containers.create_or_update_immutability_policy(
            PHI_RG,
            "phiclaimsarchive",
            "claims-2025",
            {"properties": {"immutabilityPeriodSinceCreationInDays": 1}},
        )
    assert shorter.value.error.code == "ContainerImmutabilityPolicyLocked"
    container = client.blob_containers.get(PHI_RG, "phiclaimsarchive", "claims-2025")
    assert container.immutability_policy.state == "Locked"
    assert [u["update"] for u in container.immutability_policy.update_history] == ["put", "lock"]
