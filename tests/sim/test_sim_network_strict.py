"""Microsoft.Network as strict as Azure: one rule per priority and direction, flushConnection and established
flows, NSG in use, subnet PUT references, subnet peerings, list by subscription (paged). Both mounts.

Sources: https://learn.microsoft.com/azure/virtual-network/network-security-groups-overview#security-rules
(priorities 100-4096, unique per direction), https://learn.microsoft.com/azure/virtual-network/
network-security-group-how-it-works (flushConnection and existing flows),
https://learn.microsoft.com/rest/api/virtualnetwork/network-security-groups/list-all and
https://learn.microsoft.com/rest/api/virtualnetwork/virtual-networks/list-all (list by subscription,
nextLink)."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from sim_helpers import PHI_RG, Sim
from test_sim_network import DENY_ANALYTICS, NSG, VNET, network_client

SUBNET = "snet-phi-data"


@pytest.fixture(autouse=True)
def _fast_polls(sim: Sim) -> None:
    sim.tenant.lro.retry_after = 0


def _client(sim: Sim):  # type: ignore[no-untyped-def]
    client = network_client(sim)
    client._config.polling_interval = 0
    return client


def _subnet(sim: Sim):  # type: ignore[no-untyped-def]
    return sim.tenant.get_virtual_network(sim.subscription_id, PHI_RG, VNET).subnets[SUBNET]


def _nsg(sim: Sim):  # type: ignore[no-untyped-def]
    return sim.tenant.get_network_security_group(sim.subscription_id, PHI_RG, NSG)


def test_a_second_rule_at_the_same_priority_and_direction_is_refused(sim: Sim) -> None:
    # "You can't create two security rules with the same priority and direction."
    # https://learn.microsoft.com/azure/virtual-network/network-security-groups-overview#security-rules
    client = _client(sim)
    client.security_rules.begin_create_or_update(PHI_RG, NSG, "deny-a", DENY_ANALYTICS).result()
    with pytest.raises(HttpResponseError) as caught:
        client.security_rules.begin_create_or_update(PHI_RG, NSG, "deny-b", DENY_ANALYTICS)
    assert caught.value.status_code == 400 and caught.value.error.code == "SecurityRuleConflict"
    outbound = {"properties": {**DENY_ANALYTICS["properties"], "direction": "Outbound"}}
    client.security_rules.begin_create_or_update(PHI_RG, NSG, "deny-b", outbound).result()


def test_priorities_outside_100_to_4096_are_refused(sim: Sim) -> None:
    for priority in (99, 4097):
        body = {"properties": {**DENY_ANALYTICS["properties"], "priority": priority}}
        with pytest.raises(HttpResponseError) as caught:
            _client(sim).security_rules.begin_create_or_update(PHI_RG, NSG, "deny-x", body)
        assert caught.value.error.code == "SecurityRuleInvalidPriority"


def test_established_flows_survive_a_rule_change_unless_flush_connection(sim: Sim) -> None:
    # flushConnection: "flows ... will be re-evaluated when rules are updated. Initial enablement will trigger
    # re-evaluation." (networkSecurityGroup.json, NetworkSecurityGroupPropertiesFormat)
    _subnet(sim).established_flows = 5
    client = _client(sim)
    client.security_rules.begin_create_or_update(PHI_RG, NSG, "deny-a", DENY_ANALYTICS).result()
    assert _subnet(sim).established_flows == 5
    nsg = client.network_security_groups.get(PHI_RG, NSG).as_dict()
    assert nsg["properties"]["flushConnection"] is False
    rules = [{"name": r["name"], "properties": r["properties"]} for r in nsg["properties"]["securityRules"]]
    body = {"location": nsg["location"], "properties": {"securityRules": rules, "flushConnection": True}}
    client.network_security_groups.begin_create_or_update(PHI_RG, NSG, body).result()
    assert _subnet(sim).established_flows == 0
    assert _nsg(sim).rule("deny-a") is not None  # the rules sent back are kept
    _subnet(sim).established_flows = 3
    client.security_rules.begin_delete(PHI_RG, NSG, "deny-a").result()
    assert _subnet(sim).established_flows == 0


def test_an_nsg_put_is_a_full_replacement_and_checks_its_rules(sim: Sim) -> None:
    client = _client(sim)
    location = _nsg(sim).location
    twice = [
        {"name": "a", **DENY_ANALYTICS},
        {"name": "b", **DENY_ANALYTICS},
    ]
    with pytest.raises(HttpResponseError) as caught:
        client.network_security_groups.begin_create_or_update(
            PHI_RG, "nsg-new", {"location": location, "properties": {"securityRules": twice}}
        )
    assert caught.value.error.code == "SecurityRuleConflict"
    with pytest.raises(HttpResponseError) as caught:
        client.network_security_groups.begin_create_or_update(PHI_RG, "nsg-new", {"properties": {}})
    assert caught.value.error.code == "LocationRequired"
    client.network_security_groups.begin_create_or_update(
        PHI_RG, NSG, {"location": location, "properties": {"securityRules": []}}
    ).result()
    assert _nsg(sim).rules == {}


def test_an_nsg_in_use_cannot_be_deleted(sim: Sim) -> None:
    with pytest.raises(HttpResponseError) as caught:
        _client(sim).network_security_groups.begin_delete(PHI_RG, NSG)
    assert caught.value.status_code == 400
    assert caught.value.error.code == "InUseNetworkSecurityGroupCannotBeDeleted"
    assert SUBNET in caught.value.error.message


def test_subnet_put_replaces_the_association_and_checks_the_reference(sim: Sim) -> None:
    client = _client(sim)
    subnet = client.subnets.get(PHI_RG, VNET, SUBNET).as_dict()
    props = {"addressPrefix": subnet["properties"]["addressPrefix"]}
    bad = {**props, "networkSecurityGroup": {"id": _nsg(sim).id + "x"}}
    with pytest.raises(HttpResponseError) as caught:
        client.subnets.begin_create_or_update(PHI_RG, VNET, SUBNET, {"properties": bad})
    assert caught.value.error.code == "InvalidResourceReference"
    with pytest.raises(HttpResponseError) as caught:
        client.subnets.begin_create_or_update(
            PHI_RG, VNET, SUBNET, {"properties": {**props, "privateEndpointNetworkPolicies": "On"}}
        )
    assert caught.value.status_code == 400
    # A PUT without networkSecurityGroup dissociates it (a PUT is a full replacement)
    client.subnets.begin_create_or_update(
        PHI_RG, VNET, SUBNET, {"properties": {**props, "privateEndpointNetworkPolicies": "Enabled"}}
    ).result()
    assert _subnet(sim).network_security_group_id is None
    assert _subnet(sim).private_endpoint_network_policies == "Enabled"


def test_a_subnet_peering_needs_existing_subnets_on_both_sides(sim: Sim) -> None:
    client = _client(sim)
    analytics = sim.tenant.get_virtual_network(sim.subscription_id, "rg-analytics", "vnet-analytics")
    remote_subnet = next(iter(analytics.subnets.values())).name
    base = {"remoteVirtualNetwork": {"id": analytics.id}, "peerCompleteVnets": False}
    with pytest.raises(HttpResponseError) as caught:
        client.virtual_network_peerings.begin_create_or_update(
            PHI_RG, VNET, "peer-sub", {"properties": {**base, "localSubnetNames": [SUBNET]}}
        )
    assert caught.value.status_code == 400
    with pytest.raises(HttpResponseError) as caught:
        client.virtual_network_peerings.begin_create_or_update(
            PHI_RG,
            VNET,
            "peer-sub",
            {"properties": {**base, "localSubnetNames": ["nope"], "remoteSubnetNames": [remote_subnet]}},
        )
    assert caught.value.error.code == "InvalidResourceReference"
    body = {"properties": {**base, "localSubnetNames": [SUBNET], "remoteSubnetNames": [remote_subnet]}}
    made = client.virtual_network_peerings.begin_create_or_update(PHI_RG, VNET, "peer-sub", body).result()
    props = made.as_dict()["properties"]
    assert props["peerCompleteVnets"] is False
    assert props["localSubnetNames"] == [SUBNET] and props["remoteSubnetNames"] == [remote_subnet]
    assert props["remoteAddressSpace"]["addressPrefixes"] == [
        analytics.subnets[remote_subnet.lower()].address_prefix
    ]


def test_nsgs_and_vnets_list_by_subscription_page_through_next_link(sim: Sim) -> None:
    sim.tenant.page_size = 1
    client = _client(sim)
    nsgs = [n.name for n in client.network_security_groups.list_all()]
    vnets = [v.name for v in client.virtual_networks.list_all()]
    assert NSG in nsgs and len(nsgs) == len(
        {n.name for g in _groups(sim) for n in g.network_security_groups.values()}
    )
    assert VNET in vnets and "vnet-analytics" in vnets
    assert [n.name for n in client.network_security_groups.list(PHI_RG)] == [
        n.name
        for n in sorted(
            _groups(sim, PHI_RG)[0].network_security_groups.values(), key=lambda n: n.name.lower()
        )
    ]
    assert len(sim.tenant.journal.entries()) > len(nsgs)  # one request per page


def _groups(sim: Sim, name: str | None = None):  # type: ignore[no-untyped-def]
    groups = sim.tenant.subscription(sim.subscription_id).resource_groups.values()
    return [g for g in groups if name is None or g.name.lower() == name.lower()]
