"""Microsoft.Network (NSGs, security rules as LROs, VNets, peerings) via azure-mgmt-network, both mounts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.network import NetworkManagementClient
from sim_helpers import PHI_RG, Sim

from irflow.azure.clients import StaticTokenCredential

NSG = "nsg-phi-data"
VNET = "vnet-phi"
PEERING = "peer-to-analytics"
DENY_ANALYTICS = {
    "properties": {
        "priority": 150,
        "direction": "Inbound",
        "access": "Deny",
        "protocol": "*",
        "sourceAddressPrefix": "10.20.0.0/16",
        "sourcePortRange": "*",
        "destinationAddressPrefix": "*",
        "destinationPortRange": "*",
    }
}


def network_client(sim: Sim) -> NetworkManagementClient:
    return NetworkManagementClient(
        StaticTokenCredential(sim.tenant.token),
        sim.subscription_id,
        base_url=sim.endpoint,
        credential_scopes=[sim.endpoint + "/.default"],
        connection_verify=sim.verify,
    )


@pytest.fixture(autouse=True)
def _fast_polls(sim: Sim) -> None:
    sim.tenant.lro.retry_after = 0  # with polling_interval=0 the SDK does not sleep between polls


def _stepping_clock(sim: Sim, clock) -> None:  # type: ignore[no-untyped-def]
    """Every read of the tenant clock advances it one second (deterministic, no wall-clock waits)."""

    def step():  # type: ignore[no-untyped-def]
        clock.advance(timedelta(seconds=1))
        return clock()

    sim.tenant.clock = step


def test_get_nsg_has_azure_shape(sim: Sim) -> None:
    nsg = network_client(sim).network_security_groups.get(PHI_RG, NSG)

    assert nsg.id.endswith(
        f"/resourceGroups/{PHI_RG}/providers/Microsoft.Network/networkSecurityGroups/{NSG}"
    )
    assert nsg.type == "Microsoft.Network/networkSecurityGroups" and nsg.provisioning_state == "Succeeded"
    rules = {r.name: r for r in nsg.security_rules}
    assert set(rules) == {"allow-vnet-sql-inbound", "deny-internet-inbound"}
    sql = rules["allow-vnet-sql-inbound"]
    assert (sql.source_address_prefix, sql.destination_port_range, sql.priority) == (
        "VirtualNetwork",
        "1433",
        200,
    )
    assert [r.name for r in nsg.default_security_rules][:3] == [
        "AllowVnetInBound",
        "AllowAzureLoadBalancerInBound",
        "DenyAllInBound",
    ]
    assert [s.id.rsplit("/", 1)[-1] for s in nsg.subnets] == ["snet-phi-data"]


def test_create_rule_is_an_lro_polled_until_succeeded(sim: Sim, clock) -> None:  # type: ignore[no-untyped-def]
    sim.tenant.lro.duration_s = 20  # well above the clock reads one PUT makes, so a poll sees InProgress
    _stepping_clock(sim, clock)

    rule = (
        network_client(sim)
        .security_rules.begin_create_or_update(
            PHI_RG, NSG, "deny-analytics", DENY_ANALYTICS, polling_interval=0
        )
        .result()
    )

    assert rule.name == "deny-analytics" and rule.provisioning_state == "Succeeded"
    assert rule.access == "Deny" and rule.source_address_prefix == "10.20.0.0/16"
    entries = sim.tenant.journal.entries()
    assert (entries[0].method, entries[0].status, entries[0].response["properties"]["provisioningState"]) == (
        "PUT",
        201,
        "Updating",
    )
    polls = [e for e in entries if e.route == "network.operations.get_status"]
    assert [p.response["status"] for p in polls][-1] == "Succeeded"
    assert "InProgress" in [p.response["status"] for p in polls]
    assert (entries[-1].method, entries[-1].route) == ("GET", "network.security_rules.get")
    assert (
        sim.tenant.state()["network_security_groups"][0]["securityRules"]["deny-analytics"]["priority"] == 150
    )


def test_update_answers_200_and_delete_removes_the_rule(sim: Sim) -> None:
    client = network_client(sim)
    body = {"properties": {**DENY_ANALYTICS["properties"], "priority": 190}}
    rule = client.security_rules.begin_create_or_update(
        PHI_RG, NSG, "allow-vnet-sql-inbound", body, polling_interval=0
    ).result()
    assert rule.priority == 190
    assert sim.tenant.journal.entries()[0].status == 200

    client.security_rules.begin_delete(PHI_RG, NSG, "allow-vnet-sql-inbound", polling_interval=0).result()

    with pytest.raises(ResourceNotFoundError):
        client.security_rules.get(PHI_RG, NSG, "allow-vnet-sql-inbound")
    delete = next(e for e in sim.tenant.journal.entries() if e.method == "DELETE")
    assert delete.status == 202


def test_lro_failure_knob_rolls_back(sim: Sim) -> None:
    sim.tenant.lro.fail_with("InternalServerError", "Simulated failure.")

    with pytest.raises(HttpResponseError) as caught:
        network_client(sim).security_rules.begin_create_or_update(
            PHI_RG, NSG, "deny-analytics", DENY_ANALYTICS, polling_interval=0
        ).result()

    assert "Simulated failure" in str(caught.value)
    poll = next(e for e in sim.tenant.journal.entries() if e.route == "network.operations.get_status")
    assert poll.response == {
        "status": "Failed",
        "error": {"code": "InternalServerError", "message": "Simulated failure."},
    }
    sim.tenant.lro.clear_failure()
    with pytest.raises(ResourceNotFoundError):
        network_client(sim).security_rules.get(PHI_RG, NSG, "deny-analytics")


def test_invalid_rules_are_refused(sim: Sim) -> None:
    client = network_client(sim)
    with pytest.raises(HttpResponseError) as caught:
        body = {"properties": {**DENY_ANALYTICS["properties"], "priority": 50}}
        client.security_rules.begin_create_or_update(PHI_RG, NSG, "bad", body, polling_interval=0)
    assert caught.value.error.code == "SecurityRuleInvalidPriority"
    with pytest.raises(HttpResponseError) as caught:
        body = {"properties": {**DENY_ANALYTICS["properties"], "priority": 200}}
        client.security_rules.begin_create_or_update(PHI_RG, NSG, "clash", body, polling_interval=0)
    assert caught.value.error.code == "SecurityRuleConflict"
    assert sim.tenant.journal.writes()[-1].status == 400


def test_rbac_denial_is_403_for_a_rule_write(sim: Sim) -> None:
    sim.tenant.deny(
        "Microsoft.Network/networkSecurityGroups/securityRules/write", f"/subscriptions/{sim.subscription_id}"
    )

    with pytest.raises(HttpResponseError) as caught:
        network_client(sim).security_rules.begin_create_or_update(
            PHI_RG, NSG, "deny-analytics", DENY_ANALYTICS, polling_interval=0
        )

    assert caught.value.status_code == 403 and caught.value.error.code == "AuthorizationFailed"
    assert "securityRules/write" in caught.value.error.message
    assert network_client(sim).network_security_groups.get(PHI_RG, NSG).name == NSG
    assert len(network_client(sim).network_security_groups.get(PHI_RG, NSG).security_rules) == 2


def test_vnet_shows_subnet_nsg_and_the_peering(sim: Sim) -> None:
    vnet = network_client(sim).virtual_networks.get(PHI_RG, VNET)

    assert vnet.address_space.address_prefixes == ["10.10.0.0/16"]
    subnets = {s.name: s for s in vnet.subnets}
    assert subnets["snet-phi-data"].network_security_group.id.endswith(f"/networkSecurityGroups/{NSG}")
    assert subnets["snet-phi-app"].network_security_group is None
    [peering] = vnet.virtual_network_peerings
    assert peering.name == PEERING and peering.allow_forwarded_traffic is True
    assert peering.remote_virtual_network.id.endswith(
        "/resourceGroups/rg-analytics/providers/Microsoft.Network/virtualNetworks/vnet-analytics"
    )
    assert peering.remote_address_space.address_prefixes == ["10.20.0.0/16"]
    assert peering.peering_state == "Connected"


def test_peering_list_and_get(sim: Sim) -> None:
    client = network_client(sim)
    assert [p.name for p in client.virtual_network_peerings.list("rg-analytics", "vnet-analytics")] == [
        "peer-to-phi"
    ]
    assert client.virtual_network_peerings.get(PHI_RG, VNET, PEERING).peering_sync_level == "FullyInSync"
    with pytest.raises(ResourceNotFoundError):
        client.virtual_network_peerings.get(PHI_RG, VNET, "nope")


def test_peering_delete_polls_location_and_disconnects_the_remote(sim: Sim, clock) -> None:  # type: ignore[no-untyped-def]
    sim.tenant.lro.duration_s = 30
    _stepping_clock(sim, clock)
    client = network_client(sim)

    client.virtual_network_peerings.begin_delete(PHI_RG, VNET, PEERING, polling_interval=0).result()

    entries = sim.tenant.journal.entries()
    assert (entries[0].method, entries[0].status) == ("DELETE", 202)
    polls = [e.status for e in entries if e.route == "network.operations.get_result"]
    assert polls[0] == 202 and polls[-1] == 204
    assert list(client.virtual_network_peerings.list(PHI_RG, VNET)) == []
    [back] = client.virtual_network_peerings.list("rg-analytics", "vnet-analytics")
    assert back.peering_state == "Disconnected"

    # Deleting it again: Azure answers 204 at once.
    client.virtual_network_peerings.begin_delete(PHI_RG, VNET, PEERING, polling_interval=0).result()
    assert sim.tenant.journal.entries()[-1].status == 204


def test_peering_read_while_deleting(sim: Sim) -> None:
    sim.tenant.lro.duration_s = 60
    client = network_client(sim)
    poller = client.virtual_network_peerings.begin_delete(PHI_RG, VNET, PEERING, polling_interval=0)
    assert client.virtual_network_peerings.get(PHI_RG, VNET, PEERING).provisioning_state == "Deleting"
    assert poller.status() == "InProgress"
    sim.tenant.reset()
    assert client.virtual_network_peerings.get(PHI_RG, VNET, PEERING).provisioning_state == "Succeeded"


def test_scenario_rejects_unknown_remote(clock) -> None:  # type: ignore[no-untyped-def]
    from irflow.sim import Tenant

    group = {
        "name": "rg",
        "virtual_networks": [
            {
                "name": "v1",
                "address_prefixes": ["10.0.0.0/16"],
                "peerings": [{"name": "p", "remote_virtual_network": "v9"}],
            }
        ],
    }
    with pytest.raises(ValueError, match="v9"):
        Tenant.from_scenario(
            {"subscriptions": [{"id": "00000000-0000-0000-0000-000000000001", "resource_groups": [group]}]},
            clock=clock,
        )
