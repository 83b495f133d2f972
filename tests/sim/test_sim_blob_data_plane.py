"""Blob service data plane: Get / Set Container ACL (stored access policies) through the official
``azure.storage.blob.ContainerClient``, at the account's ``primaryEndpoints.blob``, in both mounts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.storage.blob import AccessPolicy, ContainerClient, ContainerSasPermissions
from sim_helpers import PHI_RG, Sim

from irflow.azure.clients import StaticTokenCredential
from irflow.sim.storage import blob_data
from irflow.sim.storage import urls as storage_urls


def container_client(sim: Sim, account: str, container: str, token: str | None = None) -> ContainerClient:
    """The blob client at the address the management plane hands out (``primaryEndpoints.blob``)."""
    blob_endpoint = sim.client().storage_accounts.get_properties(PHI_RG, account).primary_endpoints.blob
    sim.tenant.journal.clear()
    return ContainerClient(
        blob_endpoint,
        container,
        credential=StaticTokenCredential(token or sim.tenant.token),
        connection_verify=sim.verify,
        retry_total=0,
    )


def test_demo_container_has_the_over_broad_partner_policy(sim: Sim) -> None:
    client = container_client(sim, "phipatientexports", "patient-exports")

    acl = client.get_container_access_policy()

    assert acl["public_access"] == "container"
    [identifier] = acl["signed_identifiers"]
    assert identifier.id == "partner-export"
    assert identifier.access_policy.permission == "rl"
    assert identifier.access_policy.start == "2025-06-01T00:00:00.0000000Z"
    assert identifier.access_policy.expiry == "2031-01-01T00:00:00.0000000Z"
    [entry] = sim.tenant.journal.entries()
    assert (entry.method, entry.route, entry.status, entry.is_write) == (
        "GET",
        "storage.blob.get_container_acl",
        200,
        False,
    )
    assert entry.path == "/_data/phipatientexports/blob/patient-exports"
    assert entry.query == {"restype": "container", "comp": "acl"}


def test_private_container_has_no_public_access_header_and_no_policies(sim: Sim) -> None:
    acl = container_client(sim, "phipatientexports", "etl-staging").get_container_access_policy()
    assert acl == {"public_access": None, "signed_identifiers": []}


def test_set_replaces_policies_and_public_access(sim: Sim) -> None:
    client = container_client(sim, "phiimaging", "dicom-studies")
    policy = AccessPolicy(
        permission=ContainerSasPermissions(read=True),
        start=datetime(2026, 3, 1, tzinfo=UTC),
        expiry=datetime(2026, 3, 9, 12, 0, tzinfo=UTC),
    )

    answer = client.set_container_access_policy({"radiology-review": policy}, public_access="blob")

    assert answer["etag"].startswith('"0x')
    assert answer["last_modified"] == sim.tenant.now()
    assert answer["version"]  # x-ms-version echoed
    container = sim.tenant.storage_account("phiimaging").container("dicom-studies")
    assert container.public_access == "Blob"
    [stored] = container.access_policies
    assert (stored.id, stored.permission) == ("radiology-review", "r")
    assert stored.expiry == datetime(2026, 3, 9, 12, 0, tzinfo=UTC)
    assert answer["etag"] == container.etag

    acl = client.get_container_access_policy()
    assert acl["public_access"] == "blob"
    assert [i.id for i in acl["signed_identifiers"]] == ["radiology-review"]
    # The management plane sees the same container.
    arm = sim.client().blob_containers.get(PHI_RG, "phiimaging", "dicom-studies")
    assert arm.public_access == "Blob"

    [write] = sim.tenant.journal.writes()
    assert write.route == "storage.blob.set_container_acl"
    assert "<Id>radiology-review</Id>" in write.body


def test_removing_the_policy_revokes_it_and_no_header_means_private(sim: Sim) -> None:
    """Azure semantics: Set Container ACL replaces the whole list, and without ``x-ms-blob-public-access``
    the container becomes private."""
    client = container_client(sim, "phipatientexports", "patient-exports")

    client.set_container_access_policy({})

    container = sim.tenant.storage_account("phipatientexports").container("patient-exports")
    assert container.access_policies == []
    assert container.public_access == "None"
    assert client.get_container_access_policy() == {"public_access": None, "signed_identifiers": []}
    summary = sim.tenant.storage_account("phipatientexports").summary()
    exports = next(c for c in summary["containers"] if c["name"] == "patient-exports")
    assert exports["storedAccessPolicies"] == [] and exports["publicAccess"] == "None"


def test_public_access_needs_allow_blob_public_access(sim: Sim) -> None:
    sim.client().storage_accounts.update(
        PHI_RG, "phiimaging", {"properties": {"allowBlobPublicAccess": False}}
    )
    client = container_client(sim, "phiimaging", "dicom-archive")

    with pytest.raises(HttpResponseError) as caught:
        client.set_container_access_policy({}, public_access="container")

    assert caught.value.status_code == 409
    assert caught.value.error_code == "PublicAccessNotPermitted"
    assert sim.tenant.storage_account("phiimaging").container("dicom-archive").public_access == "None"


def test_more_than_five_policies_are_refused_by_the_sdk_and_the_service(sim: Sim) -> None:
    container = sim.tenant.storage_account("phiimaging").container("dicom-archive")
    with pytest.raises(blob_data.StorageError):
        blob_data.parse_signed_identifiers(b"<SignedIdentifiers><Oops/></SignedIdentifiers>")
    with pytest.raises(blob_data.StorageError):
        blob_data.parse_signed_identifiers(b'<!DOCTYPE x [<!ENTITY a "b">]><SignedIdentifiers/>')
    identifiers = "".join(
        f"<SignedIdentifier><Id>p{i}</Id><AccessPolicy><Permission>r</Permission></AccessPolicy>"
        "</SignedIdentifier>"
        for i in range(6)
    )
    policies = blob_data.parse_signed_identifiers(
        f"<SignedIdentifiers>{identifiers}</SignedIdentifiers>".encode()
    )
    with pytest.raises(ValueError):
        container.set_access_policies(
            policies, public_access="None", public_access_allowed=True, when=sim.tenant.now()
        )


def test_if_unmodified_since_is_honoured(sim: Sim) -> None:
    client = container_client(sim, "phipatientexports", "patient-exports")
    with pytest.raises(HttpResponseError) as caught:
        client.set_container_access_policy({}, if_unmodified_since=datetime(2020, 1, 1, tzinfo=UTC))
    assert caught.value.status_code == 412
    assert caught.value.error_code == "ConditionNotMet"
    assert sim.tenant.storage_account("phipatientexports").container("patient-exports").access_policies


def test_missing_container_is_404_container_not_found(sim: Sim) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        container_client(sim, "phiimaging", "no-such-container").get_container_access_policy()
    assert caught.value.error_code == "ContainerNotFound"


def test_wrong_token_is_401_with_the_storage_challenge(sim: Sim) -> None:
    client = container_client(sim, "phipatientexports", "patient-exports", token="not-the-token")
    with pytest.raises(ClientAuthenticationError) as caught:
        client.set_container_access_policy({})
    assert caught.value.status_code == 401
    assert caught.value.error_code == "InvalidAuthenticationInfo"
    challenge = caught.value.response.headers["WWW-Authenticate"]
    assert "authorization_uri=https://login.microsoftonline.com/" in challenge
    assert "resource_id=https://storage.azure.com" in challenge
    assert sim.tenant.storage_account("phipatientexports").container("patient-exports").access_policies
    # The SDK answered the challenge once with a token, then gave up: two refusals journaled.
    assert [e.status for e in sim.tenant.journal.entries()] == [401, 401]


def test_shared_key_is_refused(sim: Sim) -> None:
    """The simulator verifies no Shared Key signature; an account without Shared Key access says so."""
    endpoint = (
        sim.client().storage_accounts.get_properties("rg-web-prod", "webassetscdn").primary_endpoints.blob
    )
    key = sim.tenant.storage_account("webassetscdn").key_value("key1")
    client = ContainerClient(
        endpoint,
        "site-assets",
        credential={"account_name": "webassetscdn", "account_key": key},
        connection_verify=sim.verify,
        retry_total=0,
    )
    with pytest.raises(HttpResponseError) as caught:
        client.get_container_access_policy()
    assert caught.value.status_code == 403
    assert caught.value.error_code == "KeyBasedAuthenticationNotPermitted"  # allowSharedKeyAccess: false


def test_rbac_denial_is_403_authorization_permission_mismatch(sim: Sim) -> None:
    container_id = (
        f"/subscriptions/{sim.subscription_id}/resourceGroups/{PHI_RG}/providers/Microsoft.Storage"
        "/storageAccounts/phipatientexports/blobServices/default/containers/patient-exports"
    )
    sim.tenant.deny(storage_urls.CONTAINER_SET_ACL, container_id)
    client = container_client(sim, "phipatientexports", "patient-exports")

    with pytest.raises(HttpResponseError) as caught:
        client.set_container_access_policy({})
    assert caught.value.status_code == 403
    assert caught.value.error_code == "AuthorizationPermissionMismatch"
    assert sim.tenant.storage_account("phipatientexports").container("patient-exports").access_policies
    assert client.get_container_access_policy()["signed_identifiers"]  # getAcl is still granted
    # Another container of the account is outside the scope.
    container_client(sim, "phipatientexports", "etl-staging").set_container_access_policy({})


def test_unimplemented_data_plane_operation_is_501(sim: Sim) -> None:
    client = container_client(sim, "phipatientexports", "patient-exports")
    with pytest.raises(HttpResponseError) as caught:
        client.get_container_properties()
    assert caught.value.status_code == 501
    assert caught.value.error_code == "NotImplemented"


def test_error_rate_applies_to_the_data_plane(sim: Sim) -> None:
    client = container_client(sim, "phipatientexports", "patient-exports")
    sim.tenant.faults.error_rate = 1.0
    with pytest.raises(HttpResponseError) as caught:
        client.set_container_access_policy({})
    assert caught.value.status_code == 500
    assert caught.value.error_code == "InternalError"
    assert sim.tenant.storage_account("phipatientexports").container("patient-exports").access_policies


def test_parse_time_units() -> None:
    assert blob_data.parse_time("2026-03-02") == datetime(2026, 3, 2, tzinfo=UTC)
    assert blob_data.parse_time("2026-03-02T09:30Z") == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    assert blob_data.parse_time("2026-03-02T09:30:00.1234567Z") == datetime(
        2026, 3, 2, 9, 30, 0, 123456, tzinfo=UTC
    )
    assert blob_data.parse_time("2026-03-02T10:30:00+01:00") == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    with pytest.raises(ValueError):
        blob_data.parse_time("tomorrow")


def test_shared_key_on_an_account_that_allows_it_fails_authentication(sim: Sim) -> None:
    endpoint = sim.client().storage_accounts.get_properties(PHI_RG, "phiimaging").primary_endpoints.blob
    key = sim.tenant.storage_account("phiimaging").key_value("key1")
    client = ContainerClient(
        endpoint,
        "dicom-studies",
        credential={"account_name": "phiimaging", "account_key": key},
        connection_verify=sim.verify,
        retry_total=0,
    )
    with pytest.raises(HttpResponseError) as caught:
        client.get_container_access_policy()
    assert caught.value.status_code == 403
    assert caught.value.error_code == "AuthenticationFailed"


def test_scenario_stored_access_policies(clock) -> None:  # type: ignore[no-untyped-def]
    from irflow.sim import Tenant
    from irflow.sim.scenario import read_scenario

    tenant = Tenant.demo(clock=clock)
    exports = tenant.storage_account("phipatientexports").container("patient-exports")
    assert [p.to_dict() for p in exports.access_policies] == [
        {
            "id": "partner-export",
            "permission": "rl",
            "start": "2025-06-01T00:00:00.0000000Z",
            "expiry": "2031-01-01T00:00:00.0000000Z",
        }
    ]
    document = read_scenario("demo")
    container = document["subscriptions"][0]["resource_groups"][0]["storage_accounts"][0]["containers"][0]
    container["stored_access_policies"] = [{"id": "bad", "permission": "rz"}]
    with pytest.raises(ValueError, match="patient-exports"):
        Tenant.from_scenario(document, clock=clock)
    container["stored_access_policies"] = [{"id": f"p{i}"} for i in range(6)]
    with pytest.raises(ValueError, match="invalid scenario"):
        Tenant.from_scenario(document, clock=clock)
