"""Wire handlers for Microsoft.KeyVault vaults (x-ms-examples getVault, updateVault,
updateAccessPoliciesAdd / Replace / Remove)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from irflow.sim import errors
from irflow.sim.http import SimRequest, SimResponse
from irflow.sim.keyvault.models import ACCESS_POLICIES_TYPE, KeyVault

if TYPE_CHECKING:
    from irflow.sim.models import Tenant


def _vault(tenant: Tenant, request: SimRequest) -> KeyVault:
    p = request.params
    return tenant.get_key_vault(p["subscriptionId"], p["resourceGroupName"], p["vaultName"])


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
