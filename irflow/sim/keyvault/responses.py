"""Wire handlers for Microsoft.KeyVault vaults (x-ms-examples createVault, getVault, updateVault,
updateAccessPoliciesAdd / Replace / Remove)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from irflow.sim import errors
from irflow.sim.http import SimRequest, SimResponse
from irflow.sim.keyvault.models import ACCESS_POLICIES_TYPE, KeyVault, bad_request

# New vaults use the Azure RBAC permission model unless the request says otherwise, from api-version
# 2026-02-01 on (AZURE_NOTES; https://learn.microsoft.com/azure/key-vault/general/rbac-access-policy);
# earlier versions keep access policies as the default.
RBAC_DEFAULT_SINCE = "2026-02-01"
_VAULT_NAME = re.compile(r"^[a-zA-Z](?!.*--)[a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$")

if TYPE_CHECKING:
    from irflow.sim.models import Tenant


def _vault(tenant: Tenant, request: SimRequest) -> KeyVault:
    p = request.params
    return tenant.get_key_vault(p["subscriptionId"], p["resourceGroupName"], p["vaultName"])


def rbac_by_default(api_version: str) -> bool:
    return api_version[:10] >= RBAC_DEFAULT_SINCE


def create_or_update(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``PUT …/vaults/{v}`` (VaultCreateOrUpdateParameters): create a vault, answered 200 with the vault and
    ``provisioningState: Succeeded`` (so the SDK's poller is done at once). ``location``,
    ``properties.tenantId`` (the tenant's own) and ``properties.sku`` are required; names are global (409
    ``VaultAlreadyExists``). On an existing vault the given properties are applied as an update."""
    p = request.params
    body = request.json_object()
    location, properties = body.get("location"), body.get("properties")
    if not isinstance(location, str) or not location:
        raise bad_request("The 'location' property is required.")
    if not isinstance(properties, dict):
        raise bad_request("The 'properties' property is required.")
    sku = properties.get("sku")
    if not isinstance(sku, dict) or not sku.get("name"):
        raise bad_request("The 'properties.sku' property is required.")
    if str(properties.get("tenantId") or "").lower() != tenant.tenant_id.lower():
        raise bad_request("The 'properties.tenantId' must be the tenant of the subscription.")
    changes: dict[str, Any] = {k: v for k, v in properties.items() if k not in ("tenantId", "sku")}
    group = tenant.resource_group(p["subscriptionId"], p["resourceGroupName"])
    existing = group.key_vaults.get(p["vaultName"].lower())
    if existing is not None:
        update: dict[str, Any] = {"properties": changes}
        if "tags" in body:
            update["tags"] = body["tags"]
        existing.apply_update(update, when=tenant.now())
        return SimResponse(200, existing.to_arm(request.base_url))
    name = p["vaultName"]
    if not _VAULT_NAME.match(name):
        raise errors.ArmError(
            400,
            "VaultNameNotValid",
            f"The vault name '{name}' is invalid. A vault's name must be between 3-24 alphanumeric "
            "characters. The name must begin with a letter, end with a letter or digit, and not contain "
            "consecutive hyphens.",
        )
    if tenant.find_key_vault(name) is not None:
        raise errors.ArmError(409, "VaultAlreadyExists", f"The vault name '{name}' is already in use.")
    policies = changes.pop("accessPolicies", None) or []
    if not isinstance(policies, list):
        raise bad_request("'accessPolicies' must be a list.")
    changes.setdefault("enableRbacAuthorization", rbac_by_default(request.query_param("api-version") or ""))
    tags = body.get("tags") or {}
    if not isinstance(tags, dict):
        raise bad_request("'tags' must be an object.")
    vault = tenant.add_key_vault(
        group.subscription_id,
        group.name,
        name,
        location=location,
        tags=tags,
        sku=str(sku["name"]),
        properties=changes,
        access_policies=policies,
        created_at=tenant.now(),
    )
    return SimResponse(200, vault.to_arm(request.base_url))


def get(tenant: Tenant, request: SimRequest) -> SimResponse:
    return SimResponse(200, _vault(tenant, request).to_arm(request.base_url))


def update(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``PATCH …/vaults/{v}``: synchronous, answers 200 with the whole vault."""
    vault = _vault(tenant, request)
    vault.apply_update(request.json_object(), when=tenant.now())
    return SimResponse(200, vault.to_arm(request.base_url))


def update_access_policy(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``PUT …/vaults/{v}/accessPolicies/{add|replace|remove}``: answers 200 with the request's policies."""
    vault = _vault(tenant, request)
    body = request.json_object()
    properties = body.get("properties")
    if not isinstance(properties, dict) or not isinstance(properties.get("accessPolicies"), list):
        raise errors.invalid_request_content("properties.accessPolicies must be a list")
    given = vault.update_access_policies(
        request.params["operationKind"], properties["accessPolicies"], when=tenant.now()
    )
    return SimResponse(
        200,
        {
            "id": f"{vault.id}/accessPolicies/{request.params['operationKind'].lower()}",
            "type": ACCESS_POLICIES_TYPE,
            "properties": {"accessPolicies": given},
        },
    )
