"""Network containment actions (``azure-mgmt-network``): subnet quarantine through its NSG, VNet peerings.

Security rule and peering writes are long-running operations: each action waits for them with
``begin_*(...).result()`` and the SDK's own polling (it honours the ``Retry-After`` Azure sends; the client's
``polling_interval``, 30 s by default, is used only when Azure sends none). Tests against the simulator make
polling instant with ``tenant.lro.retry_after = 0`` and a network client built with ``polling_interval=0``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
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
RULE_READ = f"{_NET}/networkSecurityGroups/securityRules/read"  # the SDK GETs a rule after its PUT settles
NSG_WRITE = f"{_NET}/networkSecurityGroups/write"
NSG_DELETE = f"{_NET}/networkSecurityGroups/delete"
NSG_JOIN = f"{_NET}/networkSecurityGroups/join/action"  # associating an NSG with a subnet
SUBNET_WRITE = f"{_NET}/virtualNetworks/subnets/write"
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

    subnet: SubnetId = Field(
        description="Resource id of the subnet to quarantine (one without an NSG gets a quarantine NSG)."
    )
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


# Tags irflow leaves on Azure so that network.release_subnet can undo exactly what quarantine did, whatever
# run or machine releases it (idempotency from Azure-side state, not from a local record).
FLUSH_PRIOR_TAG = "irflow-quarantine-flush-prior"  # on a customer NSG whose flushConnection irflow turned on
PRIOR_NSG_TAG = "irflow-quarantine-prior-nsg"  # on a quarantine NSG: the subnet's NSG before the swap
_TAG_VALUE_MAX = 256  # https://learn.microsoft.com/azure/azure-resource-manager/management/tag-resources
_NSG_NAME_MAX = 80
# Private endpoints ignore NSG rules unless the subnet's privateEndpointNetworkPolicies is one of these
# (https://learn.microsoft.com/azure/private-link/disable-private-endpoint-network-policy).
_PE_POLICIES_ENFORCED = ("Enabled", "NetworkSecurityGroupEnabled")


def _quarantine_nsg_name(subnet_id: str) -> str:
    """The NSG swapped onto a subnet whose own NSG leaves no room: one per VNet and subnet."""
    rid = ResourceId.parse(subnet_id)
    name = f"{QUARANTINE_PREFIX}{rid.names[0]}-{rid.names[1]}"
    if len(name) <= _NSG_NAME_MAX:
        return name
    digest = hashlib.sha256(subnet_id.lower().encode()).hexdigest()[:12]
    return f"{name[: _NSG_NAME_MAX - 13]}-{digest}"


def _get_subnet(ctx: StepContext, subnet_id: str) -> dict[str, Any]:
    rid = ResourceId.parse(subnet_id)
    with azure_errors(permission=SUBNET_READ, scope=subnet_id):
        subnet = ctx.clients.network(rid.subscription_id).subnets.get(
            rid.resource_group, rid.names[0], rid.names[1]
        )
    return subnet.as_dict()


def _nsg_of(subnet: dict[str, Any]) -> str | None:
    return (subnet.get("properties", {}).get("networkSecurityGroup") or {}).get("id")


def _flush(nsg: dict[str, Any]) -> bool:
    return bool(nsg.get("properties", {}).get("flushConnection"))


def _tags(nsg: dict[str, Any]) -> dict[str, str]:
    return dict(nsg.get("tags") or {})


def _nsg_body(
    nsg: dict[str, Any],
    rules: dict[str, dict[str, Any]],
    *,
    flush: bool,
    tags: dict[str, str],
) -> dict[str, Any]:
    """An NSG PUT body (a full replacement: every rule to keep is in it) from wire-shaped rules."""
    security_rules = []
    for name, rule in sorted(rules.items()):
        props = {k: v for k, v in (rule.get("properties") or {}).items() if k != "provisioningState"}
        security_rules.append({"name": name, "properties": props})
    return {
        "location": nsg["location"],
        "tags": tags,
        "properties": {"securityRules": security_rules, "flushConnection": flush},
    }


def _wire_rules(desired: dict[str, dict[str, Any]], subnet_id: str) -> dict[str, dict[str, Any]]:
    description = f"irflow quarantine of {subnet_id.rsplit('/', 1)[-1]}"
    return {name: _wire(shape, description) for name, shape in desired.items()}


@dataclass
class _Quarantine:
    """What quarantining a subnet takes, read from Azure.

    ``mode``: ``rules`` (deny rules added to the subnet's own NSG, its ``flushConnection`` turned on),
    ``swap`` (the NSG's own Allow rules leave no room above them: a quarantine NSG is created and swapped onto
    the subnet, the prior association kept in its tags) or ``swapped`` (the subnet already sits on its
    quarantine NSG)."""

    mode: str
    subnet: dict[str, Any]
    nsg_id: str
    nsg: dict[str, Any]
    desired: dict[str, dict[str, Any]]
    changes: list[Change]
    notes: list[str]
    quarantine_nsg_id: str | None = None


def _private_endpoint_notes(subnet_id: str, subnet: dict[str, Any]) -> list[str]:
    props = subnet.get("properties", {})
    endpoints = [pe.get("id") for pe in props.get("privateEndpoints") or [] if pe.get("id")]
    policies = props.get("privateEndpointNetworkPolicies") or "Disabled"
    if not endpoints or policies in _PE_POLICIES_ENFORCED:
        return []
    return [
        f"{len(endpoints)} private endpoint(s) in {subnet_id} ignore the quarantine rules: the subnet's "
        f"privateEndpointNetworkPolicies is {policies}; set it to Enabled (or NetworkSecurityGroupEnabled) "
        "for NSG rules to apply to them, or disable the private endpoint connections: "
        + ", ".join(str(e) for e in endpoints)
    ]


NO_NSG = "none"  # the prior-NSG tag of a subnet that had no NSG


def _swap(
    params: QuarantineSubnetParams,
    subnet: dict[str, Any],
    prior_id: str | None,
    location: str,
    reason: str,
    notes: list[str],
) -> _Quarantine:
    """Quarantine by moving the subnet onto an NSG of irflow's own, its prior NSG recorded in a tag."""
    if prior_id is not None and len(prior_id) > _TAG_VALUE_MAX:
        raise ActionError(f"{reason}; and {prior_id} is too long to record in a tag for the release")
    desired = _desired(params, {})
    rid = ResourceId.parse(params.subnet)
    swap_id = (
        f"/subscriptions/{rid.subscription_id}/resourceGroups/{rid.resource_group}/providers/"
        f"Microsoft.Network/networkSecurityGroups/{_quarantine_nsg_name(params.subnet)}"
    )
    changes = [
        Change(
            field=f"networkSecurityGroups.{swap_id.rsplit('/', 1)[-1]}",
            before=None,
            after={
                "securityRules": desired,
                "flushConnection": True,
                "tags": {PRIOR_NSG_TAG: prior_id or NO_NSG},
            },
        ),
        Change(field="subnet.networkSecurityGroup", before=prior_id, after=swap_id),
    ]
    kept = f"its own NSG {prior_id} is left as it is, recorded," if prior_id else "it had no NSG; that is"
    notes = [
        f"{reason}: the subnet is moved onto the quarantine NSG {swap_id}; {kept} put back by "
        "network.release_subnet",
        *notes,
    ]
    template = {"location": location, "name": ""}
    return _Quarantine("swap", subnet, prior_id or "", template, desired, changes, notes, swap_id)


def _quarantine(ctx: StepContext, params: QuarantineSubnetParams) -> _Quarantine:
    subnet = _get_subnet(ctx, params.subnet)
    nsg_id = _nsg_of(subnet)
    pe_notes = _private_endpoint_notes(params.subnet, subnet)
    if nsg_id is None:
        vnet_id = params.subnet.rsplit("/subnets/", 1)[0]
        rid = ResourceId.parse(vnet_id)
        with azure_errors(permission=VNET_READ, scope=vnet_id):
            vnet = ctx.clients.network(rid.subscription_id).virtual_networks.get(rid.resource_group, rid.name)
        return _swap(
            params, subnet, None, vnet.location, "the subnet has no network security group", pe_notes
        )
    nsg = _get_nsg(ctx, nsg_id)
    rules = _rules(nsg)
    if _is_quarantine(nsg.get("name", "")):
        desired = _desired(params, {})
        changes, _ = _quarantine_diff(params, rules)
        if not _flush(nsg):
            changes.append(Change(field="flushConnection", before=False, after=True))
        prior = _tags(nsg).get(PRIOR_NSG_TAG)
        notes = [f"the subnet sits on quarantine NSG {nsg_id} (its own NSG, {prior}, is restored on release)"]
        return _Quarantine("swapped", subnet, nsg_id, nsg, desired, changes, notes + pe_notes, nsg_id)
    try:
        changes, desired = _quarantine_diff(params, rules)
    except ActionError as no_room:
        return _swap(params, subnet, nsg_id, nsg["location"], str(no_room), pe_notes)
    if not _flush(nsg):
        changes.append(Change(field="flushConnection", before=False, after=True))
    notes = []
    others = [s["id"] for s in nsg.get("properties", {}).get("subnets") or []]
    others = [s for s in others if s.lower() != params.subnet.lower()]
    if others:
        notes.append(f"{nsg_id} also protects {', '.join(others)}: they are quarantined too")
    return _Quarantine("rules", subnet, nsg_id, nsg, desired, changes, notes + pe_notes)


def _put_nsg(ctx: StepContext, nsg_id: str, body: dict[str, Any]) -> None:
    rid = ResourceId.parse(nsg_id)
    with azure_errors(permission=NSG_WRITE, scope=nsg_id):
        ctx.clients.network(rid.subscription_id).network_security_groups.begin_create_or_update(
            rid.resource_group, rid.name, body
        ).result()


def _put_subnet_nsg(ctx: StepContext, subnet_id: str, subnet: dict[str, Any], nsg_id: str | None) -> None:
    """Re-PUT a subnet as read, with another NSG (a subnet PUT is a full replacement)."""
    rid = ResourceId.parse(subnet_id)
    props = {k: v for k, v in subnet.get("properties", {}).items() if k not in _SUBNET_READ_ONLY}
    if nsg_id is None:
        props.pop("networkSecurityGroup", None)
    else:
        props["networkSecurityGroup"] = {"id": nsg_id}
    with azure_errors(permission=SUBNET_WRITE, scope=subnet_id):
        ctx.clients.network(rid.subscription_id).subnets.begin_create_or_update(
            rid.resource_group, rid.names[0], rid.names[1], {"properties": props}
        ).result()


_SUBNET_READ_ONLY = frozenset(
    {"provisioningState", "ipConfigurations", "ipConfigurationProfiles", "privateEndpoints", "purpose"}
)


@register
class QuarantineSubnet(Action):
    """Quarantine a subnet: deny all inbound and outbound traffic, and cut the connections already open.

    Adds ``irflow-quarantine-deny-inbound`` / ``-outbound`` (deny everything) to the subnet's NSG at the first
    free priorities from 100, above every Allow rule of the NSG's own, with the optional ``allow`` rules
    (named ``irflow-quarantine-allow-NAME``) just above them, then turns the NSG's ``flushConnection`` on:
    without it Azure keeps every connection established before the rule change (the prior value is kept in
    the NSG's tag ``irflow-quarantine-flush-prior`` and restored on release). Every subnet sharing the NSG is
    quarantined with it (the plan says which). Existing rules are not touched; stale ``irflow-quarantine-*``
    rules from an earlier allow-list are replaced.

    When an Allow rule of the NSG's own holds the top priorities (e.g. 100), nothing can be placed above it,
    and a subnet without an NSG has nowhere to put the rules: then a quarantine NSG
    ``irflow-quarantine-VNET-SUBNET`` holding only the quarantine rules (``flushConnection`` on) is created in
    the subnet's resource group and swapped onto the subnet; the subnet's own NSG (or ``none``) is left
    untouched and recorded in the quarantine NSG's tag ``irflow-quarantine-prior-nsg``.

    Private endpoints in the subnet ignore NSG rules unless its ``privateEndpointNetworkPolicies`` is
    ``Enabled`` (or ``NetworkSecurityGroupEnabled``): the plan and result say so and name them.
    ``network.release_subnet`` undoes exactly what this did.

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
    permissions = (
        SUBNET_READ,
        VNET_READ,
        NSG_READ,
        RULE_READ,
        RULE_WRITE,
        RULE_DELETE,
        NSG_WRITE,
        SUBNET_WRITE,
        NSG_JOIN,
        OPERATION_READ,
        OPERATION_RESULT_READ,
    )
    target_param = "subnet"

    def plan(self, ctx: StepContext) -> Plan:
        params: QuarantineSubnetParams = ctx.params  # type: ignore[assignment]
        q = _quarantine(ctx, params)
        notes = q.notes + ([] if q.changes else ["already quarantined"])
        return Plan(action=self.name, target=params.subnet, changes=q.changes, notes=notes)

    def apply(self, ctx: StepContext) -> Result:
        params: QuarantineSubnetParams = ctx.params  # type: ignore[assignment]
        q = _quarantine(ctx, params)
        prior: dict[str, Any] = {
            "nsg": q.nsg_id or None,
            "flushConnection": _flush(q.nsg),
            "rules": {
                c.field.removeprefix("securityRules."): c.before
                for c in q.changes
                if c.field.startswith("securityRules.")
            },
        }
        outputs = {"nsg": q.quarantine_nsg_id or q.nsg_id, "rules": sorted(q.desired), "mode": q.mode}
        if not q.changes:
            return Result(
                changed=False, prior_state=prior, outputs=outputs, notes=q.notes + ["already quarantined"]
            )
        if q.mode == "rules":
            self._apply_rules(ctx, params, q)
        else:
            assert q.quarantine_nsg_id is not None
            tags = _tags(q.nsg) if q.mode == "swapped" else {PRIOR_NSG_TAG: q.nsg_id or NO_NSG}
            body = _nsg_body(q.nsg, _wire_rules(q.desired, params.subnet), flush=True, tags=tags)
            _put_nsg(ctx, q.quarantine_nsg_id, body)  # deny first: the NSG exists with its rules ...
            if q.mode == "swap":  # ... before the subnet moves onto it
                _put_subnet_nsg(ctx, params.subnet, q.subnet, q.quarantine_nsg_id)
        ctx.log.info("subnet quarantined", mode=q.mode, changes=len(q.changes))
        return Result(changed=True, changes=q.changes, prior_state=prior, outputs=outputs, notes=q.notes)

    @staticmethod
    def _apply_rules(ctx: StepContext, params: QuarantineSubnetParams, q: _Quarantine) -> None:
        rules = _rules(q.nsg)
        rid = ResourceId.parse(q.nsg_id)
        operations = ctx.clients.network(rid.subscription_id).security_rules
        rule_changes = [c for c in q.changes if c.field.startswith("securityRules.")]
        writes = [c.field.removeprefix("securityRules.") for c in rule_changes if c.after is not None]
        # Quarantine rules being moved may hold a priority another one is moving to: remove those first.
        held = {
            (rule["properties"].get("direction"), rule["properties"].get("priority")): name
            for name, rule in rules.items()
            if _is_quarantine(name)
        }
        deletes = [c.field.removeprefix("securityRules.") for c in rule_changes if c.after is None]
        for name in writes:
            holder = held.get((q.desired[name]["direction"], q.desired[name]["priority"]))
            if holder is not None and holder != name and holder not in deletes:
                deletes.append(holder)
        for name in deletes:
            with azure_errors(permission=RULE_DELETE, scope=f"{q.nsg_id}/securityRules/{name}"):
                operations.begin_delete(rid.resource_group, rid.name, name).result()
        # Deny rules first: traffic is cut before any allow rule opens its narrow path.
        for name in sorted(writes, key=lambda n: (not n.startswith(f"{QUARANTINE_PREFIX}deny-"), n)):
            body = _wire(q.desired[name], f"irflow quarantine of {params.subnet.rsplit('/', 1)[-1]}")
            with azure_errors(permission=RULE_WRITE, scope=f"{q.nsg_id}/securityRules/{name}"):
                operations.begin_create_or_update(rid.resource_group, rid.name, name, body).result()
        if not _flush(q.nsg):
            # Turned on after the rules: its initial enablement re-evaluates every established flow against
            # them. The NSG PUT is a full replacement, so it carries the rules as they now are.
            nsg = _get_nsg(ctx, q.nsg_id)
            tags = {**_tags(nsg), FLUSH_PRIOR_TAG: "false"}
            _put_nsg(ctx, q.nsg_id, _nsg_body(nsg, _rules(nsg), flush=True, tags=tags))

    def verify(self, ctx: StepContext) -> bool:
        params: QuarantineSubnetParams = ctx.params  # type: ignore[assignment]
        q = _quarantine(ctx, params)
        if q.changes:
            return False
        rules = _rules(q.nsg)
        return all(rules[n]["properties"].get("provisioningState") == "Succeeded" for n in q.desired)


class ReleaseSubnetParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subnet: SubnetId = Field(description="Resource id of the quarantined subnet.")


@dataclass
class _Release:
    subnet: dict[str, Any]
    nsg_id: str | None
    nsg: dict[str, Any] | None
    changes: list[Change]
    leftover_nsg: str | None = None  # a detached quarantine NSG (a release interrupted after the swap back)


def _release(ctx: StepContext, subnet_id: str) -> _Release:
    subnet = _get_subnet(ctx, subnet_id)
    nsg_id = _nsg_of(subnet)
    nsg = _get_nsg(ctx, nsg_id) if nsg_id else None
    changes: list[Change] = []
    if nsg is not None and _is_quarantine(nsg.get("name", "")):
        prior = _prior_nsg(nsg)
        changes.append(Change(field="subnet.networkSecurityGroup", before=nsg_id, after=prior))
        changes.append(Change(field=f"networkSecurityGroups.{nsg['name']}", before=nsg_id, after=None))
        return _Release(subnet, nsg_id, nsg, changes)
    if nsg is not None:
        found = {n: _shape(r["properties"]) for n, r in sorted(_rules(nsg).items()) if _is_quarantine(n)}
        changes += [
            Change(field=f"securityRules.{n}", before=shape, after=None) for n, shape in found.items()
        ]
        flush_prior = _tags(nsg).get(FLUSH_PRIOR_TAG)
        if flush_prior is not None:
            changes.append(
                Change(field="flushConnection", before=_flush(nsg), after=flush_prior.lower() == "true")
            )
    leftover = _detached_quarantine_nsg(ctx, subnet_id)
    if leftover:
        changes.append(
            Change(field=f"networkSecurityGroups.{leftover.rsplit('/', 1)[-1]}", before=leftover, after=None)
        )
    return _Release(subnet, nsg_id, nsg, changes, leftover)


def _prior_nsg(quarantine_nsg: dict[str, Any]) -> str | None:
    """The NSG a quarantine NSG's subnet had before the swap (None: it had none)."""
    prior = _tags(quarantine_nsg).get(PRIOR_NSG_TAG) or NO_NSG
    return None if prior == NO_NSG else prior


def _detached_quarantine_nsg(ctx: StepContext, subnet_id: str) -> str | None:
    """This subnet's quarantine NSG when it still exists and protects no subnet (left by an interrupted
    release)."""
    rid = ResourceId.parse(subnet_id)
    nsg_id = (
        f"/subscriptions/{rid.subscription_id}/resourceGroups/{rid.resource_group}/providers/"
        f"Microsoft.Network/networkSecurityGroups/{_quarantine_nsg_name(subnet_id)}"
    )
    try:
        nsg = _get_nsg(ctx, nsg_id)
    except ResourceMissing:
        return None
    return None if nsg.get("properties", {}).get("subnets") else nsg_id


def _delete_nsg(ctx: StepContext, nsg_id: str) -> None:
    rid = ResourceId.parse(nsg_id)
    with azure_errors(permission=NSG_DELETE, scope=nsg_id):
        ctx.clients.network(rid.subscription_id).network_security_groups.begin_delete(
            rid.resource_group, rid.name
        ).result()


@register
class ReleaseSubnet(Action):
    """Undo ``network.quarantine_subnet``.

    On the subnet's own NSG: remove exactly the ``irflow-quarantine-*`` rules and put ``flushConnection`` back
    as it was (from the tag ``irflow-quarantine-flush-prior``); the NSG's own rules are never touched. When
    the subnet sits on its quarantine NSG: move it back onto the NSG recorded in that NSG's tag
    ``irflow-quarantine-prior-nsg``, then delete the quarantine NSG. The definition of everything removed is
    recorded.

    Example::

        - id: release
          action: network.release_subnet
          requires_approval: true
          for_each: "{{ inputs.subnets }}"
          with: {subnet: "{{ item }}"}
    """

    name = "network.release_subnet"
    Params = ReleaseSubnetParams
    permissions = (
        SUBNET_READ,
        NSG_READ,
        RULE_DELETE,
        NSG_WRITE,
        NSG_DELETE,
        SUBNET_WRITE,
        NSG_JOIN,
        OPERATION_READ,
        OPERATION_RESULT_READ,
    )
    target_param = "subnet"

    def plan(self, ctx: StepContext) -> Plan:
        params: ReleaseSubnetParams = ctx.params  # type: ignore[assignment]
        r = _release(ctx, params.subnet)
        notes = [] if r.changes else ["not quarantined"]
        return Plan(action=self.name, target=params.subnet, changes=r.changes, notes=notes)

    def apply(self, ctx: StepContext) -> Result:
        params: ReleaseSubnetParams = ctx.params  # type: ignore[assignment]
        r = _release(ctx, params.subnet)
        rule_changes = [c for c in r.changes if c.field.startswith("securityRules.")]
        prior = {
            "nsg": r.nsg_id,
            "rules": {c.field.removeprefix("securityRules."): c.before for c in rule_changes},
        }
        if not r.changes:
            return Result(changed=False, prior_state=prior, notes=["not quarantined"])
        assert r.nsg_id is not None or r.leftover_nsg is not None
        if r.nsg is not None and _is_quarantine(r.nsg.get("name", "")):
            _put_subnet_nsg(ctx, params.subnet, r.subnet, _prior_nsg(r.nsg))
            _delete_nsg(ctx, r.nsg_id)  # type: ignore[arg-type]
        elif r.nsg is not None and r.nsg_id is not None:
            rid = ResourceId.parse(r.nsg_id)
            operations = ctx.clients.network(rid.subscription_id).security_rules
            for change in rule_changes:
                name = change.field.removeprefix("securityRules.")
                with azure_errors(permission=RULE_DELETE, scope=f"{r.nsg_id}/securityRules/{name}"):
                    operations.begin_delete(rid.resource_group, rid.name, name).result()
            if any(c.field == "flushConnection" for c in r.changes):
                nsg = _get_nsg(ctx, r.nsg_id)
                tags = _tags(nsg)
                flush = tags.pop(FLUSH_PRIOR_TAG, "false").lower() == "true"
                _put_nsg(ctx, r.nsg_id, _nsg_body(nsg, _rules(nsg), flush=flush, tags=tags))
        if r.leftover_nsg:
            _delete_nsg(ctx, r.leftover_nsg)
        ctx.log.info("subnet released", changes=len(r.changes))
        return Result(changed=True, changes=r.changes, prior_state=prior)

    def verify(self, ctx: StepContext) -> bool:
        params: ReleaseSubnetParams = ctx.params  # type: ignore[assignment]
        return not _release(ctx, params.subnet).changes


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
        # A subnet peering connects only these subnets: restoring it as a full VNet peering would open more
        # than was there (https://learn.microsoft.com/azure/virtual-network/how-to-configure-subnet-peering).
        "peerCompleteVnets": props.get("peerCompleteVnets", True),
        "localSubnetNames": list(props.get("localSubnetNames") or []),
        "remoteSubnetNames": list(props.get("remoteSubnetNames") or []),
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
    peerCompleteVnets: bool = True  # noqa: N815
    localSubnetNames: list[str] = Field(default_factory=list, max_length=100)  # noqa: N815
    remoteSubnetNames: list[str] = Field(default_factory=list, max_length=100)  # noqa: N815

    @model_validator(mode="after")
    def _subnets_named(self) -> PeeringDefinition:
        if not self.peerCompleteVnets and not (self.localSubnetNames and self.remoteSubnetNames):
            raise ValueError(
                "a subnet peering (peerCompleteVnets: false) needs localSubnetNames and remoteSubnetNames"
            )
        return self

    def comparable(self) -> dict[str, Any]:
        """The definition with subnet names in a case-insensitive order (ARM names are case-insensitive)."""
        wanted = self.model_dump()
        wanted["remoteVirtualNetwork"] = wanted["remoteVirtualNetwork"].lower()
        for key in ("localSubnetNames", "remoteSubnetNames"):
            wanted[key] = sorted(n.lower() for n in wanted[key]) if not self.peerCompleteVnets else []
        return wanted

    def body(self) -> dict[str, Any]:
        flags = self.model_dump(exclude={"remoteVirtualNetwork", "localSubnetNames", "remoteSubnetNames"})
        if not self.peerCompleteVnets:
            flags["localSubnetNames"] = list(self.localSubnetNames)
            flags["remoteSubnetNames"] = list(self.remoteSubnetNames)
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
        definition["remoteVirtualNetwork"] = definition["remoteVirtualNetwork"] or ""
        found = PeeringDefinition.model_construct(
            **{k: definition[k] for k in PeeringDefinition.model_fields}
        ).comparable()
        return found == prior.comparable()

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
