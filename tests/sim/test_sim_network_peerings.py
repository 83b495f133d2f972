"""Peering create/update (PUT, long-running via Azure-AsyncOperation) and subnet GET via azure-mgmt-network,
both mounts."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from sim_helpers import PHI_RG, Sim
from test_sim_network import network_client

VNET, PEERING = "vnet-phi", "peer-to-analytics"


@pytest.fixture(autouse=True)
def _fast_polls(sim: Sim) -> None:
    sim.tenant.lro.retry_after = 0  # with polling_interval=0 the SDK does not sleep between polls


def _body(sim: Sim, remote_group: str, remote: str, **flags: bool) -> dict:  # type: ignore[type-arg]
    remote_id = (
        f"/subscriptions/{sim.subscription_id}/resourceGroups/{remote_group}/providers/Microsoft.Network/"
        f"virtualNetworks/{remote}"
    )
    return {"properties": {"remoteVirtualNetwork": {"id": remote_id}, **flags}}


def test_get_subnet(sim: Sim) -> None:
    client = network_client(sim)
    subnet = client.subnets.get(PHI_RG, VNET, "snet-phi-data")
    assert subnet.address_prefix == "10.10.1.0/24"
    assert subnet.network_security_group.id.endswith("/networkSecurityGroups/nsg-phi-data")
    assert client.subnets.get(PHI_RG, VNET, "snet-phi-app").network_security_group is None
    with pytest.raises(ResourceNotFoundError):
        client.subnets.get(PHI_RG, VNET, "snet-none")


def test_recreating_a_deleted_peering_needs_the_remote_one_updated_first(sim: Sim) -> None:
    client = network_client(sim)
    client.virtual_network_peerings.begin_delete(PHI_RG, VNET, PEERING, polling_interval=0).result()
    body = _body(sim, "rg-analytics", "vnet-analytics", allowForwardedTraffic=True)

    with pytest.raises(HttpResponseError) as caught:
        client.virtual_network_peerings.begin_create_or_update(
            PHI_RG, VNET, PEERING, body, polling_interval=0
        )
    assert caught.value.status_code == 400 and caught.value.error.code == "RemotePeeringIsDisconnected"

    back = _body(sim, PHI_RG, VNET, allowForwardedTraffic=True)
    updated = client.virtual_network_peerings.begin_create_or_update(
        "rg-analytics", "vnet-analytics", "peer-to-phi", back, polling_interval=0
    ).result()
    assert updated.peering_state == "Initiated" and updated.provisioning_state == "Succeeded"
    assert sim.tenant.journal.writes()[-1].status == 200  # an update

    created = client.virtual_network_peerings.begin_create_or_update(
        PHI_RG, VNET, PEERING, body, polling_interval=0
    ).result()
    assert created.peering_state == "Connected" and created.allow_forwarded_traffic is True
    assert created.remote_address_space.address_prefixes == ["10.20.0.0/16"]
    put = sim.tenant.journal.writes()[-1]
    assert (put.method, put.status, put.response["properties"]["provisioningState"]) == (
        "PUT",
        201,
        "Updating",
    )
    assert client.virtual_network_peerings.get(
        "rg-analytics", "vnet-analytics", "peer-to-phi"
    ).peering_state == ("Connected")


def test_peering_to_an_unknown_network_is_refused(sim: Sim) -> None:
    with pytest.raises(HttpResponseError) as caught:
        network_client(sim).virtual_network_peerings.begin_create_or_update(
            PHI_RG, VNET, "peer-x", _body(sim, "rg-analytics", "vnet-none"), polling_interval=0
        )
    assert caught.value.error.code == "InvalidResourceReference"
    assert sim.tenant.journal.writes()[-1].status == 400


def test_peering_write_needs_its_permission(sim: Sim) -> None:
    sim.tenant.deny("Microsoft.Network/virtualNetworks/virtualNetworkPeerings/write")
    with pytest.raises(HttpResponseError) as caught:
        network_client(sim).virtual_network_peerings.begin_create_or_update(
            PHI_RG, VNET, PEERING, _body(sim, "rg-analytics", "vnet-analytics"), polling_interval=0
        )
    assert caught.value.status_code == 403 and caught.value.error.code == "AuthorizationFailed"
