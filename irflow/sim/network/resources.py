"""Wire handlers for whole Microsoft.Network resources: NSG PUT / DELETE, subnet PUT, and the list operations
(NSGs and VNets by subscription and by resource group, paged), following the x-ms-examples
NetworkSecurityGroupCreate / NetworkSecurityGroupDelete / SubnetCreate / NetworkSecurityGroupListAll /
VirtualNetworkListAll of azure-rest-api-specs (specification/network/resource-manager/Microsoft.Network).

PUTs are full replacements, as in Azure: a rule left out of an NSG PUT is deleted, a subnet PUT without
``networkSecurityGroup`` dissociates the subnet's NSG, one without ``privateEndpointNetworkPolicies`` resets
it to ``Disabled``. Each write is long-running (``Azure-AsyncOperation``, see
:mod:`irflow.sim.network.responses`).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from irflow.sim import errors, paging
from irflow.sim.http import SimRequest, SimResponse
from irflow.sim.network import flows
from irflow.sim.network.models import (
    PRIVATE_ENDPOINT_POLICIES,
    NetworkSecurityGroup,
    SecurityRule,
    VirtualNetwork,
    bad_request,
    check_priority,
    new_etag,
    validate_rule_properties,
)
from irflow.sim.network.responses import _operation_urls, _retry_after, _settle, _vnet

if TYPE_CHECKING:
    from irflow.sim.models import Tenant

_TAG_VALUE_MAX = (
    256  # https://learn.microsoft.com/azure/azure-resource-manager/management/tag-resources#limitations
)


def _in_progress(request: SimRequest) -> errors.ArmError:
    return errors.ArmError(
        409,
        "AnotherOperationInProgress",
        "Another operation on this or dependent resource is in progress. To retrieve status of the "
        f"operation use uri: {request.base_url}{request.path}.",
    )


def _tags(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and len(k) <= 512 and len(v) <= _TAG_VALUE_MAX
        for k, v in value.items()
    ):
        raise bad_request(
            "InvalidTagNameOrValue",
            "Tags must be string names of at most 512 characters with string values of at most 256.",
        )
    return dict(value)


def _nsg_rules(value: Any) -> dict[str, SecurityRule]:
    if value is None:
        return {}
    if not isinstance(value, list):
        raise bad_request("InvalidRequestFormat", "Cannot parse the request: 'securityRules' must be a list.")
    rules: dict[str, SecurityRule] = {}
    for entry in value:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name:
            raise bad_request("InvalidRequestFormat", "Cannot parse the request: every rule needs a 'name'.")
        if name.lower() in rules:
            raise bad_request(
                "InvalidRequestFormat", f"Cannot parse the request: security rule {name} is given twice."
            )
        properties = dict(entry.get("properties") or {})
        properties.pop("provisioningState", None)  # read-only
        checked = validate_rule_properties(name, properties)
        check_priority(rules, name, checked)  # one rule per priority and direction (SecurityRuleConflict)
        rules[name.lower()] = SecurityRule(name, checked)
    return rules


def put_nsg(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``PUT …/networkSecurityGroups/{n}``: create or replace the NSG, its rules and ``flushConnection``."""
    _settle(tenant)
    p = request.params
    group = tenant.resource_group(p["subscriptionId"], p["resourceGroupName"])
    body = request.json_object()
    properties = body.get("properties") or {}
    if not isinstance(properties, dict):
        raise bad_request("InvalidRequestFormat", "Cannot parse the request: 'properties' must be an object.")
    flush = properties.get("flushConnection", False)
    if not isinstance(flush, bool):
        raise bad_request(
            "InvalidRequestFormat", "Cannot parse the request: 'flushConnection' must be a boolean."
        )
    rules = _nsg_rules(properties.get("securityRules"))
    tags = _tags(body.get("tags"))
    key = p["networkSecurityGroupName"].lower()
    previous = group.network_security_groups.get(key)
    location = body.get("location")
    if previous is None and not isinstance(location, str):
        raise bad_request("LocationRequired", "The location property is required for this definition.")
    if previous is not None:
        if previous.provisioning_state != "Succeeded" or any(
            r.provisioning_state != "Succeeded" for r in previous.rules.values()
        ):
            raise _in_progress(request)
        if isinstance(location, str) and location.replace(" ", "").lower() != previous.location.lower():
            raise bad_request(
                "InvalidResourceLocation",
                f"The resource '{previous.name}' already exists in location '{previous.location}'. "
                "A resource with the same name cannot be created in another location.",
            )
        nsg, saved = previous, copy.deepcopy(previous)
    else:
        nsg = NetworkSecurityGroup(group.subscription_id, group.name, p["networkSecurityGroupName"], location)
        group.network_security_groups[key] = nsg
        saved = None
    enabling = flush and not nsg.flush_connection
    rules_changed = {n: r.properties for n, r in rules.items()} != {
        n: r.properties for n, r in nsg.rules.items()
    }
    nsg.rules, nsg.tags, nsg.flush_connection = rules, tags, flush
    nsg.provisioning_state = "Updating"
    nsg.etag = new_etag()

    def complete() -> None:
        nsg.provisioning_state = "Succeeded"
        if enabling:
            flows.re_evaluate(tenant, nsg)  # initial enablement re-evaluates every flow
        elif rules_changed:
            flows.rules_changed(tenant, nsg)

    def rollback() -> None:
        if saved is None:
            group.network_security_groups.pop(key, None)
        else:
            group.network_security_groups[key] = saved

    operation = tenant.lro.start(
        subscription_id=nsg.subscription_id,
        location=nsg.location,
        now=tenant.now(),
        complete=complete,
        rollback=rollback,
    )
    headers = {
        "Azure-AsyncOperation": _operation_urls(request, operation)["Azure-AsyncOperation"],
        **_retry_after(tenant),
    }
    return SimResponse(201 if saved is None else 200, nsg.to_arm(tenant.subnets_of_nsg(nsg.id)), headers)


