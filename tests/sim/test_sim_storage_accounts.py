"""Storage account operations, driven only through the official azure-mgmt-storage client, in both mounts."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from sim_helpers import ALL_ACCOUNTS, NOW, PHI_ACCOUNTS, PHI_RG, Sim


def raw(pipeline_response, deserialized, headers):  # type: ignore[no-untyped-def]
    """``cls=`` hook: the JSON body exactly as it came over the wire."""
    return pipeline_response.http_response.json()


def test_get_properties_has_azure_shape(sim: Sim) -> None:
    client = sim.client()
    account = client.storage_accounts.get_properties(PHI_RG, "phipatientexports")

    assert account.id == (
        f"/subscriptions/{sim.subscription_id}/resourceGroups/{PHI_RG}"
        "/providers/Microsoft.Storage/storageAccounts/phipatientexports"
    )
    assert account.name == "phipatientexports"
    assert account.type == "Microsoft.Storage/storageAccounts"
    assert account.kind == "StorageV2"
    assert account.location == "eastus"
    assert account.sku.name == "Standard_GRS" and account.sku.tier == "Standard"
    assert account.tags["data-classification"] == "phi"
    assert account.provisioning_state == "Succeeded"
    assert account.public_network_access == "Enabled"
    assert account.allow_blob_public_access is True
    assert account.allow_shared_key_access is True
    assert account.minimum_tls_version == "TLS1_2"
    assert account.enable_https_traffic_only is True
    assert account.network_rule_set.default_action == "Allow"
    assert account.network_rule_set.bypass == "AzureServices"
    assert account.network_rule_set.ip_rules == []
    assert account.encryption.key_source == "Microsoft.Storage"
    assert account.creation_time == NOW - timedelta(days=540)
    assert account.key_creation_time.key1 == NOW - timedelta(days=63)
    assert account.key_creation_time.key2 == NOW - timedelta(days=63)
    assert account.secondary_location == "westus"
    # Data-plane addresses point back at the simulator, never at a public host.
    assert account.primary_endpoints.blob == f"{sim.endpoint}/_data/phipatientexports/blob/"
    for url in account.primary_endpoints.as_dict().values():
        assert isinstance(url, str) and url.startswith(sim.endpoint + "/_data/")


def test_get_properties_wire_keys_match_the_x_ms_example(sim: Sim) -> None:
    body = sim.client().storage_accounts.get_properties(PHI_RG, "phiimaging", cls=raw)

    assert set(body) == {"id", "kind", "location", "name", "properties", "sku", "tags", "type"}
    for key in (
        "keyCreationTime",
        "creationTime",
        "networkAcls",
        "primaryEndpoints",
        "primaryLocation",
        "provisioningState",
        "encryption",
        "statusOfPrimary",
        "supportsHttpsTrafficOnly",
        "publicNetworkAccess",
        "allowBlobPublicAccess",
        "allowSharedKeyAccess",
        "minimumTlsVersion",
    ):
        assert key in body["properties"], key
    assert set(body["properties"]["keyCreationTime"]) == {"key1", "key2"}
    assert body["properties"]["creationTime"].endswith("Z")
    assert body["properties"]["networkAcls"]["ipRules"] == [{"value": "203.0.113.0/24", "action": "Allow"}]


def test_names_match_case_insensitively_and_older_api_versions_are_served(sim: Sim) -> None:
    # Any api-version used to be accepted; Azure serves only the published ones (1999-01-01-preview is
    # refused: tests/sim/test_sim_api_versions.py).
    client = sim.client(api_version="2019-06-01")
    account = client.storage_accounts.get_properties("RG-PHI-PROD", "phiimaging")
    assert account.name == "phiimaging"

    path = (
        f"/SUBSCRIPTIONS/{sim.subscription_id}/RESOURCEGROUPS/rg-phi-prod/PROVIDERS/microsoft.storage"
        "/STORAGEACCOUNTS/phiimaging?api-version=2023-01-01"
    )
    response = client.send_request(HttpRequest("GET", path))
    assert response.status_code == 200
    assert response.json()["name"] == "phiimaging"


def test_update_isolates_account_and_merges_nested_properties(sim: Sim) -> None:
    client = sim.client()
    updated = client.storage_accounts.update(
        PHI_RG,
        "phiimaging",
        {
            "properties": {
                "publicNetworkAccess": "Disabled",
                "allowBlobPublicAccess": False,
                "networkAcls": {"defaultAction": "Deny"},
            }
        },
    )

    assert updated.public_network_access == "Disabled"
    assert updated.allow_blob_public_access is False
    assert updated.network_rule_set.default_action == "Deny"
    # Merge-patch: what the PATCH did not name is kept, nested networkAcls fields included.
    assert updated.network_rule_set.bypass == "AzureServices"
    assert [rule.ip_address_or_range for rule in updated.network_rule_set.ip_rules] == ["203.0.113.0/24"]
    assert updated.allow_shared_key_access is True
    assert updated.tags["workload"] == "dicom-imaging"
    assert updated.key_creation_time.key1 == NOW - timedelta(days=35)

    again = client.storage_accounts.get_properties(PHI_RG, "phiimaging")
    assert again.public_network_access == "Disabled"
    assert again.network_rule_set.default_action == "Deny"
    assert again.allow_blob_public_access is False
    untouched = client.storage_accounts.get_properties("rg-web-prod", "webassetscdn")
    assert untouched.public_network_access == "Enabled"


def test_update_with_an_invalid_value_is_a_400_and_changes_nothing(sim: Sim) -> None:
    client = sim.client()
    with pytest.raises(HttpResponseError) as caught:
        client.storage_accounts.update(
            PHI_RG,
            "phipatientexports",
            {"properties": {"allowBlobPublicAccess": False, "publicNetworkAccess": "Sometimes"}},
        )
    assert caught.value.status_code == 400
    assert caught.value.error.code == "InvalidValuesForRequestParameters"
    assert "publicNetworkAccess" in caught.value.error.message

    account = client.storage_accounts.get_properties(PHI_RG, "phipatientexports")
    assert account.allow_blob_public_access is True
    assert account.public_network_access == "Enabled"


def test_malformed_json_body_is_a_400_arm_error(sim: Sim) -> None:
    client = sim.client()
    path = (
        f"/subscriptions/{sim.subscription_id}/resourceGroups/{PHI_RG}/providers/Microsoft.Storage"
        "/storageAccounts/phiimaging?api-version=2026-09-01"
    )
    response = client.send_request(
        HttpRequest("PATCH", path, content=b"{not json", headers={"Content-Type": "application/json"})
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InvalidRequestContent"


def test_list_by_resource_group_and_by_subscription(sim: Sim) -> None:
    client = sim.client()
    in_group = [a.name for a in client.storage_accounts.list_by_resource_group(PHI_RG)]
    everywhere = [a.name for a in client.storage_accounts.list()]

    assert in_group == PHI_ACCOUNTS
    assert everywhere == ALL_ACCOUNTS
    body = client.storage_accounts.list_by_resource_group(PHI_RG, cls=lambda items: items)
    assert all(account.type == "Microsoft.Storage/storageAccounts" for account in body)


def test_list_pages_through_next_link(sim: Sim) -> None:
    sim.tenant.page_size = 1
    client = sim.client()

    assert [a.name for a in client.storage_accounts.list()] == ALL_ACCOUNTS
    assert [a.name for a in client.storage_accounts.list_by_resource_group(PHI_RG)] == PHI_ACCOUNTS

    pages = [e for e in sim.tenant.journal.entries() if e.route == "storage.accounts.list"]
    assert len(pages) == 4
    assert "$skipToken" not in pages[0].query
    assert all("$skipToken" in page.query and page.query["api-version"] for page in pages[1:])
    assert all(len(page.response["value"]) == 1 for page in pages)
    assert "nextLink" not in pages[-1].response
    assert pages[0].response["nextLink"].startswith(sim.endpoint + "/subscriptions/")


def test_list_of_a_missing_resource_group_is_resource_group_not_found(sim: Sim) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        list(sim.client().storage_accounts.list_by_resource_group("rg-nowhere"))
    assert caught.value.error.code == "ResourceGroupNotFound"
    assert "rg-nowhere" in caught.value.error.message


def test_unknown_subscription_is_subscription_not_found(sim: Sim) -> None:
    client = sim.client(subscription_id="00000000-0000-4000-8000-000000000000")
    with pytest.raises(ResourceNotFoundError) as caught:
        list(client.storage_accounts.list())
    assert caught.value.error.code == "SubscriptionNotFound"
    assert "00000000-0000-4000-8000-000000000000" in caught.value.error.message


def test_list_keys_with_and_without_kerb_expand(sim: Sim) -> None:
    client = sim.client()
    account = sim.tenant.storage_account("phipatientexports")

    result = client.storage_accounts.list_keys(PHI_RG, "phipatientexports")  # the SDK sends $expand=kerb
    plain = client.storage_accounts.list_keys(PHI_RG, "phipatientexports", expand=None)

    for listed in (result, plain):
        keys = {key.key_name: key for key in listed.keys_property}
        assert set(keys) == {"key1", "key2"}
        for name, key in keys.items():
            assert len(key.value) == 88
            assert len(base64.b64decode(key.value)) == 64
            assert key.permissions == "Full"
            assert key.creation_time == NOW - timedelta(days=63)
            assert key.value == account.key_value(name)
    assert result.keys_property[0].value != result.keys_property[1].value

    queries = [e.query for e in sim.tenant.journal.entries() if e.route == "storage.accounts.list_keys"]
    assert queries[0].get("$expand") == "kerb" and "$expand" not in queries[1]


def test_kerberos_keys_are_listed_only_when_the_account_uses_them(sim: Sim) -> None:
    client = sim.client()
    client.storage_accounts.update(
        PHI_RG,
        "phiimaging",
        {"properties": {"azureFilesIdentityBasedAuthentication": {"directoryServiceOptions": "AADKERB"}}},
    )

    with_kerb = client.storage_accounts.list_keys(PHI_RG, "phiimaging")
    without = client.storage_accounts.list_keys(PHI_RG, "phiimaging", expand=None)

    assert [k.key_name for k in with_kerb.keys_property] == ["key1", "key2", "kerb1", "kerb2"]
    assert [k.key_name for k in without.keys_property] == ["key1", "key2"]


def test_regenerate_key_changes_exactly_that_key(sim: Sim, clock) -> None:  # type: ignore[no-untyped-def]
    client = sim.client()
    before = {
        k.key_name: k for k in client.storage_accounts.list_keys(PHI_RG, "phiclaimsarchive").keys_property
    }
    clock.advance(timedelta(minutes=5))

    answer = client.storage_accounts.regenerate_key(PHI_RG, "phiclaimsarchive", {"keyName": "key2"})

    after = {k.key_name: k for k in answer.keys_property}
    assert set(after) == {"key1", "key2"}
    assert after["key2"].value != before["key2"].value
    assert len(after["key2"].value) == 88
    assert after["key2"].creation_time == NOW + timedelta(minutes=5)
    assert after["key1"].value == before["key1"].value
    assert after["key1"].creation_time == before["key1"].creation_time == NOW - timedelta(days=41)

    account = client.storage_accounts.get_properties(PHI_RG, "phiclaimsarchive")
    assert account.key_creation_time.key2 == NOW + timedelta(minutes=5)
    assert account.key_creation_time.key1 == NOW - timedelta(days=41)
    listed = {
        k.key_name: k.value
        for k in client.storage_accounts.list_keys(PHI_RG, "phiclaimsarchive").keys_property
    }
    assert listed == {"key1": before["key1"].value, "key2": after["key2"].value}


def test_regenerate_an_unknown_key_name_is_a_400(sim: Sim) -> None:
    with pytest.raises(HttpResponseError) as caught:
        sim.client().storage_accounts.regenerate_key(PHI_RG, "phiimaging", {"keyName": "key3"})
    assert caught.value.status_code == 400
    assert caught.value.error.code == "InvalidValuesForRequestParameters"
    assert "keyName" in caught.value.error.message


def test_missing_account_raises_resource_not_found_naming_it(sim: Sim) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        sim.client().storage_accounts.get_properties(PHI_RG, "phiwhoisthis")
    assert caught.value.status_code == 404
    assert caught.value.error.code == "ResourceNotFound"
    assert "phiwhoisthis" in caught.value.error.message
    assert PHI_RG in caught.value.error.message


def test_missing_account_on_write_routes_is_404_too(sim: Sim) -> None:
    client = sim.client()
    with pytest.raises(ResourceNotFoundError):
        client.storage_accounts.list_keys(PHI_RG, "phiwhoisthis")
    with pytest.raises(ResourceNotFoundError):
        client.storage_accounts.regenerate_key(PHI_RG, "phiwhoisthis", {"keyName": "key1"})
    with pytest.raises(ResourceNotFoundError):
        client.storage_accounts.update(
            PHI_RG, "phiwhoisthis", {"properties": {"allowBlobPublicAccess": False}}
        )


def test_unknown_route_is_a_404_with_an_arm_error_body(sim: Sim) -> None:
    client = sim.client()
    with pytest.raises(ResourceNotFoundError) as caught:
        list(client.skus.list())
    assert caught.value.error.code == "NotFound"
    assert "Microsoft.Storage/skus" in caught.value.error.message

    response = client.send_request(HttpRequest("GET", "/definitely/not/azure?api-version=2026-09-01"))
    assert response.status_code == 404
    assert set(response.json()) == {"error"}
    assert set(response.json()["error"]) == {"code", "message"}


def test_api_version_is_required(sim: Sim) -> None:
    path = (
        f"/subscriptions/{sim.subscription_id}/resourceGroups/{PHI_RG}/providers/Microsoft.Storage"
        "/storageAccounts/phiimaging"
    )
    response = sim.client().send_request(HttpRequest("GET", path))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MissingApiVersionParameter"
