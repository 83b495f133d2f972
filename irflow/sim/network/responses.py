"""Wire handlers for Microsoft.Network: NSG get, security rule get / PUT / DELETE (long-running, polled via
``Azure-AsyncOperation``), VNet and subnet get, peering list / get / PUT (long-running, polled via
``Azure-AsyncOperation``) / DELETE (long-running, polled through ``Location``), and the two operation-polling
endpoints.

LRO answers, as azure-mgmt-network expects them:

- rule PUT: 201 (new) / 200 (update) with the rule in ``provisioningState: Updating`` and
  ``Azure-AsyncOperation: …/locations/{loc}/operations/{id}``; it answers 200 ``{"status": "InProgress"}``
  until the operation settles, then ``Succeeded`` (the SDK then GETs the rule) or ``Failed`` with ``error``.
- rule DELETE: 202 with ``Azure-AsyncOperation`` and ``Location`` (``…/operationResults/{id}``); 204 when the
  rule does not exist.
- peering PUT (x-ms-example VirtualNetworkPeeringCreate): 201 (new) / 200 (update) with the peering in
  ``provisioningState: Updating`` and ``Azure-AsyncOperation``, as a rule PUT. When it settles the peering is
  ``Initiated``, or ``Connected`` (with the remote network's peering back) when that one was ``Initiated``.
  Creating a peering whose remote network still has a ``Disconnected`` peering back answers 400
  ``RemotePeeringIsDisconnected``: that one must be updated (PUT again: it becomes ``Initiated``) or
  re-created.
- peering DELETE: 202 with ``Location`` only; the Location answers 202 while running, 204 when done, the
  operation's error when it failed; 204 at once when the peering does not exist (as Azure does).

Every answer of a running operation carries ``Retry-After: {tenant.lro.retry_after}``.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from irflow.sim import errors
from irflow.sim.http import SimRequest, SimResponse
from irflow.sim.network import flows
from irflow.sim.network.models import (
    NetworkSecurityGroup,
    Peering,
    SecurityRule,
    VirtualNetwork,
    new_etag,
    validate_rule_properties,
)

if TYPE_CHECKING:
    from irflow.sim.models import Tenant
    from irflow.sim.network.lro import Operation


def _settle(tenant: Tenant) -> None:
    tenant.lro.settle(tenant.now())


def _nsg(tenant: Tenant, request: SimRequest) -> NetworkSecurityGroup:
    p = request.params
    return tenant.get_network_security_group(
        p["subscriptionId"], p["resourceGroupName"], p["networkSecurityGroupName"]
    )


def _vnet(tenant: Tenant, request: SimRequest) -> VirtualNetwork:
    p = request.params
    return tenant.get_virtual_network(p["subscriptionId"], p["resourceGroupName"], p["virtualNetworkName"])


def _not_found(request: SimRequest) -> errors.ArmError:
    """What Microsoft.Network answers for a missing child resource."""
    return errors.ArmError(404, "NotFound", f"Resource {request.path.rstrip('/')} not found.")


def _operation_urls(request: SimRequest, operation: Operation) -> dict[str, str]:
    base = (
        f"{request.base_url}/subscriptions/{operation.subscription_id}/providers/Microsoft.Network/locations/"
        f"{operation.location}"
    )
    query = urlencode({"api-version": request.query_param("api-version") or ""})
    return {
        "Azure-AsyncOperation": f"{base}/operations/{operation.id}?{query}",
        "Location": f"{base}/operationResults/{operation.id}?{query}",
    }


def _retry_after(tenant: Tenant) -> dict[str, str]:
    return {"Retry-After": str(tenant.lro.retry_after)}


# ---------------------------------------------------------------------------------------------- NSGs
def get_nsg(tenant: Tenant, request: SimRequest) -> SimResponse:
    _settle(tenant)
    nsg = _nsg(tenant, request)
    return SimResponse(200, nsg.to_arm(tenant.subnets_of_nsg(nsg.id)))


def get_rule(tenant: Tenant, request: SimRequest) -> SimResponse:
    _settle(tenant)
    nsg = _nsg(tenant, request)
    rule = nsg.rule(request.params["securityRuleName"])
    if rule is None:
        raise _not_found(request)
    return SimResponse(200, rule.to_arm(nsg.id))


def put_rule(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``PUT …/securityRules/{r}``: applied at once in ``Updating``; the operation settles it."""
    _settle(tenant)
    nsg = _nsg(tenant, request)
    name = request.params["securityRuleName"]
    body = request.json_object()
    properties = validate_rule_properties(name, body.get("properties"))
    nsg.check_priority(name, properties)
    previous = nsg.rule(name)
    if previous is not None and previous.provisioning_state != "Succeeded":
        raise errors.ArmError(
            409,
            "AnotherOperationInProgress",
            f"Another operation on this or dependent resource is in progress. To retrieve status of the "
            f"operation use uri: {request.base_url}{request.path}.",
        )
    saved = copy.deepcopy(previous)
    rule = SecurityRule(previous.name if previous else name, properties, provisioning_state="Updating")
    nsg.rules[name.lower()] = rule
    nsg.etag = new_etag()

    def complete() -> None:
        if nsg.rules.get(name.lower()) is rule:
            rule.provisioning_state = "Succeeded"
            rule.etag = new_etag()
            flows.rules_changed(tenant, nsg)

    def rollback() -> None:
        if saved is None:
            nsg.rules.pop(name.lower(), None)
        else:
            nsg.rules[name.lower()] = saved
        nsg.etag = new_etag()

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
    return SimResponse(201 if previous is None else 200, rule.to_arm(nsg.id), headers)