def delete_nsg(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``DELETE …/networkSecurityGroups/{n}``: 202 + ``Location``; 204 when absent; refused while a subnet
    uses it (InUseNetworkSecurityGroupCannotBeDeleted)."""
    _settle(tenant)
    p = request.params
    group = tenant.resource_group(p["subscriptionId"], p["resourceGroupName"])
    key = p["networkSecurityGroupName"].lower()
    nsg = group.network_security_groups.get(key)
    if nsg is None:
        return SimResponse(204)
    in_use = tenant.subnets_of_nsg(nsg.id)
    if in_use:
        raise bad_request(
            "InUseNetworkSecurityGroupCannotBeDeleted",
            f"Network security group {nsg.id} cannot be deleted because it is in use by the following "
            f"resources: {', '.join(in_use)}. In order to delete the Network security group, remove the "
            "association with the resource(s).",
        )
    nsg.provisioning_state = "Deleting"

    def complete() -> None:
        if group.network_security_groups.get(key) is nsg:
            del group.network_security_groups[key]

    def rollback() -> None:
        nsg.provisioning_state = "Succeeded"

    operation = tenant.lro.start(
        subscription_id=nsg.subscription_id,
        location=nsg.location,
        now=tenant.now(),
        complete=complete,
        rollback=rollback,
    )
    headers = {"Location": _operation_urls(request, operation)["Location"], **_retry_after(tenant)}
    return SimResponse(202, None, headers)


def _nsg_by_id(tenant: Tenant, nsg_id: str) -> NetworkSecurityGroup | None:
    parts = nsg_id.strip("/").split("/")
    if len(parts) != 8 or [x.lower() for x in parts[0:8:2]] != [
        "subscriptions",
        "resourcegroups",
        "providers",
        "networksecuritygroups",
    ]:
        return None
    try:
        return tenant.get_network_security_group(parts[1], parts[3], parts[7])
    except errors.ArmError:
        return None


def put_subnet(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``PUT …/virtualNetworks/{v}/subnets/{s}`` on an existing subnet: its NSG association and private
    endpoint network policies (creating subnets is not simulated)."""
    from irflow.sim.network.responses import _not_found

    _settle(tenant)
    vnet = _vnet(tenant, request)
    subnet = vnet.subnets.get(request.params["subnetName"].lower())
    if subnet is None:
        raise _not_found(request)
    properties = request.json_object().get("properties")
    if not isinstance(properties, dict):
        raise bad_request("InvalidRequestFormat", "Cannot parse the request: 'properties' must be an object.")
    prefix = properties.get("addressPrefix")
    if prefix is None and properties.get("addressPrefixes"):
        prefix = (properties["addressPrefixes"] or [None])[0]
    if not isinstance(prefix, str) or not prefix:
        raise bad_request(
            "InvalidRequestFormat", "Cannot parse the request: the subnet's 'addressPrefix' is required."
        )
    if prefix != subnet.address_prefix and subnet.private_endpoints:
        raise bad_request(
            "InUseSubnetCannotBeUpdated",
            f"Subnet {subnet.name} is in use and cannot be updated: its address prefix cannot change.",
        )
    subnet_id = f"{vnet.id}/subnets/{subnet.name}"
    reference = properties.get("networkSecurityGroup")
    nsg_id = reference.get("id") if isinstance(reference, dict) else None
    nsg = None
    if reference is not None:
        nsg = _nsg_by_id(tenant, nsg_id) if isinstance(nsg_id, str) else None
        if nsg is None or nsg.location.lower() != vnet.location.lower():
            raise bad_request(
                "InvalidResourceReference",
                f"Resource {nsg_id} referenced by resource {subnet_id} was not found. Please make sure that "
                "the referenced resource exists, and that both resources are in the same region.",
            )
    policies = properties.get("privateEndpointNetworkPolicies", "Disabled")
    if policies not in PRIVATE_ENDPOINT_POLICIES:
        raise bad_request(
            "InvalidRequestFormat",
            f"Cannot parse the request: 'privateEndpointNetworkPolicies' must be one of "
            f"{', '.join(PRIVATE_ENDPOINT_POLICIES)}.",
        )
    if subnet.provisioning_state != "Succeeded":
        raise _in_progress(request)
    saved = copy.deepcopy(subnet)
    moved = (subnet.network_security_group_id or "").lower() != (nsg.id.lower() if nsg else "")
    subnet.address_prefix = prefix
    subnet.network_security_group_id = nsg.id if nsg else None
    subnet.private_endpoint_network_policies = policies
    subnet.provisioning_state = "Updating"
    subnet.etag = new_etag()

    def complete() -> None:
        subnet.provisioning_state = "Succeeded"
        if moved and nsg is not None:
            flows.rules_changed(tenant, nsg)

    def rollback() -> None:
        for attribute in ("address_prefix", "network_security_group_id", "private_endpoint_network_policies"):
            setattr(subnet, attribute, getattr(saved, attribute))
        subnet.provisioning_state = "Succeeded"

    operation = tenant.lro.start(
        subscription_id=vnet.subscription_id,
        location=vnet.location,
        now=tenant.now(),
        complete=complete,
        rollback=rollback,
    )
    headers = {
        "Azure-AsyncOperation": _operation_urls(request, operation)["Azure-AsyncOperation"],
        **_retry_after(tenant),
    }
    return SimResponse(200, subnet.to_arm(vnet.id), headers)


# ---------------------------------------------------------------------------------------------- lists
def _groups(tenant: Tenant, request: SimRequest) -> list[Any]:
    p = request.params
    if "resourceGroupName" in p:
        return [tenant.resource_group(p["subscriptionId"], p["resourceGroupName"])]
    return list(tenant.subscription(p["subscriptionId"]).resource_groups.values())


def list_nsgs(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``GET …/providers/Microsoft.Network/networkSecurityGroups`` (subscription or resource group), paged."""
    _settle(tenant)
    items = sorted(
        (n for g in _groups(tenant, request) for n in g.network_security_groups.values()),
        key=lambda n: (n.resource_group.lower(), n.name.lower()),
    )
    body = paging.page(
        request,
        items,
        sort_key=lambda n: [n.resource_group.lower(), n.name.lower()],
        render=lambda n: n.to_arm(tenant.subnets_of_nsg(n.id)),
        page_size=tenant.page_size,
    )
    return SimResponse(200, body)


def list_vnets(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``GET …/providers/Microsoft.Network/virtualNetworks`` (subscription or resource group), paged."""
    _settle(tenant)
    items: list[VirtualNetwork] = sorted(
        (v for g in _groups(tenant, request) for v in g.virtual_networks.values()),
        key=lambda v: (v.resource_group.lower(), v.name.lower()),
    )
    body = paging.page(
        request,
        items,
        sort_key=lambda v: [v.resource_group.lower(), v.name.lower()],
        render=lambda v: v.to_arm(),
        page_size=tenant.page_size,
    )
    return SimResponse(200, body)
