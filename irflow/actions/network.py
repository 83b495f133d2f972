"""Network containment actions (``azure-mgmt-network``): subnet quarantine through its NSG, VNet peerings.

Security rule and peering writes are long-running operations: each action waits for them with
``begin_*(...).result()`` and the SDK's own polling (it honours the ``Retry-After`` Azure sends; the client's
``polling_interval``, 30 s by default, is used only when Azure sends none). Tests against the simulator make
polling instant with ``tenant.lro.retry_after = 0`` and a network client built with ``polling_interval=0``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from irflow.actions.base import (
    Action,
    ActionError,
    Change,
    Plan,
    ResourceMissing,
    Result,
    StepContext,
    azure_errors,
    register,
)
from irflow.domain.resource_id import ResourceId, SubnetId, VirtualNetworkId, VirtualNetworkPeeringId

_NET = "Microsoft.Network"
SUBNET_READ = f"{_NET}/virtualNetworks/subnets/read"
NSG_READ = f"{_NET}/networkSecurityGroups/read"
RULE_WRITE = f"{_NET}/networkSecurityGroups/securityRules/write"
RULE_DELETE = f"{_NET}/networkSecurityGroups/securityRules/delete"
VNET_READ = f"{_NET}/virtualNetworks/read"
VNET_PEER = f"{_NET}/virtualNetworks/peer/action"
PEERING_READ = f"{_NET}/virtualNetworks/virtualNetworkPeerings/read"
PEERING_WRITE = f"{_NET}/virtualNetworks/virtualNetworkPeerings/write"
PEERING_DELETE = f"{_NET}/virtualNetworks/virtualNetworkPeerings/delete"
OPERATION_READ = f"{_NET}/locations/operations/read"  # polling Azure-AsyncOperation
OPERATION_RESULT_READ = f"{_NET}/locations/operationResults/read"  # polling Location

QUARANTINE_PREFIX = "irflow-quarantine-"
DENY_RULES = {"Inbound": f"{QUARANTINE_PREFIX}deny-inbound", "Outbound": f"{QUARANTINE_PREFIX}deny-outbound"}
TOP_PRIORITY, LOWEST_PRIORITY = 100, 4096

_SERVICE_TAG = re.compile(r"^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z0-9]+)?$")
_PORTS = re.compile(r"^(\*|\d{1,5}(-\d{1,5})?)$")


def _is_quarantine(name: str) -> bool:
    return name.lower().startswith(QUARANTINE_PREFIX)


# --------------------------------------------------------------------------------------------- reads
def _subnet_nsg(ctx: StepContext, subnet_id: str) -> str | None:
    """The id of the NSG attached to a subnet (None when it has none)."""
    rid = ResourceId.parse(subnet_id)
    with azure_errors(permission=SUBNET_READ, scope=subnet_id):
        subnet = ctx.clients.network(rid.subscription_id).subnets.get(
            rid.resource_group, rid.names[0], rid.names[1]
        )
    nsg = subnet.as_dict().get("properties", {}).get("networkSecurityGroup") or {}
    return nsg.get("id")


def _get_nsg(ctx: StepContext, nsg_id: str) -> dict[str, Any]:
    rid = ResourceId.parse(nsg_id)
    with azure_errors(permission=NSG_READ, scope=nsg_id):
        nsg = ctx.clients.network(rid.subscription_id).network_security_groups.get(
            rid.resource_group, rid.name
        )
    return nsg.as_dict()


def _many(props: dict[str, Any], single: str, plural: str) -> list[str]:
    values = list(props.get(plural) or [])
    if props.get(single):
        values.append(props[single])
    return sorted(set(values))


def _shape(props: dict[str, Any]) -> dict[str, Any]:
    """A rule's effective definition, independent of singular/plural wire fields and read-only ones."""
    return {
        "priority": props.get("priority"),
        "direction": props.get("direction"),
        "access": props.get("access"),
        "protocol": props.get("protocol"),
        "sourceAddressPrefixes": _many(props, "sourceAddressPrefix", "sourceAddressPrefixes"),
        "sourcePortRanges": _many(props, "sourcePortRange", "sourcePortRanges"),
        "destinationAddressPrefixes": _many(props, "destinationAddressPrefix", "destinationAddressPrefixes"),
        "destinationPortRanges": _many(props, "destinationPortRange", "destinationPortRanges"),
    }


