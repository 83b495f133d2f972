"""Microsoft Sentinel entities as irflow sees them: a kind and one identifying value, never personal details.

Entity kinds and their identifying properties are Microsoft's
(https://learn.microsoft.com/en-us/azure/sentinel/entities-reference: AzureResource.ResourceId,
Account.AadUserId, IP.Address, Host.AzureID / HostName, CloudApplication.AppId, MailMessage.NetworkMessageId)
and the ARM shape of an incident's related entities (``kind`` + ``properties``):
https://learn.microsoft.com/en-us/rest/api/securityinsights/incidents/list-entities.
Only the identifying value is kept: an account's name or UPN, a mail's sender, recipient and subject are
personal data and never leave the delivery.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from irflow.domain.resource_id import ResourceId

ENTITY_KINDS = ("AzureResource", "Account", "Ip", "Host", "CloudApplication", "MailMessage")
_KIND_BY_LOWER = {kind.lower(): kind for kind in ENTITY_KINDS}
_ARM_TYPE = re.compile(r"^[A-Za-z][\w.]*(/[A-Za-z]\w*)+$")
# Azure Monitor hands resource ids lowercased (alertTargetIDs); ARM is case-insensitive, but irflow's inputs,
# audit trail and evidence spell the known types the way ARM's specs do.
_CANONICAL_TYPES = {
    "/".join(parts).lower(): parts
    for parts in (
        ("Microsoft.Storage", "storageAccounts"),
        ("Microsoft.KeyVault", "vaults"),
        ("Microsoft.Network", "networkSecurityGroups"),
        ("Microsoft.Network", "virtualNetworks"),
        ("Microsoft.Network", "virtualNetworks", "subnets"),
        ("Microsoft.Network", "virtualNetworks", "virtualNetworkPeerings"),
        ("Microsoft.Compute", "virtualMachines"),
    )
}
_HOST_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*$")


@dataclass(frozen=True)
class Entity:
    kind: str
    value: str
    # AzureResource only: the ARM type ("microsoft.storage/storageaccounts"), lowercase.
    resource_type: str | None = None


def parse_entity_selector(selector: str) -> tuple[str, str | None]:
    """``Kind`` or ``AzureResource:<ARM type>`` → (kind, lowercase ARM type or None); ValueError otherwise."""
    kind_part, sep, type_part = selector.partition(":")
    kind = _KIND_BY_LOWER.get(kind_part.strip().lower())
    if kind is None:
        raise ValueError(f"unknown Sentinel entity kind {kind_part!r} (known: {', '.join(ENTITY_KINDS)})")
    if not sep:
        return kind, None
    if kind != "AzureResource":
        raise ValueError(f"only AzureResource takes a resource type, not {kind}")
    if not _ARM_TYPE.match(type_part.strip()):
        raise ValueError(f"not an ARM resource type: {type_part!r} (e.g. Microsoft.Storage/storageAccounts)")
    return kind, type_part.strip().lower()


def select_entities(entities: Iterable[Entity], selector: str) -> list[str]:
    """The distinct values of the entities the selector names, in delivery order."""
    kind, resource_type = parse_entity_selector(selector)
    values: list[str] = []
    for entity in entities:
        if entity.kind != kind or (resource_type and entity.resource_type != resource_type):
            continue
        if entity.value not in values:
            values.append(entity.value)
    return values


def entity_from_sentinel(kind: str, properties: dict[str, Any]) -> Entity | None:
    """One related entity of a Sentinel incident, or None when it has no usable identifying value."""
    canonical = _KIND_BY_LOWER.get(kind.lower())
    if canonical is None:
        return None
    props = {key.lower(): value for key, value in properties.items()}
    value: str | None
    if canonical == "AzureResource":
        return azure_resource(props.get("resourceid"))
    if canonical == "Account":
        value = _guid(props.get("aaduserid"))
    elif canonical == "Ip":
        value = _ip(props.get("address"))
    elif canonical == "Host":
        host = azure_resource(props.get("azureid"))
        if host is not None:
            return Entity("Host", host.value, host.resource_type)
        value = _host_name(props.get("hostname"), props.get("dnsdomain"))
    elif canonical == "CloudApplication":
        app_id = props.get("appid")
        value = str(app_id) if isinstance(app_id, int | str) and str(app_id).strip() else None
    else:  # MailMessage
        value = _guid(props.get("networkmessageid"))
    return Entity(canonical, value) if value else None


def azure_resource(raw: Any) -> Entity | None:
    if not isinstance(raw, str):
        return None
    try:
        rid = ResourceId.parse(raw)
    except ValueError:
        return None
    canonical = _CANONICAL_TYPES.get(rid.full_type.lower())
    if canonical is not None:
        rid = replace(rid, namespace=canonical[0], types=canonical[1:])
    return Entity("AzureResource", str(rid), rid.full_type.lower())


def _guid(raw: Any) -> str | None:
    if not isinstance(raw, str):
        return None
    try:
        return str(uuid.UUID(raw.strip()))
    except ValueError:
        return None


def _ip(raw: Any) -> str | None:
    if not isinstance(raw, str):
        return None
    try:
        return str(ipaddress.ip_address(raw.strip()))
    except ValueError:
        return None


def _host_name(name: Any, domain: Any) -> str | None:
    if not isinstance(name, str) or not _HOST_NAME.match(name.strip()):
        return None
    full = name.strip()
    if isinstance(domain, str) and domain.strip() and _HOST_NAME.match(domain.strip()):
        full = f"{full}.{domain.strip()}"
    return full.lower()
