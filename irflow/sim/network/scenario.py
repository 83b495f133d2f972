"""Scenario entries of Microsoft.Network, under a resource group::

    network_security_groups:
      - name: nsg-phi-data
        flush_connection: false         # Azure's default: established flows survive rule changes
        security_rules:                 # ARM rule properties, plus the rule's name
          - {name: allow-vnet-sql, priority: 200, direction: Inbound, access: Allow, protocol: Tcp,
             sourceAddressPrefix: VirtualNetwork, sourcePortRange: "*",
             destinationAddressPrefix: "*", destinationPortRange: "1433"}
    virtual_networks:
      - name: vnet-phi
        address_prefixes: [10.10.0.0/16]
        subnets:
          - {name: snet-phi-data, address_prefix: 10.10.1.0/24, network_security_group: nsg-phi-data,
             private_endpoint_network_policies: Disabled, private_endpoints: [pe-phi-blob],
             established_flows: 12}
        peerings:                       # remote: a VNet name (any group of the subscription) or an id
          - {name: peer-to-analytics, remote_virtual_network: vnet-analytics, allow_forwarded_traffic: true}
          - {name: peer-etl, remote_virtual_network: vnet-etl, peer_complete_vnets: false,
             local_subnet_names: [snet-phi-data], remote_subnet_names: [snet-etl]}

Peerings are added after every network of the scenario exists, so they may point forward.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from irflow.sim.models import Tenant


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class NetworkSecurityGroupSpec(_Strict):
    name: str = Field(min_length=1, max_length=80)
    location: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    security_rules: list[dict[str, Any]] = Field(default_factory=list)
    flush_connection: bool = False


class SubnetSpec(_Strict):
    name: str = Field(min_length=1, max_length=80)
    address_prefix: str
    network_security_group: str | None = None
    private_endpoint_network_policies: Literal[
        "Disabled", "Enabled", "NetworkSecurityGroupEnabled", "RouteTableEnabled"
    ] = "Disabled"
    private_endpoints: list[str] = Field(
        default_factory=list, description="Names of private endpoints in it."
    )
    established_flows: int = Field(default=0, ge=0, description="Connections open through it.")


class PeeringSpec(_Strict):
    name: str = Field(min_length=1, max_length=80)
    remote_virtual_network: str
    allow_virtual_network_access: bool = True
    allow_forwarded_traffic: bool = False
    allow_gateway_transit: bool = False
    use_remote_gateways: bool = False
    peer_complete_vnets: bool = True
    local_subnet_names: list[str] = Field(default_factory=list)
    remote_subnet_names: list[str] = Field(default_factory=list)
    peering_state: str = "Connected"


class VirtualNetworkSpec(_Strict):
    name: str = Field(min_length=2, max_length=64)
    location: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    address_prefixes: list[str] = Field(min_length=1)
    subnets: list[SubnetSpec] = Field(default_factory=list)
    peerings: list[PeeringSpec] = Field(default_factory=list)


def load_group(tenant: Tenant, subscription_id: str, group: Any) -> None:
    """NSGs, then VNets with their subnets, of one resource group spec (peerings: :func:`load_peerings`)."""
    for nsg in group.network_security_groups:
        tenant.add_network_security_group(
            subscription_id,
            group.name,
            nsg.name,
            location=nsg.location,
            tags=nsg.tags,
            security_rules=nsg.security_rules,
            flush_connection=nsg.flush_connection,
        )
    for vnet in group.virtual_networks:
        tenant.add_virtual_network(
            subscription_id,
            group.name,
            vnet.name,
            vnet.address_prefixes,
            location=vnet.location,
            tags=vnet.tags,
            subnets=[s.model_dump() for s in vnet.subnets],
        )


def load_peerings(tenant: Tenant, subscription_id: str, groups: list[Any]) -> None:
    names = {
        v.name.lower(): tenant.get_virtual_network(subscription_id, g.name, v.name).id
        for g in groups
        for v in g.virtual_networks
    }
    for group in groups:
        for vnet in group.virtual_networks:
            for peering in vnet.peerings:
                remote = peering.remote_virtual_network
                remote_id = remote if remote.startswith("/") else names.get(remote.lower())
                if remote_id is None:
                    raise ValueError(
                        f"peering {peering.name}: no virtual network {remote!r} in the subscription"
                    )
                options = peering.model_dump(exclude={"name", "remote_virtual_network"})
                tenant.add_virtual_network_peering(
                    subscription_id, group.name, vnet.name, peering.name, remote_id, **options
                )
