"""Storage accounts as the storage resource provider keeps them: ARM properties, keys with creation times."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from irflow.domain.ip_rules import valid_ip_rule
from irflow.sim import arm, errors
from irflow.sim.storage.blob import BlobContainer, BlobService

STORAGE_ACCOUNT_TYPE = "Microsoft.Storage/storageAccounts"

KINDS = ("Storage", "StorageV2", "BlobStorage", "BlockBlobStorage", "FileStorage")
SKUS = (
    "Standard_LRS",
    "Standard_GRS",
    "Standard_RAGRS",
    "Standard_ZRS",
    "Standard_GZRS",
    "Standard_RAGZRS",
    "Premium_LRS",
    "Premium_ZRS",
)
_GEO_SKUS = ("Standard_GRS", "Standard_RAGRS", "Standard_GZRS", "Standard_RAGZRS")
_READ_ACCESS_GEO_SKUS = ("Standard_RAGRS", "Standard_RAGZRS")
# Azure paired regions, for the secondary of geo-redundant accounts.
_REGION_PAIRS = {
    "eastus": "westus",
    "westus": "eastus",
    "eastus2": "centralus",
    "centralus": "eastus2",
    "northcentralus": "southcentralus",
    "southcentralus": "northcentralus",
    "westus2": "westcentralus",
    "westcentralus": "westus2",
    "westus3": "eastus",
    "northeurope": "westeurope",
    "westeurope": "northeurope",
}
_SERVICES_BY_KIND = {
    "StorageV2": ("dfs", "web", "blob", "queue", "table", "file"),
    "Storage": ("blob", "queue", "table", "file"),
    "BlobStorage": ("dfs", "blob", "table"),
    "BlockBlobStorage": ("dfs", "web", "blob"),
    "FileStorage": ("file",),
}

# Properties the resource provider computes; a PATCH that carries them has them ignored.
READ_ONLY_PROPERTIES = frozenset(
    {
        "accountMigrationInProgress",
        "blobRestoreStatus",
        "creationTime",
        "failoverInProgress",
        "geoReplicationStats",
        "isSkuConversionBlocked",
        "keyCreationTime",
        "lastGeoFailoverTime",
        "primaryEndpoints",
        "primaryLocation",
        "privateEndpointConnections",
        "provisioningState",
        "secondaryEndpoints",
        "secondaryLocation",
        "statusOfPrimary",
        "statusOfSecondary",
        "storageAccountSkuConversionStatus",
    }
)

_ENUMS: dict[str, tuple[str, ...]] = {
    "publicNetworkAccess": ("Enabled", "Disabled", "SecuredByPerimeter"),
    "minimumTlsVersion": ("TLS1_0", "TLS1_1", "TLS1_2", "TLS1_3"),
    "accessTier": ("Hot", "Cool", "Cold", "Premium"),
    "largeFileSharesState": ("Disabled", "Enabled"),
    "allowedCopyScope": ("PrivateLink", "AAD"),
    "dnsEndpointType": ("Standard", "AzureDnsZone"),
}
_BOOLEANS = (
    "allowBlobPublicAccess",
    "allowCrossTenantReplication",
    "allowSharedKeyAccess",
    "defaultToOAuthAuthentication",
    "enableExtendedGroups",
    "isHnsEnabled",
    "isLocalUserEnabled",
    "isNfsV3Enabled",
    "isSftpEnabled",
    "supportsHttpsTrafficOnly",
)
_BYPASS_VALUES = ("None", "Logging", "Metrics", "AzureServices")
_DIRECTORY_SERVICES = ("None", "AADDS", "AD", "AADKERB")
_KERBEROS_DIRECTORY_SERVICES = ("AD", "AADKERB")


def _canonical(value: Any, allowed: tuple[str, ...], field: str) -> str:
    """Enum values are accepted case-insensitively and stored in Azure's spelling."""
    if isinstance(value, str):
        for candidate in allowed:
            if candidate.lower() == value.lower():
                return candidate
    raise errors.invalid_values(field)


