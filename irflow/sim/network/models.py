"""Network security groups (with security rules) and virtual networks (with subnets and peerings), as the
Microsoft.Network resource provider keeps them. Wire shapes follow the x-ms-examples NetworkSecurityGroupGet,
NetworkSecurityRuleGet / Create, VirtualNetworkGet, VirtualNetworkPeeringGet / List / Delete.

Subnets reference NSGs by id; an NSG's ``subnets`` list is derived from the virtual networks that point at it.
``provisioningState`` is ``Updating`` / ``Deleting`` while a long-running operation on the resource is in
flight (:mod:`irflow.sim.network.lro`).
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from typing import Any

from irflow.sim import arm, errors

NSG_TYPE = "Microsoft.Network/networkSecurityGroups"
RULE_TYPE = "Microsoft.Network/networkSecurityGroups/securityRules"
DEFAULT_RULE_TYPE = "Microsoft.Network/networkSecurityGroups/defaultSecurityRules"
VNET_TYPE = "Microsoft.Network/virtualNetworks"
SUBNET_TYPE = "Microsoft.Network/virtualNetworks/subnets"
PEERING_TYPE = "Microsoft.Network/virtualNetworks/virtualNetworkPeerings"

PROTOCOLS = ("Tcp", "Udp", "Icmp", "Esp", "Ah", "*")
ACCESS = ("Allow", "Deny")
DIRECTIONS = ("Inbound", "Outbound")

_DEFAULT_RULES = [
    ("AllowVnetInBound", "Allow virtual network inbound traffic", "VirtualNetwork", "VirtualNetwork", "Allow",
     65000, "Inbound"),
    ("AllowAzureLoadBalancerInBound", "Allow inbound traffic from azure load balancer", "AzureLoadBalancer",
     "*", "Allow", 65001, "Inbound"),
    ("DenyAllInBound", "Deny all inbound traffic", "*", "*", "Deny", 65500, "Inbound"),
    ("AllowVnetOutBound", "Allow outbound traffic from all VMs to all VMs in VNET", "VirtualNetwork",
     "VirtualNetwork", "Allow", 65000, "Outbound"),
    ("AllowInternetOutBound", "Allow outbound traffic from all VMs to Internet", "*", "Internet", "Allow",
     65001, "Outbound"),
    ("DenyAllOutBound", "Deny all outbound traffic", "*", "*", "Deny", 65500, "Outbound"),
]  # fmt: skip


def new_etag() -> str:
    return f'W/"{uuid.uuid4()}"'


def bad_request(code: str, message: str) -> errors.ArmError:
    return errors.ArmError(400, code, message)


def _canonical(value: Any, allowed: tuple[str, ...], name: str) -> str:
    if isinstance(value, str):
        for candidate in allowed:
            if candidate.lower() == value.lower():
                return candidate
    raise bad_request(
        "InvalidRequestFormat",
        f"Cannot parse the request: value {value!r} of '{name}' is not one of {', '.join(allowed)}.",
    )


def validate_rule_properties(name: str, properties: Any) -> dict[str, Any]:
    """The properties of a security rule PUT, checked and normalised as the resource provider does."""
    if not isinstance(properties, dict):
        raise bad_request("InvalidRequestFormat", "Cannot parse the request: 'properties' must be an object.")
    priority = properties.get("priority")
    if not isinstance(priority, int) or isinstance(priority, bool) or not 100 <= priority <= 4096:
        raise bad_request(
            "SecurityRuleInvalidPriority",
            f"Security rule {name} has invalid Priority. Value provided: {priority}. Allowed range 100-4096.",
        )
    result: dict[str, Any] = {
        "protocol": _canonical(properties.get("protocol"), PROTOCOLS, "protocol"),
        "access": _canonical(properties.get("access"), ACCESS, "access"),
        "priority": priority,
        "direction": _canonical(properties.get("direction"), DIRECTIONS, "direction"),
    }
    if isinstance(properties.get("description"), str):
        result["description"] = properties["description"]
    for single, plural in (
        ("sourcePortRange", "sourcePortRanges"),
        ("destinationPortRange", "destinationPortRanges"),
        ("sourceAddressPrefix", "sourceAddressPrefixes"),
        ("destinationAddressPrefix", "destinationAddressPrefixes"),
    ):
        one, many = properties.get(single), properties.get(plural) or []
        if not isinstance(many, list) or not all(isinstance(v, str) and v for v in many):
            raise bad_request("InvalidRequestFormat", f"Cannot parse the request: '{plural}' must be a list.")
        if one is not None and not isinstance(one, str):
            raise bad_request(
                "InvalidRequestFormat", f"Cannot parse the request: '{single}' must be a string."
            )
        if bool(one) == bool(many):
            raise bad_request(
                "SecurityRuleParameterContainsUnsupportedValue" if one and many else "InvalidRequestFormat",
                f"Security rule {name} must give exactly one of '{single}' and '{plural}'.",
            )
        if one:
            result[single] = one
        result[plural] = list(many)
    for key in ("sourceApplicationSecurityGroups", "destinationApplicationSecurityGroups"):
        if properties.get(key):
            result[key] = copy.deepcopy(properties[key])
    return result


def check_priority(rules: dict[str, Any], name: str, properties: dict[str, Any]) -> None:
    """One rule per priority and direction in an NSG: "You can't create two security rules with the same
    priority and direction." (https://learn.microsoft.com/azure/virtual-network/network-security-groups-overview)"""
    for other in rules.values():
        if other.name.lower() == name.lower():
            continue
        same = other.properties["priority"] == properties["priority"]
        if same and other.properties["direction"] == properties["direction"]:
            raise bad_request(
                "SecurityRuleConflict",
                f"Security rule {other.name} conflicts with rule {name}. Rules cannot have the same "
                "Priority and Direction. To learn more, see aka.ms/nsgrules.",
            )