def delete_rule(tenant: Tenant, request: SimRequest) -> SimResponse:
    _settle(tenant)
    nsg = _nsg(tenant, request)
    name = request.params["securityRuleName"]
    rule = nsg.rule(name)
    if rule is None:
        return SimResponse(204)
    rule.provisioning_state = "Deleting"

    def complete() -> None:
        if nsg.rules.get(name.lower()) is rule:
            del nsg.rules[name.lower()]
            nsg.etag = new_etag()
            flows.rules_changed(tenant, nsg)

    def rollback() -> None:
        rule.provisioning_state = "Succeeded"

    operation = tenant.lro.start(
        subscription_id=nsg.subscription_id,
        location=nsg.location,
        now=tenant.now(),
        complete=complete,
        rollback=rollback,
    )
    return SimResponse(202, None, {**_operation_urls(request, operation), **_retry_after(tenant)})


# ---------------------------------------------------------------------------------------------- VNets
def get_vnet(tenant: Tenant, request: SimRequest) -> SimResponse:
    _settle(tenant)
    return SimResponse(200, _vnet(tenant, request).to_arm())


def get_subnet(tenant: Tenant, request: SimRequest) -> SimResponse:
    _settle(tenant)
    vnet = _vnet(tenant, request)
    subnet = vnet.subnets.get(request.params["subnetName"].lower())
    if subnet is None:
        raise _not_found(request)
    return SimResponse(200, subnet.to_arm(vnet.id))


def list_peerings(tenant: Tenant, request: SimRequest) -> SimResponse:
    _settle(tenant)
    vnet = _vnet(tenant, request)
    return SimResponse(200, {"value": [p.to_arm(vnet.id) for p in vnet.peerings.values()]})


def get_peering(tenant: Tenant, request: SimRequest) -> SimResponse:
    _settle(tenant)
    vnet = _vnet(tenant, request)
    peering = vnet.peerings.get(request.params["virtualNetworkPeeringName"].lower())
    if peering is None:
        raise _not_found(request)
    return SimResponse(200, peering.to_arm(vnet.id))


def _vnet_by_id(tenant: Tenant, vnet_id: str) -> VirtualNetwork | None:
    parts = vnet_id.strip("/").split("/")
    if len(parts) != 8 or [p.lower() for p in parts[0:8:2]] != [
        "subscriptions",
        "resourcegroups",
        "providers",
        "virtualnetworks",
    ]:
        return None
    try:
        return tenant.get_virtual_network(parts[1], parts[3], parts[7])
    except errors.ArmError:
        return None