def _wire(shape: dict[str, Any], description: str) -> dict[str, Any]:
    """A security rule PUT body from a shape (one value goes in the singular field, as Azure prefers)."""
    props: dict[str, Any] = {
        "description": description,
        "priority": shape["priority"],
        "direction": shape["direction"],
        "access": shape["access"],
        "protocol": shape["protocol"],
    }
    for plural, single in _SINGULAR.items():
        values = shape[plural]
        if len(values) == 1:
            props[single] = values[0]
        else:
            props[plural] = values
    return {"properties": props}


_SINGULAR = {
    "sourceAddressPrefixes": "sourceAddressPrefix",
    "sourcePortRanges": "sourcePortRange",
    "destinationAddressPrefixes": "destinationAddressPrefix",
    "destinationPortRanges": "destinationPortRange",
}


def _rules(nsg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """name → rule (with ``properties``) of an NSG's own security rules."""
    return {r["name"]: r for r in nsg.get("properties", {}).get("securityRules") or []}


# --------------------------------------------------------------------------------------------- quarantine
class AllowRule(BaseModel):
    """Traffic the quarantine keeps: an Allow rule placed just above the quarantine's deny rule."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9-]{0,39}$", description="Becomes irflow-quarantine-allow-NAME."
    )
    direction: Literal["Inbound", "Outbound"]
    protocol: Literal["Tcp", "Udp", "Icmp", "*"] = "Tcp"
    source_prefixes: list[str] = Field(min_length=1, max_length=50, description="CIDRs, IPs or service tags.")
    destination_prefixes: list[str] = Field(min_length=1, max_length=50)
    ports: list[str] = Field(default=["*"], min_length=1, max_length=50, description="Destination ports.")

    @field_validator("source_prefixes", "destination_prefixes")
    @classmethod
    def _prefixes(cls, values: list[str]) -> list[str]:
        for value in values:
            if value == "*" or _SERVICE_TAG.match(value):
                continue
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"not an address prefix or service tag: {value[:80]!r}") from None
        return values

    @field_validator("ports")
    @classmethod
    def _ports(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _PORTS.match(value) or any(int(p) > 65535 for p in value.split("-") if p != "*"):
                raise ValueError(f"not a port or port range: {value[:40]!r}")
        return values

    @property
    def rule_name(self) -> str:
        return f"{QUARANTINE_PREFIX}allow-{self.name}"

    def shape(self, priority: int) -> dict[str, Any]:
        return {
            "priority": priority,
            "direction": self.direction,
            "access": "Allow",
            "protocol": self.protocol,
            "sourceAddressPrefixes": sorted(set(self.source_prefixes)),
            "sourcePortRanges": ["*"],
            "destinationAddressPrefixes": sorted(set(self.destination_prefixes)),
            "destinationPortRanges": sorted(set(self.ports)),
        }


class QuarantineSubnetParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subnet: SubnetId = Field(description="Resource id of the subnet to quarantine (it must have an NSG).")
    allow: list[AllowRule] = Field(
        default_factory=list,
        max_length=50,
        description="Traffic to keep (e.g. the responders' jump host), placed just above the deny rules.",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> QuarantineSubnetParams:
        names = [rule.name for rule in self.allow]
        if len(names) != len(set(names)):
            raise ValueError("allow rule names must be unique")
        return self


def _desired(params: QuarantineSubnetParams, rules: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The quarantine rules (name → shape): per direction, the allow rules then the deny-all rule, at the
    first free priorities from the top, all above every Allow rule of the NSG's own."""
    desired: dict[str, dict[str, Any]] = {}
    for direction, deny_name in DENY_RULES.items():
        own = [
            (r["properties"]["priority"], r["name"], r["properties"].get("access"))
            for r in rules.values()
            if not _is_quarantine(r["name"]) and r["properties"].get("direction") == direction
        ]
        taken = {priority for priority, _, _ in own}
        first_allow = min(((p, n) for p, n, access in own if access == "Allow"), default=None)
        allows = [a for a in params.allow if a.direction == direction]
        slots = [p for p in range(TOP_PRIORITY, LOWEST_PRIORITY + 1) if p not in taken][: len(allows) + 1]
        if len(slots) < len(allows) + 1 or (first_allow is not None and slots[-1] >= first_allow[0]):
            where = f"rule {first_allow[1]} at priority {first_allow[0]}" if first_allow else "the NSG"
            raise ActionError(
                f"no room for the {direction.lower()} quarantine rules above {where}: "
                f"{len(allows) + 1} free priorities from {TOP_PRIORITY} are needed"
            )
        for allow, priority in zip(allows, slots, strict=False):
            desired[allow.rule_name] = allow.shape(priority)
        desired[deny_name] = {
            "priority": slots[-1],
            "direction": direction,
            "access": "Deny",
            "protocol": "*",
            "sourceAddressPrefixes": ["*"],
            "sourcePortRanges": ["*"],
            "destinationAddressPrefixes": ["*"],
            "destinationPortRanges": ["*"],
        }
    return desired


def _quarantine_diff(
    params: QuarantineSubnetParams, rules: dict[str, dict[str, Any]]
) -> tuple[list[Change], dict[str, dict[str, Any]]]:
    desired = _desired(params, rules)
    current = {name: _shape(rule["properties"]) for name, rule in rules.items() if _is_quarantine(name)}
    changes = [
        Change(field=f"securityRules.{name}", before=current.get(name), after=shape)
        for name, shape in desired.items()
        if current.get(name) != shape
    ]
    changes += [
        Change(field=f"securityRules.{name}", before=shape, after=None)
        for name, shape in sorted(current.items())
        if name not in desired
    ]
    return changes, desired


@register
class QuarantineSubnet(Action):
    """Quarantine a subnet: deny all inbound and outbound traffic at the top of its NSG.

    Adds ``irflow-quarantine-deny-inbound`` / ``-outbound`` (deny everything) at the first free priorities
    from 100, above every Allow rule of the NSG's own, with the optional ``allow`` rules (named
    ``irflow-quarantine-allow-NAME``) just above them. Every subnet sharing the NSG is quarantined with it
    (the plan says which). Existing rules are not touched; stale ``irflow-quarantine-*`` rules from an earlier
    allow-list are replaced. The result records the prior definition of every rule it writes (``null`` for a
    new one); ``network.release_subnet`` removes exactly the quarantine rules.

    Example::

        - id: quarantine
          action: network.quarantine_subnet
          for_each: "{{ inputs.subnets }}"
          with:
            subnet: "{{ item }}"
            allow:
              - {name: soc-jump-host, direction: Inbound, protocol: Tcp,
                 source_prefixes: [10.99.0.4/32], destination_prefixes: ["*"], ports: ["22"]}
    """

    name = "network.quarantine_subnet"
    Params = QuarantineSubnetParams
    permissions = (SUBNET_READ, NSG_READ, RULE_WRITE, RULE_DELETE, OPERATION_READ, OPERATION_RESULT_READ)
    target_param = "subnet"

    def _read(self, ctx: StepContext) -> tuple[str, dict[str, Any]]:
        params: QuarantineSubnetParams = ctx.params  # type: ignore[assignment]
        nsg_id = _subnet_nsg(ctx, params.subnet)
        if nsg_id is None:
            raise ActionError(
                f"subnet {params.subnet} has no network security group: attach one before quarantining it"
            )
        return nsg_id, _get_nsg(ctx, nsg_id)

    def _notes(self, params: QuarantineSubnetParams, nsg_id: str, nsg: dict[str, Any]) -> list[str]:
        others = [
            s["id"]
            for s in nsg.get("properties", {}).get("subnets") or []
            if s.get("id", "").lower() != params.subnet.lower()
        ]
        if not others:
            return []
        return [f"{nsg_id} also protects {', '.join(others)}: they are quarantined too"]

    def plan(self, ctx: StepContext) -> Plan:
        params: QuarantineSubnetParams = ctx.params  # type: ignore[assignment]
        nsg_id, nsg = self._read(ctx)
        changes, _ = _quarantine_diff(params, _rules(nsg))
        notes = self._notes(params, nsg_id, nsg) + ([] if changes else ["already quarantined"])
        return Plan(action=self.name, target=params.subnet, changes=changes, notes=notes)

    def apply(self, ctx: StepContext) -> Result:
        params: QuarantineSubnetParams = ctx.params  # type: ignore[assignment]
        nsg_id, nsg = self._read(ctx)
        rules = _rules(nsg)
        changes, desired = _quarantine_diff(params, rules)
        prior = {"nsg": nsg_id, "rules": {c.field.removeprefix("securityRules."): c.before for c in changes}}
        outputs = {"nsg": nsg_id, "rules": sorted(desired)}
        if not changes:
            return Result(changed=False, prior_state=prior, outputs=outputs, notes=["already quarantined"])
        rid = ResourceId.parse(nsg_id)
        operations = ctx.clients.network(rid.subscription_id).security_rules
        writes = [c.field.removeprefix("securityRules.") for c in changes if c.after is not None]
        # Quarantine rules being moved may hold a priority another one is moving to: remove those first.
        held = {
            (rule["properties"].get("direction"), rule["properties"].get("priority")): name
            for name, rule in rules.items()
            if _is_quarantine(name)
        }
        deletes = [c.field.removeprefix("securityRules.") for c in changes if c.after is None]
        for name in writes:
            holder = held.get((desired[name]["direction"], desired[name]["priority"]))
            if holder is not None and holder != name and holder not in deletes:
                deletes.append(holder)
        for name in deletes:
            with azure_errors(permission=RULE_DELETE, scope=f"{nsg_id}/securityRules/{name}"):
                operations.begin_delete(rid.resource_group, rid.name, name).result()
        # Deny rules first: traffic is cut before any allow rule opens its narrow path.
        for name in sorted(writes, key=lambda n: (not n.startswith(f"{QUARANTINE_PREFIX}deny-"), n)):
            body = _wire(desired[name], f"irflow quarantine of {params.subnet.rsplit('/', 1)[-1]}")
            with azure_errors(permission=RULE_WRITE, scope=f"{nsg_id}/securityRules/{name}"):
                operations.begin_create_or_update(rid.resource_group, rid.name, name, body).result()
        ctx.log.info("subnet quarantined", rules_written=len(writes), rules_removed=len(deletes))
        return Result(
            changed=True,
            changes=changes,
            prior_state=prior,
            outputs=outputs,
            notes=self._notes(params, nsg_id, nsg),
        )

    def verify(self, ctx: StepContext) -> bool:
        params: QuarantineSubnetParams = ctx.params  # type: ignore[assignment]
        _, nsg = self._read(ctx)
        rules = _rules(nsg)
        changes, desired = _quarantine_diff(params, rules)
        if changes:
            return False
        return all(rules[n]["properties"].get("provisioningState") == "Succeeded" for n in desired)


class ReleaseSubnetParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subnet: SubnetId = Field(description="Resource id of the quarantined subnet.")


@register
class ReleaseSubnet(Action):
    """Undo ``network.quarantine_subnet``: remove exactly the ``irflow-quarantine-*`` rules of its NSG.

    The NSG's own rules are never touched. The definition of each removed rule is recorded.

    Example::

        - id: release
          action: network.release_subnet
          requires_approval: true
          for_each: "{{ inputs.subnets }}"
          with: {subnet: "{{ item }}"}
    """

    name = "network.release_subnet"
    Params = ReleaseSubnetParams
    permissions = (SUBNET_READ, NSG_READ, RULE_DELETE, OPERATION_READ, OPERATION_RESULT_READ)
    target_param = "subnet"

    def _quarantine_rules(self, ctx: StepContext) -> tuple[str | None, dict[str, dict[str, Any]]]:
        params: ReleaseSubnetParams = ctx.params  # type: ignore[assignment]
        nsg_id = _subnet_nsg(ctx, params.subnet)
        if nsg_id is None:
            return None, {}
        rules = _rules(_get_nsg(ctx, nsg_id))
        return nsg_id, {n: _shape(r["properties"]) for n, r in sorted(rules.items()) if _is_quarantine(n)}

    @staticmethod
    def _changes(found: dict[str, dict[str, Any]]) -> list[Change]:
        return [
            Change(field=f"securityRules.{name}", before=shape, after=None) for name, shape in found.items()
        ]

    def plan(self, ctx: StepContext) -> Plan:
        params: ReleaseSubnetParams = ctx.params  # type: ignore[assignment]
        _, found = self._quarantine_rules(ctx)
        notes = [] if found else ["not quarantined"]
        return Plan(action=self.name, target=params.subnet, changes=self._changes(found), notes=notes)

    def apply(self, ctx: StepContext) -> Result:
        nsg_id, found = self._quarantine_rules(ctx)
        prior = {"nsg": nsg_id, "rules": found}
        if nsg_id is None or not found:
            return Result(changed=False, prior_state=prior, notes=["not quarantined"])
        rid = ResourceId.parse(nsg_id)
        operations = ctx.clients.network(rid.subscription_id).security_rules
        for name in found:
            with azure_errors(permission=RULE_DELETE, scope=f"{nsg_id}/securityRules/{name}"):
                operations.begin_delete(rid.resource_group, rid.name, name).result()
        ctx.log.info("subnet released", rules_removed=len(found))
        return Result(changed=True, changes=self._changes(found), prior_state=prior)

    def verify(self, ctx: StepContext) -> bool:
        _, found = self._quarantine_rules(ctx)
        return not found


# --------------------------------------------------------------------------------------------- peerings
def _vnet_of(peering_id: str) -> str:
    return peering_id.rsplit("/virtualNetworkPeerings/", 1)[0]


def _definition(peering: dict[str, Any]) -> dict[str, Any]:
    props = peering.get("properties", {})
    return {
        "name": peering.get("name"),
        "remoteVirtualNetwork": (props.get("remoteVirtualNetwork") or {}).get("id"),
        "allowVirtualNetworkAccess": props.get("allowVirtualNetworkAccess", True),
        "allowForwardedTraffic": props.get("allowForwardedTraffic", False),
        "allowGatewayTransit": props.get("allowGatewayTransit", False),
        "useRemoteGateways": props.get("useRemoteGateways", False),
        "remoteAddressSpace": (props.get("remoteAddressSpace") or {}).get("addressPrefixes", []),
        "peeringState": props.get("peeringState"),
        "provisioningState": props.get("provisioningState"),
    }


def _get_peering(ctx: StepContext, peering_id: str) -> dict[str, Any] | None:
    """The peering (wire shape), or None when it does not exist; a missing VNet is ResourceMissing."""
    rid = ResourceId.parse(peering_id)
    client = ctx.clients.network(rid.subscription_id)
    try:
        with azure_errors(permission=PEERING_READ, scope=peering_id):
            return client.virtual_network_peerings.get(
                rid.resource_group, rid.names[0], rid.names[1]
            ).as_dict()
    except ResourceMissing:
        pass
    with azure_errors(permission=VNET_READ, scope=_vnet_of(peering_id)):
        client.virtual_networks.get(rid.resource_group, rid.names[0])
    return None


class DisconnectPeeringParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    peering: VirtualNetworkPeeringId = Field(description="Resource id of the VNet peering to delete.")


@register
class DisconnectPeering(Action):
    """Cut a VNet peering that lets another network around the PHI subnet's NSG: delete it.

    The peering's full definition (remote network, address space, access / forwarding / gateway flags) is
    recorded in the step result for ``network.restore_peering``. The remote network's peering back shows
    ``Disconnected`` afterwards. A peering that is already gone is a no-op (its network must exist).

    Example::

        - id: disconnect-peering
          action: network.disconnect_peering
          for_each: "{{ inputs.peerings }}"
          with: {peering: "{{ item }}"}
    """

    name = "network.disconnect_peering"
    Params = DisconnectPeeringParams
    permissions = (PEERING_READ, VNET_READ, PEERING_DELETE, OPERATION_RESULT_READ)
    target_param = "peering"

    def plan(self, ctx: StepContext) -> Plan:
        params: DisconnectPeeringParams = ctx.params  # type: ignore[assignment]
        peering = _get_peering(ctx, params.peering)
        if peering is None:
            return Plan(action=self.name, target=params.peering, notes=["peering already absent"])
        definition = _definition(peering)
        return Plan(
            action=self.name,
            target=params.peering,
            changes=[
                Change(field=f"virtualNetworkPeerings.{definition['name']}", before=definition, after=None)
            ],
            notes=[f"the peering back from {definition['remoteVirtualNetwork']} will show Disconnected"],
        )

    def apply(self, ctx: StepContext) -> Result:
        params: DisconnectPeeringParams = ctx.params  # type: ignore[assignment]
        peering = _get_peering(ctx, params.peering)
        if peering is None:
            return Result(changed=False, notes=["peering already absent"])
        definition = _definition(peering)
        rid = ResourceId.parse(params.peering)
        with azure_errors(permission=PEERING_DELETE, scope=params.peering):
            ctx.clients.network(rid.subscription_id).virtual_network_peerings.begin_delete(
                rid.resource_group, rid.names[0], rid.names[1]
            ).result()
        ctx.log.info("peering deleted", remote=definition["remoteVirtualNetwork"])
        change = Change(field=f"virtualNetworkPeerings.{definition['name']}", before=definition, after=None)
        return Result(changed=True, changes=[change], prior_state=definition)

    def verify(self, ctx: StepContext) -> bool:
        params: DisconnectPeeringParams = ctx.params  # type: ignore[assignment]
        return _get_peering(ctx, params.peering) is None


class PeeringDefinition(BaseModel):
    """A peering as ``network.disconnect_peering`` records it in its step result."""

    model_config = ConfigDict(extra="ignore")

    remoteVirtualNetwork: VirtualNetworkId  # noqa: N815 (ARM names)
    allowVirtualNetworkAccess: bool = True  # noqa: N815
    allowForwardedTraffic: bool = False  # noqa: N815
    allowGatewayTransit: bool = False  # noqa: N815
    useRemoteGateways: bool = False  # noqa: N815

    def body(self) -> dict[str, Any]:
        flags = self.model_dump(exclude={"remoteVirtualNetwork"})
        return {"properties": {"remoteVirtualNetwork": {"id": self.remoteVirtualNetwork}, **flags}}


class RestorePeeringParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    peering: VirtualNetworkPeeringId = Field(description="Resource id of the peering to re-create.")
    prior: PeeringDefinition = Field(
        description="The definition recorded by network.disconnect_peering "
        "(in a playbook: {{ incident.prior_state['network.disconnect_peering'][item] }})."
    )


@register
class RestorePeering(Action):
    """Undo ``network.disconnect_peering``: re-create the peering from its recorded definition.

    Azure refuses to re-create a peering while the remote network's peering back is ``Disconnected``; that one
    is first updated with its own definition (it becomes ``Initiated``), so both sides end ``Connected``. A
    no-op when the peering exists with the recorded remote network and flags.

    Example::

        - id: restore-peering
          action: network.restore_peering
          requires_approval: true
          for_each: "{{ inputs.peerings }}"
          with:
            peering: "{{ item }}"
            prior: "{{ incident.prior_state['network.disconnect_peering'][item] }}"
    """

    name = "network.restore_peering"
    Params = RestorePeeringParams
    permissions = (PEERING_READ, VNET_READ, PEERING_WRITE, VNET_PEER, OPERATION_READ)
    target_param = "peering"

    @staticmethod
    def _matches(current: dict[str, Any] | None, prior: PeeringDefinition) -> bool:
        if current is None:
            return False
        definition = _definition(current)
        wanted = prior.model_dump()
        remote = (definition["remoteVirtualNetwork"] or "").lower()
        flags = all(
            definition[key] == value for key, value in wanted.items() if key != "remoteVirtualNetwork"
        )
        return remote == prior.remoteVirtualNetwork.lower() and flags

    def _remote_back(self, ctx: StepContext) -> dict[str, Any] | None:
        """The remote network's peering back to this one, when it is Disconnected (it blocks a re-create)."""
        params: RestorePeeringParams = ctx.params  # type: ignore[assignment]
        remote_id = params.prior.remoteVirtualNetwork
        rid = ResourceId.parse(remote_id)
        with azure_errors(permission=VNET_READ, scope=remote_id):
            vnet = ctx.clients.network(rid.subscription_id).virtual_networks.get(rid.resource_group, rid.name)
        local = _vnet_of(params.peering).lower()
        for peering in vnet.as_dict().get("properties", {}).get("virtualNetworkPeerings") or []:
            props = peering.get("properties", {})
            if (props.get("remoteVirtualNetwork") or {}).get("id", "").lower() == local:
                return peering if props.get("peeringState") == "Disconnected" else None
        return None

    def _diff(self, ctx: StepContext) -> tuple[list[Change], dict[str, Any] | None, dict[str, Any] | None]:
        params: RestorePeeringParams = ctx.params  # type: ignore[assignment]
        current = _get_peering(ctx, params.peering)
        if self._matches(current, params.prior):
            return [], current, None
        name = params.peering.rsplit("/", 1)[-1]
        back = self._remote_back(ctx)
        changes = []
        if back is not None:
            changes.append(
                Change(
                    field="remotePeering.peeringState",
                    before="Disconnected",
                    after=back["id"] + ": Initiated",
                )
            )
        changes.append(
            Change(
                field=f"virtualNetworkPeerings.{name}",
                before=_definition(current) if current else None,
                after=params.prior.model_dump(),
            )
        )
        return changes, current, back

    def plan(self, ctx: StepContext) -> Plan:
        params: RestorePeeringParams = ctx.params  # type: ignore[assignment]
        changes, _, _ = self._diff(ctx)
        return Plan(action=self.name, target=params.peering, changes=changes)

    def apply(self, ctx: StepContext) -> Result:
        params: RestorePeeringParams = ctx.params  # type: ignore[assignment]
        changes, current, back = self._diff(ctx)
        prior = {"peering": _definition(current) if current else None}
        if not changes:
            return Result(changed=False, prior_state=prior, notes=["peering already in place"])
        if back is not None:
            back_rid = ResourceId.parse(back["id"])
            again = PeeringDefinition.model_validate(_definition(back))
            prior["remotePeering"] = _definition(back)
            with azure_errors(permission=PEERING_WRITE, scope=back["id"]):
                ctx.clients.network(back_rid.subscription_id).virtual_network_peerings.begin_create_or_update(
                    back_rid.resource_group, back_rid.names[0], back_rid.names[1], again.body()
                ).result()
        rid = ResourceId.parse(params.peering)
        with azure_errors(permission=PEERING_WRITE, scope=params.peering):
            restored = (
                ctx.clients.network(rid.subscription_id)
                .virtual_network_peerings.begin_create_or_update(
                    rid.resource_group, rid.names[0], rid.names[1], params.prior.body()
                )
                .result()
            )
        state = restored.as_dict().get("properties", {}).get("peeringState")
        ctx.log.info("peering restored", peering_state=state)
        return Result(changed=True, changes=changes, prior_state=prior, outputs={"peeringState": state})

    def verify(self, ctx: StepContext) -> bool:
        params: RestorePeeringParams = ctx.params  # type: ignore[assignment]
        current = _get_peering(ctx, params.peering)
        if current is None or not self._matches(current, params.prior):
            return False
        return _definition(current)["provisioningState"] in ("Succeeded", None)