@dataclass
class SecurityRule:
    name: str
    properties: dict[str, Any]
    provisioning_state: str = "Succeeded"
    etag: str = field(default_factory=new_etag)

    def to_arm(self, nsg_id: str, resource_type: str = RULE_TYPE) -> dict[str, Any]:
        kind = "securityRules" if resource_type == RULE_TYPE else "defaultSecurityRules"
        return {
            "name": self.name,
            "id": f"{nsg_id}/{kind}/{self.name}",
            "etag": self.etag,
            "type": resource_type,
            "properties": {"provisioningState": self.provisioning_state, **copy.deepcopy(self.properties)},
        }


def _default_rules() -> list[SecurityRule]:
    rules = []
    for name, description, source, destination, access, priority, direction in _DEFAULT_RULES:
        rules.append(
            SecurityRule(
                name,
                {
                    "description": description,
                    "protocol": "*",
                    "sourcePortRange": "*",
                    "destinationPortRange": "*",
                    "sourceAddressPrefix": source,
                    "destinationAddressPrefix": destination,
                    "access": access,
                    "priority": priority,
                    "direction": direction,
                    "sourcePortRanges": [],
                    "destinationPortRanges": [],
                    "sourceAddressPrefixes": [],
                    "destinationAddressPrefixes": [],
                },
            )
        )
    return rules


@dataclass
class NetworkSecurityGroup:
    subscription_id: str
    resource_group: str
    name: str
    location: str
    tags: dict[str, str] = field(default_factory=dict)
    rules: dict[str, SecurityRule] = field(default_factory=dict)  # lower-cased name → rule
    # "When enabled, flows created from Network Security Group connections will be re-evaluated when rules are
    # updated. Initial enablement will trigger re-evaluation." (azure-rest-api-specs,
    # specification/network/resource-manager/Microsoft.Network/stable/*/networkSecurityGroup.json,
    # NetworkSecurityGroupPropertiesFormat.flushConnection; default false)
    flush_connection: bool = False
    provisioning_state: str = "Succeeded"
    resource_guid: str = field(default_factory=lambda: str(uuid.uuid4()))
    etag: str = field(default_factory=new_etag)

    @property
    def id(self) -> str:
        return arm.resource_id(self.subscription_id, self.resource_group, NSG_TYPE, self.name)

    def rule(self, name: str) -> SecurityRule | None:
        return self.rules.get(name.lower())

    def check_priority(self, name: str, properties: dict[str, Any]) -> None:
        check_priority(self.rules, name, properties)

    def to_arm(self, subnet_ids: list[str]) -> dict[str, Any]:
        rules = sorted(self.rules.values(), key=lambda r: r.name.lower())
        return {
            "name": self.name,
            "id": self.id,
            "etag": self.etag,
            "type": NSG_TYPE,
            "location": self.location,
            "tags": dict(self.tags),
            "properties": {
                "provisioningState": self.provisioning_state,
                "resourceGuid": self.resource_guid,
                "flushConnection": self.flush_connection,
                "securityRules": [r.to_arm(self.id) for r in rules],
                "defaultSecurityRules": [r.to_arm(self.id, DEFAULT_RULE_TYPE) for r in _default_rules()],
                "subnets": [{"id": s} for s in subnet_ids],
                "networkInterfaces": [],
            },
        }

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "resource_group": self.resource_group,
            "flushConnection": self.flush_connection,
            "tags": dict(self.tags),
            "securityRules": {
                r.name: {"provisioningState": r.provisioning_state, **copy.deepcopy(r.properties)}
                for r in self.rules.values()
            },
        }


# Values of a subnet's privateEndpointNetworkPolicies (virtualNetwork.json,
# VirtualNetworkPrivateEndpointNetworkPolicies). NSG rules apply to private endpoints only when it is Enabled
# or NetworkSecurityGroupEnabled:
# https://learn.microsoft.com/azure/private-link/disable-private-endpoint-network-policy
PRIVATE_ENDPOINT_POLICIES = ("Disabled", "Enabled", "NetworkSecurityGroupEnabled", "RouteTableEnabled")
NSG_APPLIES_TO_PRIVATE_ENDPOINTS = ("Enabled", "NetworkSecurityGroupEnabled")