def _peering_flags(properties: dict[str, Any]) -> dict[str, bool]:
    flags = {}
    for wire, attribute, default in (
        ("allowVirtualNetworkAccess", "allow_virtual_network_access", True),
        ("allowForwardedTraffic", "allow_forwarded_traffic", False),
        ("allowGatewayTransit", "allow_gateway_transit", False),
        ("useRemoteGateways", "use_remote_gateways", False),
    ):
        value = properties.get(wire, default)
        if not isinstance(value, bool):
            raise errors.ArmError(
                400, "InvalidRequestFormat", f"Cannot parse the request: '{wire}' must be a boolean."
            )
        flags[attribute] = value
    return flags


def _subnet_scope(properties: dict[str, Any], vnet: VirtualNetwork, remote: VirtualNetwork) -> dict[str, Any]:
    """``peerCompleteVnets`` (default true) and, when false, the subnets each side connects, which must be
    given and exist (https://learn.microsoft.com/azure/virtual-network/how-to-configure-subnet-peering)."""
    complete = properties.get("peerCompleteVnets", True)
    if not isinstance(complete, bool):
        raise errors.ArmError(
            400, "InvalidRequestFormat", "Cannot parse the request: 'peerCompleteVnets' must be a boolean."
        )
    scope: dict[str, Any] = {
        "peer_complete_vnets": complete,
        "local_subnet_names": [],
        "remote_subnet_names": [],
    }
    if complete:
        return scope
    for wire, attribute, network in (
        ("localSubnetNames", "local_subnet_names", vnet),
        ("remoteSubnetNames", "remote_subnet_names", remote),
    ):
        names = properties.get(wire)
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise errors.ArmError(
                400,
                "InvalidRequestFormat",
                f"Cannot parse the request: '{wire}' must list the subnets to peer when peerCompleteVnets is "
                "false.",
            )
        missing = [n for n in names if n.lower() not in network.subnets]
        if missing:
            raise errors.ArmError(
                400,
                "InvalidResourceReference",
                f"Subnets {', '.join(missing)} named in '{wire}' were not found in {network.id}.",
            )
        scope[attribute] = [network.subnets[n.lower()].name for n in names]
    return scope


