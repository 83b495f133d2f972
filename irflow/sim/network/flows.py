"""Established flows and the NSG's ``flushConnection``.

Azure keeps a flow record per open connection; a rule change does not cut flows already established
unless the NSG's ``flushConnection`` is true, and turning it on re-evaluates them once ("When enabled, flows
created from Network Security Group connections will be re-evaluated when rules are updated. Initial
enablement will trigger re-evaluation.": azure-rest-api-specs
specification/network/resource-manager/Microsoft.Network/stable/*/networkSecurityGroup.json,
NetworkSecurityGroupPropertiesFormat.flushConnection; flow records:
https://learn.microsoft.com/azure/virtual-network/network-security-groups-overview#security-rules).

The simulator counts a subnet's open flows (``Subnet.established_flows``, from the scenario) and models a
re-evaluation as every one of them being cut: containment must not rely on it cutting less. Moving a subnet
onto another NSG is modelled as a rule change of that NSG (Azure does not document the case; the stricter
reading is that flows survive unless the new NSG flushes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from irflow.sim.models import Tenant
    from irflow.sim.network.models import NetworkSecurityGroup, Subnet


def subnets_using(tenant: Tenant, nsg_id: str) -> list[Subnet]:
    with tenant.lock:
        return [
            subnet
            for vnet in tenant._network("virtual_networks")
            for subnet in vnet.subnets.values()
            if (subnet.network_security_group_id or "").lower() == nsg_id.lower()
        ]


def rules_changed(tenant: Tenant, nsg: NetworkSecurityGroup) -> None:
    """A rule change of ``nsg`` took effect: its subnets' flows are re-evaluated only when it flushes."""
    if nsg.flush_connection:
        re_evaluate(tenant, nsg)


def re_evaluate(tenant: Tenant, nsg: NetworkSecurityGroup) -> None:
    for subnet in subnets_using(tenant, nsg.id):
        subnet.established_flows = 0
