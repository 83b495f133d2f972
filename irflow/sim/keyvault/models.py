"""Key vaults as the Microsoft.KeyVault resource provider keeps them: properties and access policies.

Wire shapes follow the x-ms-examples getVault, updateVault and updateAccessPoliciesAdd / Replace / Remove.
Access policy semantics (``PUT …/accessPolicies/{add|replace|remove}``): ``add`` merges the permissions of
each listed principal into its entry (a new entry when it has none), ``remove`` takes the listed permissions
away (an entry left with none disappears), ``replace`` replaces the whole list. Principals are matched on
``tenantId`` + ``objectId`` (+ ``applicationId``); ``add`` merges permissions case-insensitively, ``remove``
matches them case-sensitively (and answers 200 when nothing matched), as Azure does.
New vaults default to the Azure RBAC permission model (``enableRbacAuthorization: true``); which model a
vault uses decides how its data plane authorises (:mod:`irflow.sim.keyvault.authorization`).
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from irflow.domain.ip_rules import valid_ip_rule
from irflow.sim import arm, errors

KEY_VAULT_TYPE = "Microsoft.KeyVault/vaults"
ACCESS_POLICIES_TYPE = "Microsoft.KeyVault/vaults/accessPolicies"
PERMISSION_KINDS = ("keys", "secrets", "certificates", "storage")
OPERATION_KINDS = ("add", "replace", "remove")
MAX_ACCESS_POLICIES = 1024


def bad_request(message: str) -> errors.ArmError:
    """The Key Vault resource provider's 400."""
    return errors.ArmError(400, "BadRequest", message)


def _canonical(value: Any, allowed: tuple[str, ...], field: str) -> str:
    if isinstance(value, str):
        for candidate in allowed:
            if candidate.lower() == value.lower():
                return candidate
    raise bad_request(f"Invalid value for '{field}': {value!r}. Allowed values: {', '.join(allowed)}.")


