"""Scenario loading and the packaged demo scenario."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from sim_helpers import ALL_ACCOUNTS, NOW, PHI_ACCOUNTS, PHI_RG

from irflow.clock import FrozenClock
from irflow.sim import Tenant, load_scenario, packaged_scenarios

SUBSCRIPTION = "11111111-2222-4333-8444-555555555555"


def small_scenario() -> dict:
    return {
        "subscriptions": [
            {
                "id": SUBSCRIPTION,
                "resource_groups": [
                    {
                        "name": "rg-a",
                        "location": "westeurope",
                        "storage_accounts": [
                            {
                                "name": "acctone",
                                "created_at": "2025-01-01T00:00:00Z",
                                "keys_created_at": {"key1": "2025-02-01T00:00:00Z"},
                                "properties": {"minimumTlsVersion": "tls1_0"},
                            }
                        ],
                    }
                ],
            }
        ]
    }


def test_demo_is_packaged_and_looks_breached() -> None:
    assert "demo" in packaged_scenarios()
    tenant = Tenant.demo(clock=FrozenClock(NOW))

    assert tenant.default_subscription_id == "9b2f6c1d-4e8a-4f3b-a1c7-2d5e8f0a6b3c"
    assert [a.name for a in tenant.storage_accounts()] == ALL_ACCOUNTS
    assert [a.name for a in tenant.storage_accounts(tenant.default_subscription_id, PHI_RG)] == PHI_ACCOUNTS
    for name in PHI_ACCOUNTS:
        account = tenant.storage_account(name)
        assert account.properties["publicNetworkAccess"] == "Enabled"
        assert account.properties["allowBlobPublicAccess"] is True
        assert account.properties["networkAcls"]["defaultAction"] == "Allow"
        assert account.tags["data-classification"] == "phi"
        assert all(NOW - when >= timedelta(days=14) for when in account.key_times.values())
    bystander = tenant.storage_account("webassetscdn")
    assert bystander.resource_group == "rg-web-prod"
    assert bystander.tags["data-classification"] == "public"


def test_load_from_a_dict_a_yaml_file_and_by_name(tmp_path: Path) -> None:
    from_dict = load_scenario(small_scenario())
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(small_scenario()), encoding="utf-8")
    from_file = Tenant.from_scenario(path)
    by_name = load_scenario("demo")

    for tenant in (from_dict, from_file):
        account = tenant.storage_account("acctone")
        assert account.location == "westeurope"
        assert account.properties["minimumTlsVersion"] == "TLS1_0"
        assert account.created.isoformat() == "2025-01-01T00:00:00+00:00"
        assert account.key_times["key1"].isoformat() == "2025-02-01T00:00:00+00:00"
        assert account.key_times["key2"] == account.created
    assert by_name.find_storage_account("phiimaging") is not None
    assert from_dict.token != from_file.token  # every tenant gets its own random token


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s["subscriptions"][0].update(id="not-a-guid"), "id"),
        (
            lambda s: s["subscriptions"][0]["resource_groups"][0]["storage_accounts"][0].update(
                name="Bad_Name"
            ),
            "name",
        ),
        (lambda s: s.update(surprise=True), "surprise"),
        (
            lambda s: s["subscriptions"][0]["resource_groups"][0]["storage_accounts"][0].update(
                properties={"publicNetworkAccess": "Maybe"}
            ),
            "publicNetworkAccess",
        ),
    ],
)
def test_invalid_scenarios_are_refused_with_the_reason(change, message: str) -> None:  # type: ignore[no-untyped-def]
    scenario = small_scenario()
    change(scenario)
    with pytest.raises(ValueError, match=message):
        load_scenario(scenario)


def test_unknown_scenario_name_lists_the_packaged_ones() -> None:
    with pytest.raises(FileNotFoundError, match="demo"):
        load_scenario("no-such-scenario")


def test_storage_account_names_are_global() -> None:
    tenant = load_scenario(small_scenario())
    tenant.add_resource_group(SUBSCRIPTION, "rg-b")
    with pytest.raises(ValueError, match="already taken"):
        tenant.add_storage_account(SUBSCRIPTION, "rg-b", "acctone")


def test_demo_has_containers_open_to_the_internet() -> None:
    tenant = Tenant.demo(clock=FrozenClock(NOW))
    for name in PHI_ACCOUNTS:
        containers = tenant.storage_account(name).containers
        assert 1 <= len(containers) <= 2, name
        assert any(c.public_access != "None" for c in containers), name
    exports = tenant.storage_account("phipatientexports").container("patient-exports")
    assert exports.public_access == "Container"
    assert exports.blob_count > 0
    assert not exports.has_legal_hold and exports.immutability is None
    assert tenant.storage_account("phiclaimsarchive").blob_service.properties["deleteRetentionPolicy"] == {
        "allowPermanentDelete": False,
        "enabled": True,
        "days": 7,
    }
    summary = tenant.storage_account("phipatientexports").summary()
    assert [c["name"] for c in summary["containers"]] == ["etl-staging", "patient-exports"]


def test_scenario_containers_faults_and_blob_service() -> None:
    scenario = small_scenario()
    account = scenario["subscriptions"][0]["resource_groups"][0]["storage_accounts"][0]
    account["properties"]["allowBlobPublicAccess"] = True
    account["blob_service"] = {"isVersioningEnabled": True}
    account["containers"] = [
        {"name": "exports", "publicAccess": "blob", "metadata": {"a": "b"}, "blobs": 3},
        {"name": "held", "legal_hold_tags": ["Case1"], "immutability_days": 30},
    ]
    scenario["faults"] = {
        "latency_ms": 5,
        "throttle": True,
        "throttle_limits": {"writes": {"burst": 3, "per_second": 0.5}},
    }
    tenant = load_scenario(scenario, clock=FrozenClock(NOW))

    acct = tenant.storage_account("acctone")
    assert acct.blob_service.properties["isVersioningEnabled"] is True
    exports, held = acct.container("exports"), acct.container("held")
    assert exports.public_access == "Blob" and exports.metadata == {"a": "b"} and exports.blob_count == 3
    assert (
        held.legal_hold_tags == ["case1"] and held.immutability is not None and held.immutability.days == 30
    )
    assert tenant.faults.throttle is True and tenant.faults.latency_ms == 5
    assert tenant.faults.throttle_limits.writes.burst == 3
    assert tenant.faults.throttle_limits.reads.burst == 250  # ARM's default where the scenario is silent
    assert tenant.state()["faults"]["throttle_limits"]["writes"] == {"burst": 3, "per_second": 0.5}

    held.legal_hold.clear()
    tenant.reset()
    assert tenant.storage_account("acctone").container("held").legal_hold_tags == ["case1"]


@pytest.mark.parametrize(
    ("container", "message"),
    [
        ({"name": "open", "public_access": "Container"}, "Public access is not permitted"),
        ({"name": "Bad_Name"}, "containerName"),
        ({"name": "tagged", "legal_hold_tags": ["x"]}, "tags"),
    ],
)
def test_invalid_containers_are_refused_with_the_reason(container: dict, message: str) -> None:
    scenario = small_scenario()
    scenario["subscriptions"][0]["resource_groups"][0]["storage_accounts"][0]["containers"] = [container]
    with pytest.raises(ValueError, match=message):
        load_scenario(scenario)