def put_peering(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``PUT …/virtualNetworkPeerings/{p}``: applied at once in ``Updating``; the operation settles the
    peering state with the remote network's peering back."""
    _settle(tenant)
    vnet = _vnet(tenant, request)
    name = request.params["virtualNetworkPeeringName"]
    key = name.lower()
    properties = request.json_object().get("properties")
    if not isinstance(properties, dict):
        raise errors.ArmError(400, "InvalidRequestFormat", "Cannot parse the request: 'properties' missing.")
    remote_ref = properties.get("remoteVirtualNetwork")
    remote_id = remote_ref.get("id") if isinstance(remote_ref, dict) else None
    peering_id = f"{vnet.id}/virtualNetworkPeerings/{name}"
    if not isinstance(remote_id, str) or not remote_id:
        raise errors.ArmError(
            400, "InvalidRequestFormat", "Cannot parse the request: 'remoteVirtualNetwork.id' is required."
        )
    remote = _vnet_by_id(tenant, remote_id)
    if remote is None:
        raise errors.ArmError(
            400,
            "InvalidResourceReference",
            f"Resource {remote_id} referenced by resource {peering_id} was not found. Please make sure that "
            "the referenced resource exists, and that both resources are in the same region.",
        )
    flags = _peering_flags(properties)
    flags.update(_subnet_scope(properties, vnet, remote))
    previous = vnet.peerings.get(key)
    if previous is not None and previous.provisioning_state != "Succeeded":
        raise errors.ArmError(
            409,
            "AnotherOperationInProgress",
            f"Another operation on this or dependent resource is in progress. To retrieve status of the "
            f"operation use uri: {request.base_url}{request.path}.",
        )
    back = next(
        (p for p in remote.peerings.values() if p.remote_virtual_network_id.lower() == vnet.id.lower()), None
    )
    if back is not None and back.peering_state == "Disconnected":
        raise errors.ArmError(
            400,
            "RemotePeeringIsDisconnected",
            f"Cannot create or update peering {peering_id} because remote peering "
            f"{remote.id}/virtualNetworkPeerings/{back.name} referencing parent virtual network {vnet.id} "
            "is in Disconnected state. Update or re-create the remote peering to get it back to Initiated "
            "state. Peering gets Disconnected when remote vnet or remote peering is deleted and re-created.",
        )
    saved = copy.deepcopy(previous)
    remote_prefixes = (
        list(remote.address_prefixes)
        if flags["peer_complete_vnets"]
        else [remote.subnets[n.lower()].address_prefix for n in flags["remote_subnet_names"]]
    )
    peering = Peering(
        previous.name if previous else name,
        remote.id,
        remote_prefixes,
        peering_state=previous.peering_state
        if previous and previous.peering_state == "Connected"
        else "Initiated",
        provisioning_state="Updating",
        **flags,
    )
    vnet.peerings[key] = peering
    vnet.etag = new_etag()

    def complete() -> None:
        if vnet.peerings.get(key) is not peering:
            return
        peering.provisioning_state = "Succeeded"
        peering.etag = new_etag()
        if back is not None and back.peering_state in ("Initiated", "Connected"):
            peering.peering_state = back.peering_state = "Connected"
        else:
            peering.peering_state = "Initiated"

    def rollback() -> None:
        if saved is None:
            vnet.peerings.pop(key, None)
        else:
            vnet.peerings[key] = saved
        vnet.etag = new_etag()

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
    return SimResponse(201 if previous is None else 200, peering.to_arm(vnet.id), headers)


def delete_peering(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``DELETE …/virtualNetworkPeerings/{p}``: 202 + ``Location``; when it settles the peering is gone and
    the remote network's peering back to this one becomes ``Disconnected``."""
    _settle(tenant)
    vnet = _vnet(tenant, request)
    key = request.params["virtualNetworkPeeringName"].lower()
    peering = vnet.peerings.get(key)
    if peering is None:
        return SimResponse(204)
    peering.provisioning_state = "Deleting"

    def complete() -> None:
        if vnet.peerings.get(key) is peering:
            del vnet.peerings[key]
            vnet.etag = new_etag()
            tenant.disconnect_peerings_to(vnet.id, peering.remote_virtual_network_id)

    def rollback() -> None:
        peering.provisioning_state = "Succeeded"

    operation = tenant.lro.start(
        subscription_id=vnet.subscription_id,
        location=vnet.location,
        now=tenant.now(),
        complete=complete,
        rollback=rollback,
    )
    headers = {"Location": _operation_urls(request, operation)["Location"], **_retry_after(tenant)}
    return SimResponse(202, None, headers)


# ---------------------------------------------------------------------------------------------- operations
def _operation(tenant: Tenant, request: SimRequest) -> Operation:
    _settle(tenant)
    operation = tenant.lro.get(request.params["operationId"])
    if operation is None or operation.subscription_id.lower() != request.params["subscriptionId"].lower():
        raise errors.ArmError(
            404, "NotFound", f"The operation '{request.params['operationId']}' could not be found."
        )
    return operation


def get_operation_status(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``GET …/locations/{l}/operations/{id}`` (``Azure-AsyncOperation``)."""
    operation = _operation(tenant, request)
    headers = _retry_after(tenant) if operation.status == "InProgress" else {}
    return SimResponse(200, operation.to_wire(), headers)


def get_operation_result(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``GET …/locations/{l}/operationResults/{id}`` (``Location``): 202 running, 204 done, else the error."""
    operation = _operation(tenant, request)
    if operation.status == "InProgress":
        headers = {"Location": f"{request.base_url}{request.path}?{urlencode(request.query)}"}
        return SimResponse(202, None, {**headers, **_retry_after(tenant)})
    if operation.status == "Failed":
        failure = operation.failure or {}
        raise errors.ArmError(
            int(failure.get("status", 500)),
            failure.get("code", "InternalServerError"),
            failure.get("message", ""),
        )
    return SimResponse(204)