def _validate_network_acls(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_request("'networkAcls' must be an object.")
    acls = {
        "bypass": _canonical(value.get("bypass", "AzureServices"), ("AzureServices", "None"), "bypass"),
        "defaultAction": _canonical(value.get("defaultAction", "Allow"), ("Allow", "Deny"), "defaultAction"),
        "ipRules": [],
        "virtualNetworkRules": [],
    }
    for rule in value.get("ipRules") or []:
        if not isinstance(rule, dict) or not isinstance(rule.get("value"), str) or not rule["value"]:
            raise bad_request(
                "Each of 'networkAcls.ipRules' needs a 'value' (an IPv4 address or CIDR range)."
            )
        if not valid_ip_rule(rule["value"], small_prefixes=True):
            # The exact error code Azure returns is not documented: the provider's generic 400 is modelled.
            raise bad_request(
                f"'networkAcls.ipRules' value {rule['value']!r} is not allowed: only public IPv4 addresses "
                "or ranges can be used (no private, loopback or link-local ranges)."
            )
        acls["ipRules"].append({"value": rule["value"]})
    for rule in value.get("virtualNetworkRules") or []:
        if not isinstance(rule, dict) or not isinstance(rule.get("id"), str) or not rule["id"]:
            raise bad_request(
                "Each of 'networkAcls.virtualNetworkRules' needs an 'id' (a subnet resource id)."
            )
        entry = {"id": rule["id"]}
        if "ignoreMissingVnetServiceEndpoint" in rule:
            entry["ignoreMissingVnetServiceEndpoint"] = bool(rule["ignoreMissingVnetServiceEndpoint"])
        acls["virtualNetworkRules"].append(entry)
    return acls


def _permissions(value: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise bad_request("An access policy needs 'permissions'.")
    result: dict[str, list[str]] = {}
    for kind, items in value.items():
        if kind not in PERMISSION_KINDS:
            raise bad_request(f"Unknown permission kind '{kind}'.")
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            raise bad_request(f"'permissions.{kind}' must be a list of permission names.")
        result[kind] = list(dict.fromkeys(items))
    return result


def validate_access_policy(entry: Any, vault_tenant: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise bad_request("An access policy must be an object.")
    for field in ("tenantId", "objectId"):
        if not isinstance(entry.get(field), str) or not entry[field]:
            raise bad_request(f"An access policy needs '{field}'.")
    if entry["tenantId"].lower() != vault_tenant.lower():
        raise bad_request(
            "All identities in the access policies must use the same tenant ID as the key vault."
        )
    policy: dict[str, Any] = {"tenantId": entry["tenantId"], "objectId": entry["objectId"]}
    if entry.get("applicationId"):
        policy["applicationId"] = entry["applicationId"]
    policy["permissions"] = _permissions(entry.get("permissions"))
    return policy


def _same_principal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(
        str(a.get(k) or "").lower() == str(b.get(k) or "").lower()
        for k in ("tenantId", "objectId", "applicationId")
    )


def _union(current: list[str], extra: list[str]) -> list[str]:
    result = list(current)
    seen = {p.lower() for p in current}
    for permission in extra:
        if permission.lower() not in seen:
            seen.add(permission.lower())
            result.append(permission)
    return result


def _minus(current: list[str], removed: list[str]) -> list[str]:
    """``accessPolicies/remove`` matches permission names case-sensitively: ``Get`` does not remove ``get``,
    and the call still answers 200 (Azure's behaviour, AZURE_NOTES "Rules Azure enforces"; the stricter
    reading of https://learn.microsoft.com/rest/api/keyvault/keyvault/vaults/update-access-policy)."""
    gone = set(removed)
    return [p for p in current if p not in gone]


class KeyVault:
    """One vault of the management plane."""

    def __init__(
        self,
        *,
        subscription_id: str,
        resource_group: str,
        name: str,
        location: str,
        tenant_id: str,
        tags: dict[str, str] | None = None,
        sku: str = "standard",
        properties: dict[str, Any] | None = None,
        access_policies: list[dict[str, Any]] | None = None,
        created: datetime,
    ) -> None:
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.name = name
        self.location = location
        self.tenant_id = tenant_id
        self.tags = dict(tags or {})
        self.sku = _canonical(sku, ("standard", "premium"), "sku.name")
        self.created = created
        self.updated = created
        self.properties: dict[str, Any] = {
            "enabledForDeployment": False,
            "enabledForDiskEncryption": False,
            "enabledForTemplateDeployment": False,
            "enableSoftDelete": True,
            "softDeleteRetentionInDays": 90,
            # New vaults use the Azure RBAC permission model by default from API version 2026-02-01
            # (https://learn.microsoft.com/azure/key-vault/general/rbac-access-policy); a vault on access
            # policies says so with enableRbacAuthorization: false.
            "enableRbacAuthorization": True,
            "publicNetworkAccess": "Enabled",
        }
        self.access_policies: list[dict[str, Any]] = []
        self.apply_update({"properties": properties or {}}, when=created)
        self.update_access_policies("add", access_policies or [], when=created)

    @property
    def id(self) -> str:
        return arm.resource_id(self.subscription_id, self.resource_group, KEY_VAULT_TYPE, self.name)

    # ----------------------------------------------------------------- wire shapes
    def to_arm(self, base_url: str) -> dict[str, Any]:
        properties: dict[str, Any] = {
            "sku": {"family": "A", "name": self.sku},
            "tenantId": self.tenant_id,
            "accessPolicies": copy.deepcopy(self.access_policies),
            **copy.deepcopy(self.properties),
            "vaultUri": f"{base_url}/_data/{self.name}/vault/",
            "provisioningState": "Succeeded",
        }
        return {
            "id": self.id,
            "name": self.name,
            "type": KEY_VAULT_TYPE,
            "location": self.location,
            "tags": dict(self.tags),
            "systemData": {
                "createdAt": arm.format_time(self.created),
                "lastModifiedAt": arm.format_time(self.updated),
            },
            "properties": properties,
        }

    def summary(self) -> dict[str, Any]:
        acls = self.properties.get("networkAcls") or {}
        return {
            "id": self.id,
            "name": self.name,
            "resource_group": self.resource_group,
            "publicNetworkAccess": self.properties.get("publicNetworkAccess"),
            "networkAcls": {"defaultAction": acls.get("defaultAction"), "bypass": acls.get("bypass")},
            "enablePurgeProtection": self.properties.get("enablePurgeProtection", False),
            "enableSoftDelete": self.properties.get("enableSoftDelete"),
            "accessPolicies": copy.deepcopy(self.access_policies),
        }

    def access_policy(self, object_id: str) -> dict[str, Any] | None:
        """The entry of one principal (by object id), or None."""
        return next((p for p in self.access_policies if p["objectId"].lower() == object_id.lower()), None)

    # ----------------------------------------------------------------- changes
    def apply_update(self, body: dict[str, Any], *, when: datetime) -> None:
        """``PATCH …/vaults/{v}`` (VaultPatchParameters), atomically. Soft delete and purge protection cannot
        be switched off once on (400, as Azure answers)."""
        unsupported = sorted(set(body) - {"properties", "tags"})
        if unsupported:
            raise errors.ArmError(
                400,
                "InvalidRequestContent",
                f"irflow.sim does not simulate updating {', '.join(unsupported)} on key vaults.",
            )
        tags = self.tags
        if "tags" in body:
            if not isinstance(body["tags"] or {}, dict):
                raise bad_request("'tags' must be an object.")
            tags = dict(body["tags"] or {})
        patch = body.get("properties") or {}
        if not isinstance(patch, dict):
            raise errors.invalid_request_content("properties must be a JSON object")
        properties = dict(self.properties)
        access_policies = self.access_policies
        for key, value in patch.items():
            if value is None or key in ("vaultUri", "provisioningState", "hsmPoolResourceId"):
                continue
            if key in ("enableSoftDelete", "enablePurgeProtection"):
                if not isinstance(value, bool):
                    raise bad_request(f"'{key}' must be a boolean.")
                if properties.get(key) is True and value is False:
                    what = "soft delete" if key == "enableSoftDelete" else "purge protection"
                    raise bad_request(
                        f'The property "{key}" cannot be set to false. Enabling the {what} for a vault is '
                        "an irreversible action."
                    )
                properties[key] = value
            elif key in (
                "enabledForDeployment",
                "enabledForDiskEncryption",
                "enabledForTemplateDeployment",
                "enableRbacAuthorization",
            ):
                if not isinstance(value, bool):
                    raise bad_request(f"'{key}' must be a boolean.")
                properties[key] = value
            elif key == "softDeleteRetentionInDays":
                if not isinstance(value, int) or isinstance(value, bool) or not 7 <= value <= 90:
                    raise bad_request("'softDeleteRetentionInDays' must be between 7 and 90.")
                properties[key] = value
            elif key == "publicNetworkAccess":
                properties[key] = _canonical(value, ("Enabled", "Disabled"), key)
            elif key == "networkAcls":
                properties[key] = _validate_network_acls(value)
            elif key == "accessPolicies":
                if not isinstance(value, list):
                    raise bad_request("'accessPolicies' must be a list.")
                access_policies = [validate_access_policy(p, self.tenant_id) for p in value]
            elif key in ("tenantId", "sku", "createMode"):
                continue  # not simulated: the vault keeps its tenant and SKU
            else:
                properties[key] = copy.deepcopy(value)
        self.tags, self.properties, self.access_policies = tags, properties, access_policies
        self.updated = when

    def update_access_policies(
        self, kind: str, entries: list[Any], *, when: datetime
    ) -> list[dict[str, Any]]:
        """``PUT …/accessPolicies/{kind}``; returns the request's validated entries (what Azure echoes)."""
        kind = _canonical(kind, OPERATION_KINDS, "operationKind")
        given = [validate_access_policy(e, self.tenant_id) for e in entries]
        if kind == "replace":
            result = copy.deepcopy(given)
        else:
            result = copy.deepcopy(self.access_policies)
            for entry in given:
                current = next((p for p in result if _same_principal(p, entry)), None)
                if kind == "add":
                    if current is None:
                        result.append(copy.deepcopy(entry))
                        continue
                    for perm_kind, items in entry["permissions"].items():
                        current["permissions"][perm_kind] = _union(
                            current["permissions"].get(perm_kind, []), items
                        )
                elif current is not None:
                    for perm_kind, items in entry["permissions"].items():
                        if perm_kind in current["permissions"]:
                            current["permissions"][perm_kind] = _minus(
                                current["permissions"][perm_kind], items
                            )
                    if not any(current["permissions"].values()):
                        result.remove(current)
        if len(result) > MAX_ACCESS_POLICIES:
            raise bad_request(f"A vault holds at most {MAX_ACCESS_POLICIES} access policies.")
        self.access_policies = result
        self.updated = when
        return given
