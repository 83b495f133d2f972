"""Route table of Microsoft.Network (NSGs, security rules, VNets, subnets, peerings, operation polling),
with the Azure RBAC operation each needs."""

from __future__ import annotations

from irflow.sim.network import resources, responses
from irflow.sim.router import Route

_SUB = "/subscriptions/{subscriptionId}"
_RG = _SUB + "/resourceGroups/{resourceGroupName}/providers/Microsoft.Network"
_NSG = _RG + "/networkSecurityGroups/{networkSecurityGroupName}"
_RULE = _NSG + "/securityRules/{securityRuleName}"
_VNET = _RG + "/virtualNetworks/{virtualNetworkName}"
_PEERINGS = _VNET + "/virtualNetworkPeerings"
_LOCATION = _SUB + "/providers/Microsoft.Network/locations/{location}"
_SUB_NET = _SUB + "/providers/Microsoft.Network"

_OP = "Microsoft.Network"
NSG_READ = f"{_OP}/networkSecurityGroups/read"
NSG_WRITE = f"{_OP}/networkSecurityGroups/write"
NSG_DELETE = f"{_OP}/networkSecurityGroups/delete"
NSG_JOIN = f"{_OP}/networkSecurityGroups/join/action"
SUBNET_WRITE = f"{_OP}/virtualNetworks/subnets/write"
RULE_READ = f"{_OP}/networkSecurityGroups/securityRules/read"
RULE_WRITE = f"{_OP}/networkSecurityGroups/securityRules/write"
RULE_DELETE = f"{_OP}/networkSecurityGroups/securityRules/delete"
VNET_READ = f"{_OP}/virtualNetworks/read"
PEERING_READ = f"{_OP}/virtualNetworks/virtualNetworkPeerings/read"
PEERING_WRITE = f"{_OP}/virtualNetworks/virtualNetworkPeerings/write"
PEERING_DELETE = f"{_OP}/virtualNetworks/virtualNetworkPeerings/delete"
SUBNET_READ = f"{_OP}/virtualNetworks/subnets/read"
OPERATION_READ = f"{_OP}/locations/operations/read"
OPERATION_RESULT_READ = f"{_OP}/locations/operationResults/read"

ROUTES = [
    Route("GET", _NSG, responses.get_nsg, "network.nsgs.get", operation=NSG_READ),
    Route("PUT", _NSG, resources.put_nsg, "network.nsgs.create_or_update", operation=NSG_WRITE),
    Route("DELETE", _NSG, resources.delete_nsg, "network.nsgs.delete", operation=NSG_DELETE),
    Route(
        "GET",
        _SUB_NET + "/networkSecurityGroups",
        resources.list_nsgs,
        "network.nsgs.list_all",
        operation=NSG_READ,
    ),
    Route(
        "GET", _RG + "/networkSecurityGroups", resources.list_nsgs, "network.nsgs.list", operation=NSG_READ
    ),
    Route(
        "GET",
        _SUB_NET + "/virtualNetworks",
        resources.list_vnets,
        "network.virtual_networks.list_all",
        operation=VNET_READ,
    ),
    Route(
        "GET",
        _RG + "/virtualNetworks",
        resources.list_vnets,
        "network.virtual_networks.list",
        operation=VNET_READ,
    ),
    Route("GET", _RULE, responses.get_rule, "network.security_rules.get", operation=RULE_READ),
    Route("PUT", _RULE, responses.put_rule, "network.security_rules.create_or_update", operation=RULE_WRITE),
    Route("DELETE", _RULE, responses.delete_rule, "network.security_rules.delete", operation=RULE_DELETE),
    Route("GET", _VNET, responses.get_vnet, "network.virtual_networks.get", operation=VNET_READ),
    Route(
        "GET",
        _VNET + "/subnets/{subnetName}",
        responses.get_subnet,
        "network.subnets.get",
        operation=SUBNET_READ,
    ),
    # Associating an NSG with a subnet also needs networkSecurityGroups/join/action on the NSG (Azure checks
    # it on the referenced resource; the simulator checks the subnet's own write permission).
    Route(
        "PUT",
        _VNET + "/subnets/{subnetName}",
        resources.put_subnet,
        "network.subnets.create_or_update",
        operation=SUBNET_WRITE,
    ),
    Route("GET", _PEERINGS, responses.list_peerings, "network.peerings.list", operation=PEERING_READ),
    Route(
        "GET",
        _PEERINGS + "/{virtualNetworkPeeringName}",
        responses.get_peering,
        "network.peerings.get",
        operation=PEERING_READ,
    ),
    Route(
        "PUT",
        _PEERINGS + "/{virtualNetworkPeeringName}",
        responses.put_peering,
        "network.peerings.create_or_update",
        operation=PEERING_WRITE,
    ),
    Route(
        "DELETE",
        _PEERINGS + "/{virtualNetworkPeeringName}",
        responses.delete_peering,
        "network.peerings.delete",
        operation=PEERING_DELETE,
    ),
    Route(
        "GET",
        _LOCATION + "/operations/{operationId}",
        responses.get_operation_status,
        "network.operations.get_status",
        operation=OPERATION_READ,
    ),
    Route(
        "GET",
        _LOCATION + "/operationResults/{operationId}",
        responses.get_operation_result,
        "network.operations.get_result",
        operation=OPERATION_RESULT_READ,
    ),
]