@dataclass
class Subnet:
    """A subnet. ``established_flows`` counts the connections open through it: they survive a rule change of
    its NSG unless the NSG's ``flushConnection`` is true (:mod:`irflow.sim.network.flows`)."""

    name: str
    address_prefix: str
    network_security_group_id: str | None = None
    private_endpoint_network_policies: str = "Disabled"
    private_endpoints: list[str] = field(default_factory=list)  # private endpoint ids
    established_flows: int = 0
    provisioning_state: str = "Succeeded"
    etag: str = field(default_factory=new_etag)

    def to_arm(self, vnet_id: str) -> dict[str, Any]:
        properties: dict[str, Any] = {
            "provisioningState": self.provisioning_state,
            "addressPrefix": self.address_prefix,
            "privateEndpointNetworkPolicies": self.private_endpoint_network_policies,
            "privateLinkServiceNetworkPolicies": "Enabled",
        }
        if self.network_security_group_id:
            properties["networkSecurityGroup"] = {"id": self.network_security_group_id}
        if self.private_endpoints:
            properties["privateEndpoints"] = [{"id": pe} for pe in self.private_endpoints]
        return {
            "name": self.name,
            "id": f"{vnet_id}/subnets/{self.name}",
            "etag": self.etag,
            "type": SUBNET_TYPE,
            "properties": properties,
        }


@dataclass
class Peering:
    name: str
    remote_virtual_network_id: str
    remote_address_prefixes: list[str]
    allow_virtual_network_access: bool = True
    allow_forwarded_traffic: bool = False
    allow_gateway_transit: bool = False
    use_remote_gateways: bool = False
    # Subnet peering: only the named subnets of each side are connected (virtualNetwork.json,
    # VirtualNetworkPeeringPropertiesFormat.peerCompleteVnets / localSubnetNames / remoteSubnetNames;
    # https://learn.microsoft.com/azure/virtual-network/how-to-configure-subnet-peering)
    peer_complete_vnets: bool = True
    local_subnet_names: list[str] = field(default_factory=list)
    remote_subnet_names: list[str] = field(default_factory=list)
    peering_state: str = "Connected"
    provisioning_state: str = "Succeeded"
    etag: str = field(default_factory=new_etag)

    def to_arm(self, vnet_id: str) -> dict[str, Any]:
        space = {"addressPrefixes": list(self.remote_address_prefixes)}
        return {
            "name": self.name,
            "id": f"{vnet_id}/virtualNetworkPeerings/{self.name}",
            "etag": self.etag,
            "type": PEERING_TYPE,
            "properties": {
                "provisioningState": self.provisioning_state,
                "allowVirtualNetworkAccess": self.allow_virtual_network_access,
                "allowForwardedTraffic": self.allow_forwarded_traffic,
                "allowGatewayTransit": self.allow_gateway_transit,
                "useRemoteGateways": self.use_remote_gateways,
                "peerCompleteVnets": self.peer_complete_vnets,
                **(
                    {}
                    if self.peer_complete_vnets
                    else {
                        "localSubnetNames": list(self.local_subnet_names),
                        "remoteSubnetNames": list(self.remote_subnet_names),
                    }
                ),
                "remoteVirtualNetwork": {"id": self.remote_virtual_network_id},
                "remoteAddressSpace": space,
                "remoteVirtualNetworkAddressSpace": copy.deepcopy(space),
                "peeringState": self.peering_state,
                "peeringSyncLevel": "FullyInSync" if self.peering_state == "Connected" else "RemoteNotInSync",
            },
        }


@dataclass
class VirtualNetwork:
    subscription_id: str
    resource_group: str
    name: str
    location: str
    address_prefixes: list[str]
    tags: dict[str, str] = field(default_factory=dict)
    subnets: dict[str, Subnet] = field(default_factory=dict)  # lower-cased name → subnet
    peerings: dict[str, Peering] = field(default_factory=dict)  # lower-cased name → peering
    resource_guid: str = field(default_factory=lambda: str(uuid.uuid4()))
    etag: str = field(default_factory=new_etag)

    @property
    def id(self) -> str:
        return arm.resource_id(self.subscription_id, self.resource_group, VNET_TYPE, self.name)

    def to_arm(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id,
            "etag": self.etag,
            "type": VNET_TYPE,
            "location": self.location,
            "tags": dict(self.tags),
            "properties": {
                "provisioningState": "Succeeded",
                "resourceGuid": self.resource_guid,
                "addressSpace": {"addressPrefixes": list(self.address_prefixes)},
                "subnets": [s.to_arm(self.id) for s in self.subnets.values()],
                "virtualNetworkPeerings": [p.to_arm(self.id) for p in self.peerings.values()],
                "enableDdosProtection": False,
            },
        }

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "resource_group": self.resource_group,
            "addressPrefixes": list(self.address_prefixes),
            "subnets": {s.name: s.network_security_group_id for s in self.subnets.values()},
            "peerings": {
                p.name: {
                    "remote": p.remote_virtual_network_id,
                    "peeringState": p.peering_state,
                    "peerCompleteVnets": p.peer_complete_vnets,
                }
                for p in self.peerings.values()
            },
        }
