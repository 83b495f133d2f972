"""Azure Resource Manager resource ids, parsed and validated."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator

_RESOURCE_ID = re.compile(
    r"^/subscriptions/(?P<sub>[0-9a-fA-F-]{36})/resourceGroups/(?P<rg>[-\w._()]{1,90})"
    r"/providers/(?P<ns>[A-Za-z][\w.]*)/(?P<rest>[^?#\s]+)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ResourceId:
    subscription_id: str
    resource_group: str
    namespace: str
    types: tuple[str, ...]
    names: tuple[str, ...]

    @classmethod
    def parse(cls, value: str) -> ResourceId:
        match = _RESOURCE_ID.match(value.strip())
        if not match:
            raise ValueError(
                f"not an Azure resource id: {value[:200]!r} "
                "(expected /subscriptions/<guid>/resourceGroups/<rg>/providers/<namespace>/<type>/<name>)"
            )
        parts = match["rest"].strip("/").split("/")
        if len(parts) % 2:
            raise ValueError(f"resource id has a type without a name: {value[:200]!r}")
        return cls(
            subscription_id=match["sub"].lower(),
            resource_group=match["rg"],
            namespace=match["ns"],
            types=tuple(parts[0::2]),
            names=tuple(parts[1::2]),
        )

    @property
    def name(self) -> str:
        return self.names[-1]

    @property
    def full_type(self) -> str:
        return "/".join((self.namespace, *self.types))

    def __str__(self) -> str:
        rest = "/".join(f"{t}/{n}" for t, n in zip(self.types, self.names, strict=True))
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{self.namespace}/{rest}"
        )


def _storage_account_id(value: str) -> str:
    rid = ResourceId.parse(value)
    if rid.full_type.lower() != "microsoft.storage/storageaccounts":
        raise ValueError(f"not a storage account id (type {rid.full_type}): {value[:200]!r}")
    if not re.fullmatch(r"[a-z0-9]{3,24}", rid.name):
        raise ValueError(f"invalid storage account name {rid.name!r}: 3-24 lowercase letters and digits")
    return str(rid)


StorageAccountId = Annotated[str, AfterValidator(_storage_account_id)]


_SCOPE = re.compile(r"^/subscriptions/[0-9a-fA-F-]{36}(/resourceGroups/[-\w._()]{1,90})?$", re.IGNORECASE)


def validate_scope(value: str) -> str:
    """An RBAC assignable scope: a subscription or a resource group."""
    if not _SCOPE.match(value.rstrip("/")):
        raise ValueError(
            f"not an assignable scope: {value[:200]!r} (expected /subscriptions/<guid>[/resourceGroups/<rg>])"
        )
    return value.rstrip("/")


def _typed_id(value: str, full_type: str, label: str) -> str:
    rid = ResourceId.parse(value)
    if rid.full_type.lower() != full_type.lower():
        raise ValueError(f"not a {label} id (type {rid.full_type}): {value[:200]!r}")
    return str(rid)


def _subnet_id(value: str) -> str:
    return _typed_id(value, "Microsoft.Network/virtualNetworks/subnets", "subnet")


def _virtual_network_id(value: str) -> str:
    return _typed_id(value, "Microsoft.Network/virtualNetworks", "virtual network")


def _peering_id(value: str) -> str:
    return _typed_id(
        value, "Microsoft.Network/virtualNetworks/virtualNetworkPeerings", "virtual network peering"
    )


SubnetId = Annotated[str, AfterValidator(_subnet_id)]
"""``/subscriptions/…/providers/Microsoft.Network/virtualNetworks/{vnet}/subnets/{subnet}``"""
VirtualNetworkId = Annotated[str, AfterValidator(_virtual_network_id)]
VirtualNetworkPeeringId = Annotated[str, AfterValidator(_peering_id)]
"""``/subscriptions/…/providers/Microsoft.Network/virtualNetworks/{vnet}/virtualNetworkPeerings/{peering}``"""

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _directory_object_id(value: str) -> str:
    if not _GUID.match(value.strip()):
        raise ValueError(
            f"not a Microsoft Entra object id: {value[:80]!r} (expected a GUID such as a user's or service "
            "principal's id, not a name)"
        )
    return value.strip().lower()


DirectoryObjectId = Annotated[str, AfterValidator(_directory_object_id)]
"""The object id (GUID) of a Microsoft Entra user or service principal, as Microsoft Graph addresses it."""


def _key_vault_id(value: str) -> str:
    rid = ResourceId.parse(value)
    if rid.full_type.lower() != "microsoft.keyvault/vaults":
        raise ValueError(f"not a key vault id (type {rid.full_type}): {value[:200]!r}")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]", rid.name) or "--" in rid.name:
        raise ValueError(
            f"invalid key vault name {rid.name!r}: 3-24 letters, digits and dashes, starting with a letter, "
            "ending with a letter or digit, no consecutive dashes"
        )
    return str(rid)


KeyVaultId = Annotated[str, AfterValidator(_key_vault_id)]


def _workspace_resource_id(value: str) -> str:
    return _typed_id(value, "Microsoft.OperationalInsights/workspaces", "Log Analytics workspace")


LogAnalyticsWorkspaceId = Annotated[str, AfterValidator(_workspace_resource_id)]
"""``/subscriptions/…/providers/Microsoft.OperationalInsights/workspaces/{name}`` (where diagnostic settings
send logs)."""


def _workspace_customer_id(value: str) -> str:
    if not _GUID.match(value.strip()):
        raise ValueError(
            f"not a Log Analytics workspace id: {value[:80]!r} (expected the workspace's GUID, its "
            "'Workspace ID' / customerId, not its name or resource id)"
        )
    return value.strip().lower()


WorkspaceGuid = Annotated[str, AfterValidator(_workspace_customer_id)]
"""A Log Analytics workspace's customer id (GUID): what the Log Analytics query API addresses."""
