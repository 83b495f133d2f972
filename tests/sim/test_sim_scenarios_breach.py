"""Packaged breach scenarios load and carry their evidence; the large-tenant generator is deterministic."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sim_helpers import NOW

from irflow.clock import FrozenClock
from irflow.sim import Tenant, load_scenario, packaged_scenarios
from irflow.sim.generator import generate_scenario, generate_tenant

BREACHES = ["sas-exfiltration", "public-blob-exposure", "keyvault-overbroad-access"]


def query(tenant: Tenant, text: str) -> list[list]:
    [workspace] = tenant.logs.workspaces
    return tenant.logs.query(workspace.workspace_id, text, now=tenant.now())["tables"][0]["rows"]


@pytest.mark.parametrize("name", BREACHES)
def test_breach_scenarios_are_packaged_and_load(name: str) -> None:
    assert name in packaged_scenarios()
    tenant = Tenant.from_scenario(name, clock=FrozenClock(NOW))
    assert tenant.logs.workspaces and tenant.directory.users
    for workspace in tenant.logs.workspaces:
        for rows in workspace.tables.values():
            assert all(NOW - timedelta(days=30) <= r["TimeGenerated"] <= NOW for r in rows)


def test_sas_exfiltration_evidence() -> None:
    tenant = Tenant.from_scenario("sas-exfiltration", clock=FrozenClock(NOW))
    rows = query(
        tenant,
        "StorageBlobLogs | where AuthenticationType == 'SAS'"
        " | summarize count() by OperationName, CallerIpAddress"
        " | order by count_ desc",
    )
    assert rows == [["GetBlob", "198.51.100.23:40112", 300], ["ListBlobs", "198.51.100.23:40112", 1]]
    policies = tenant.storage_account("phiexportsnw").blob_service.containers
    assert policies  # the container with the over-broad stored access policy exists
    [setting] = tenant.diagnostic_settings.list(
        f"{tenant.storage_account('phiexportsnw').id}/blobServices/default"
    )
    assert setting["properties"]["workspaceId"].endswith("/law-nw-security")


def test_public_blob_exposure_evidence() -> None:
    tenant = Tenant.from_scenario("public-blob-exposure", clock=FrozenClock(NOW))
    rows = query(
        tenant,
        "StorageBlobLogs | where AuthenticationType == 'Anonymous' and StatusCode == '200'"
        " and OperationName == 'GetBlob'"
        " | summarize n = count(), files = dcount(ObjectKey)",
    )
    assert rows == [[120, 80]]
    account = tenant.storage_account("phidischargefab")
    assert account.allows_blob_public_access


def test_keyvault_overbroad_access_evidence() -> None:
    tenant = Tenant.from_scenario("keyvault-overbroad-access", clock=FrozenClock(NOW))
    rows = query(
        tenant,
        "AzureDiagnostics | where OperationName == 'KeyUnwrap' and CallerIPAddress == '185.220.101.4'"
        " | summarize count() by identity_claim_upn_s",
    )
    assert rows == [["avery@tailspin.example", 37]]
    risky = query(tenant, "SigninLogs | where RiskLevelDuringSignIn == 'high' | project UserPrincipalName")
    assert risky == [["avery@tailspin.example"]]
    vault = tenant.key_vault("kv-phi-tailspin")
    assert any("decrypt" in p["permissions"].get("keys", []) for p in vault.access_policies)
    # The dev VNet is peered into the PHI VNet whose data subnet admits the VirtualNetwork tag.
    subscription = tenant.default_subscription_id
    assert subscription is not None
    phi_vnet = tenant.get_virtual_network(subscription, "rg-tailspin-phi", "vnet-phi-tailspin")
    dev_vnet = tenant.get_virtual_network(subscription, "rg-tailspin-dev", "vnet-dev-tailspin")
    assert len(phi_vnet.peerings) == 1 and len(dev_vnet.peerings) == 1
    nsg = tenant.get_network_security_group(subscription, "rg-tailspin-phi", "nsg-phi-data")
    assert len(nsg.rules) == 2


def test_invalid_monitoring_sections_are_named() -> None:
    base = {"subscriptions": [{"id": "11111111-2222-4333-8444-555555555555"}]}
    with pytest.raises(ValueError, match="no column Bogus"):
        load_scenario(
            {
                **base,
                "workspaces": [{"name": "law1", "tables": {"SigninLogs": [{"minutes_ago": 1, "Bogus": 1}]}}],
            }
        )
    with pytest.raises(ValueError, match="unknown table"):
        load_scenario({**base, "workspaces": [{"name": "law1", "tables": {"Nope": []}}]})
    with pytest.raises(ValueError, match="repeat"):
        load_scenario({**base, "workspaces": [{"name": "law1", "tables": {"SigninLogs": [{"repeat": 2}]}}]})
    with pytest.raises(ValueError, match="graph user"):
        load_scenario(
            {**base, "graph": {"users": [{"userPrincipalName": "a@b.c"}, {"userPrincipalName": "a@b.c"}]}}
        )


def test_generator_is_deterministic_and_large() -> None:
    first = generate_scenario(42, subscriptions=3, resource_groups=5, storage_accounts=400)
    assert first == generate_scenario(42, subscriptions=3, resource_groups=5, storage_accounts=400)
    assert first != generate_scenario(43, subscriptions=3, resource_groups=5, storage_accounts=400)
    tenant = generate_tenant(
        42, subscriptions=3, resource_groups=5, storage_accounts=400, clock=FrozenClock(NOW)
    )
    accounts = tenant.storage_accounts()
    assert len(accounts) == 400
    assert len(tenant.subscriptions) == 3
    per_group = [len(g.storage_accounts) for s in tenant.subscriptions for g in s.resource_groups.values()]
    assert len(per_group) == 15 and set(per_group) <= {26, 27}
    phi = [a for a in accounts if a.tags["data-classification"] == "phi"]
    assert 0 < len(phi) < 400
    assert any(a.allows_blob_public_access for a in phi)
    with pytest.raises(ValueError):
        generate_scenario(1, subscriptions=0)