def _validate_network_acls(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise errors.invalid_values("networkAcls")
    acls = dict(value)
    if "defaultAction" not in acls:
        raise errors.invalid_values("networkAcls.defaultAction")
    acls["defaultAction"] = _canonical(acls["defaultAction"], ("Allow", "Deny"), "networkAcls.defaultAction")
    if "bypass" in acls:
        if not isinstance(acls["bypass"], str):
            raise errors.invalid_values("networkAcls.bypass")
        parts = [p.strip() for p in acls["bypass"].split(",") if p.strip()]
        canonical = [_canonical(p, _BYPASS_VALUES, "networkAcls.bypass") for p in parts] or ["None"]
        if "None" in canonical and len(canonical) > 1:
            raise errors.invalid_values("networkAcls.bypass")
        acls["bypass"] = ", ".join(dict.fromkeys(canonical))
    for rules_field, key in (("ipRules", "value"), ("virtualNetworkRules", "id")):
        rules = acls.setdefault(rules_field, [])
        if not isinstance(rules, list):
            raise errors.invalid_values(f"networkAcls.{rules_field}")
        cleaned = []
        for rule in rules:
            if not isinstance(rule, dict) or not isinstance(rule.get(key), str) or not rule[key]:
                raise errors.invalid_values(f"networkAcls.{rules_field}")
            if rules_field == "ipRules" and not valid_ip_rule(rule[key], small_prefixes=False):
                raise errors.invalid_values(
                    f"networkAcls.ipRules ({rule[key]}: a public IPv4 address or range)"
                )
            rule = dict(rule)
            rule["action"] = _canonical(rule.get("action", "Allow"), ("Allow",), f"networkAcls.{rules_field}")
            if rules_field == "virtualNetworkRules":
                rule.setdefault("state", "Succeeded")
            cleaned.append(rule)
        acls[rules_field] = cleaned
    for list_field in ("resourceAccessRules", "ipv6Rules"):
        if list_field in acls and not isinstance(acls[list_field], list):
            raise errors.invalid_values(f"networkAcls.{list_field}")
    return acls


def validate_properties(properties: dict[str, Any]) -> dict[str, Any]:
    """Check the properties this simulator understands and canonicalise their enum spellings.

    Raises the storage provider's 400 ``InvalidValuesForRequestParameters`` naming the bad field.
    Properties it does not know are kept as given.
    """
    result = dict(properties)
    for name, allowed in _ENUMS.items():
        if name in result:
            result[name] = _canonical(result[name], allowed, name)
    for name in _BOOLEANS:
        if name in result and not isinstance(result[name], bool):
            raise errors.invalid_values(name)
    if "networkAcls" in result:
        result["networkAcls"] = _validate_network_acls(result["networkAcls"])
    if "keyPolicy" in result:
        period = (
            result["keyPolicy"].get("keyExpirationPeriodInDays")
            if isinstance(result["keyPolicy"], dict)
            else None
        )
        if not isinstance(period, int) or isinstance(period, bool) or period < 1:
            raise errors.invalid_values("keyPolicy.keyExpirationPeriodInDays")
    if "sasPolicy" in result:
        policy = result["sasPolicy"]
        if not isinstance(policy, dict) or not isinstance(policy.get("sasExpirationPeriod"), str):
            raise errors.invalid_values("sasPolicy.sasExpirationPeriod")
        result["sasPolicy"] = {
            **policy,
            "expirationAction": _canonical(
                policy.get("expirationAction", "Log"), ("Log", "Block"), "sasPolicy.expirationAction"
            ),
        }
    if "azureFilesIdentityBasedAuthentication" in result:
        auth = result["azureFilesIdentityBasedAuthentication"]
        if not isinstance(auth, dict):
            raise errors.invalid_values("azureFilesIdentityBasedAuthentication")
        result["azureFilesIdentityBasedAuthentication"] = {
            **auth,
            "directoryServiceOptions": _canonical(
                auth.get("directoryServiceOptions"),
                _DIRECTORY_SERVICES,
                "azureFilesIdentityBasedAuthentication.directoryServiceOptions",
            ),
        }
    return result


def default_properties(kind: str, created: datetime) -> dict[str, Any]:
    """What Azure stores for a new account created with no options (current API versions)."""
    enabled_at = arm.format_time(created)
    properties: dict[str, Any] = {
        "defaultToOAuthAuthentication": False,
        "publicNetworkAccess": "Enabled",
        "allowCrossTenantReplication": False,
        "minimumTlsVersion": "TLS1_2",
        "allowBlobPublicAccess": False,
        "allowSharedKeyAccess": True,
        "networkAcls": {
            "bypass": "AzureServices",
            "virtualNetworkRules": [],
            "ipRules": [],
            "defaultAction": "Allow",
        },
        "supportsHttpsTrafficOnly": True,
        "encryption": {
            "requireInfrastructureEncryption": False,
            "services": {
                "file": {"keyType": "Account", "enabled": True, "lastEnabledTime": enabled_at},
                "blob": {"keyType": "Account", "enabled": True, "lastEnabledTime": enabled_at},
            },
            "keySource": "Microsoft.Storage",
        },
    }
    if kind in ("StorageV2", "BlobStorage"):
        properties["accessTier"] = "Hot"
    return properties


def sku_tier(sku_name: str) -> str:
    return "Premium" if sku_name.startswith("Premium_") else "Standard"


class StorageAccount:
    """One storage account. Key values are secrets: they leave only through :meth:`list_keys`."""

    KEY_NAMES = ("key1", "key2")
    KERB_KEY_NAMES = ("kerb1", "kerb2")
    ALL_KEY_NAMES = KEY_NAMES + KERB_KEY_NAMES

    def __init__(
        self,
        *,
        subscription_id: str,
        resource_group: str,
        name: str,
        location: str,
        kind: str,
        sku_name: str,
        tags: dict[str, str],
        created: datetime,
        key_values: dict[str, str],
        key_times: dict[str, datetime],
        properties: dict[str, Any],
        blob_service_properties: dict[str, Any] | None = None,
    ) -> None:
        if kind not in KINDS:
            raise errors.invalid_values("kind")
        if sku_name not in SKUS:
            raise errors.invalid_values("sku")
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.name = name
        self.location = location
        self.kind = kind
        self.sku_name = sku_name
        self.tags = dict(tags)
        self.created = created
        self._key_values = dict(key_values)
        self.key_times = dict(key_times)
        given = {k: v for k, v in properties.items() if k not in READ_ONLY_PROPERTIES}
        self.properties = validate_properties(arm.merge_patch(default_properties(kind, created), given))
        self.blob_service = BlobService(self.id, blob_service_properties)
        # When revokeUserDelegationKeys last ran: user-delegation SAS signed before it no longer work.
        self.user_delegation_keys_revoked_at: datetime | None = None
        # Keys handed out by Get User Delegation Key (irflow.sim.storage.delegation); values are secrets.
        self.user_delegation_keys: list[Any] = []

    # ----------------------------------------------------------------- identity
    @property
    def id(self) -> str:
        return arm.resource_id(self.subscription_id, self.resource_group, STORAGE_ACCOUNT_TYPE, self.name)

    @property
    def kerberos_keys_enabled(self) -> bool:
        auth = self.properties.get("azureFilesIdentityBasedAuthentication") or {}
        return auth.get("directoryServiceOptions") in _KERBEROS_DIRECTORY_SERVICES

    @property
    def allows_blob_public_access(self) -> bool:
        return self.properties.get("allowBlobPublicAccess") is True

    def container(self, name: str) -> BlobContainer:
        """The container with this name (case-insensitive); KeyError when there is none."""
        found = self.blob_service.containers.get(name.lower())
        if found is None:
            raise KeyError(name)
        return found

    @property
    def containers(self) -> list[BlobContainer]:
        return self.blob_service.list_containers()

    # ----------------------------------------------------------------- wire shapes
    def to_arm(self, base_url: str) -> dict[str, Any]:
        """The account as ``GET …/storageAccounts/{name}`` answers it. Endpoints point at ``base_url``."""
        properties = copy.deepcopy(self.properties)
        properties.update(
            {
                "keyCreationTime": {k: arm.format_time(self.key_times[k]) for k in self.KEY_NAMES},
                "privateEndpointConnections": [],
                "provisioningState": "Succeeded",
                "creationTime": arm.format_time(self.created),
                "primaryEndpoints": self._endpoints(base_url, self.name),
                "primaryLocation": self.location,
                "statusOfPrimary": "available",
            }
        )
        secondary = _REGION_PAIRS.get(self.location.lower()) if self.sku_name in _GEO_SKUS else None
        if secondary:
            properties["secondaryLocation"] = secondary
            properties["statusOfSecondary"] = "available"
            if self.sku_name in _READ_ACCESS_GEO_SKUS:
                properties["secondaryEndpoints"] = self._endpoints(base_url, f"{self.name}-secondary")
        return {
            "id": self.id,
            "kind": self.kind,
            "location": self.location,
            "name": self.name,
            "properties": properties,
            "sku": {"name": self.sku_name, "tier": sku_tier(self.sku_name)},
            "tags": dict(self.tags),
            "type": STORAGE_ACCOUNT_TYPE,
        }

    def _endpoints(self, base_url: str, host_name: str) -> dict[str, str]:
        return {
            service: f"{base_url}/_data/{host_name}/{service}/" for service in _SERVICES_BY_KIND[self.kind]
        }

    def list_keys(self, expand_kerb: bool = False) -> dict[str, Any]:
        """The ``listKeys`` / ``regenerateKey`` answer: ``{"keys": [...]}``; Kerberos keys only when asked
        for and the account uses AD or Entra Kerberos authentication for Azure Files."""
        names = list(self.KEY_NAMES)
        if expand_kerb and self.kerberos_keys_enabled:
            names += self.KERB_KEY_NAMES
        return {
            "keys": [
                {
                    "creationTime": arm.format_time(self.key_times[name]),
                    "keyName": name,
                    "value": self._key_values[name],
                    "permissions": "Full",
                }
                for name in names
            ]
        }

    def summary(self) -> dict[str, Any]:
        """Secret-free facts for the admin state view."""
        acls = self.properties.get("networkAcls", {})
        return {
            "id": self.id,
            "name": self.name,
            "resource_group": self.resource_group,
            "subscription_id": self.subscription_id,
            "location": self.location,
            "tags": dict(self.tags),
            "publicNetworkAccess": self.properties.get("publicNetworkAccess"),
            "allowBlobPublicAccess": self.properties.get("allowBlobPublicAccess"),
            "allowSharedKeyAccess": self.properties.get("allowSharedKeyAccess"),
            "networkAcls": {"defaultAction": acls.get("defaultAction"), "bypass": acls.get("bypass")},
            "keyCreationTime": {k: arm.format_time(self.key_times[k]) for k in self.KEY_NAMES},
            "user_delegation_keys_revoked_at": (
                arm.format_time(self.user_delegation_keys_revoked_at)
                if self.user_delegation_keys_revoked_at
                else None
            ),
            "containers": [
                {
                    "name": c.name,
                    "publicAccess": c.public_access,
                    "hasLegalHold": c.has_legal_hold,
                    "legalHoldTags": c.legal_hold_tags,
                    "hasImmutabilityPolicy": c.immutability is not None,
                    "storedAccessPolicies": [p.to_dict() for p in c.access_policies],
                }
                for c in self.containers
            ],
        }

    # ----------------------------------------------------------------- changes
    def key_value(self, key_name: str) -> str:
        """The current value of one key (for tests that check a rotation actually happened)."""
        return self._key_values[key_name]

    def regenerate_key(self, key_name: str, value: str, when: datetime) -> None:
        """Replace one key. ``key_name`` must already be canonical (see :meth:`canonical_key_name`)."""
        self._key_values[key_name] = value
        self.key_times[key_name] = when

    def revoke_user_delegation_keys(self, when: datetime) -> None:
        self.user_delegation_keys_revoked_at = when

    def canonical_key_name(self, key_name: Any) -> str:
        """``key1``/``key2`` (and ``kerb1``/``kerb2`` when Kerberos keys exist), case-insensitively."""
        allowed = self.ALL_KEY_NAMES if self.kerberos_keys_enabled else self.KEY_NAMES
        return _canonical(key_name, allowed, "keyName")

    def apply_update(self, body: dict[str, Any]) -> None:
        """Apply a ``PATCH`` body (``StorageAccountUpdateParameters``) atomically: validate everything first,
        then change. ``properties`` merge (RFC 7396, nested objects such as ``networkAcls`` included);
        ``tags`` replace the whole tag set, as Azure does."""
        unsupported = sorted(
            set(body) - {"properties", "tags", "sku", "kind", "location", "id", "name", "type"}
        )
        if unsupported:
            raise errors.ArmError(
                400,
                "InvalidRequestContent",
                f"irflow.sim does not simulate updating {', '.join(unsupported)} on storage accounts.",
            )
        location = body.get("location")
        if location is not None and (
            not isinstance(location, str) or location.lower() != self.location.lower()
        ):
            raise errors.invalid_values("location")

        tags = self.tags
        if "tags" in body:
            new_tags = body["tags"] or {}
            if not isinstance(new_tags, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in new_tags.items()
            ):
                raise errors.invalid_values("tags")
            tags = dict(new_tags)

        sku_name = self.sku_name
        if body.get("sku") is not None:
            sku = body["sku"]
            if not isinstance(sku, dict):
                raise errors.invalid_values("sku")
            sku_name = _canonical(sku.get("name"), SKUS, "sku")
            if sku_tier(sku_name) != sku_tier(self.sku_name):
                raise errors.invalid_values("sku")

        kind = self.kind
        if body.get("kind") is not None:
            kind = _canonical(body["kind"], KINDS, "kind")
            if kind != self.kind and not (self.kind == "Storage" and kind == "StorageV2"):
                raise errors.invalid_values("kind")

        properties = self.properties
        if body.get("properties") is not None:
            patch = body["properties"]
            if not isinstance(patch, dict):
                raise errors.invalid_request_content("properties must be a JSON object")
            patch = {k: v for k, v in patch.items() if k not in READ_ONLY_PROPERTIES}
            properties = validate_properties(arm.merge_patch(self.properties, patch))

        self.tags, self.sku_name, self.kind, self.properties = tags, sku_name, kind, properties
