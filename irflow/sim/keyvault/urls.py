"""Route table of Microsoft.KeyVault vaults (management plane), with the RBAC operation each needs."""

from __future__ import annotations

from irflow.sim.keyvault import responses
from irflow.sim.router import Route

_VAULT = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.KeyVault/vaults"
    "/{vaultName}"
)
VAULT_READ = "Microsoft.KeyVault/vaults/read"
VAULT_WRITE = "Microsoft.KeyVault/vaults/write"
ACCESS_POLICIES_WRITE = "Microsoft.KeyVault/vaults/accessPolicies/write"

ROUTES = [
    Route("GET", _VAULT, responses.get, "keyvault.vaults.get", operation=VAULT_READ),
    Route(
        "PUT", _VAULT, responses.create_or_update, "keyvault.vaults.create_or_update", operation=VAULT_WRITE
    ),
    Route("PATCH", _VAULT, responses.update, "keyvault.vaults.update", operation=VAULT_WRITE),
    Route(
        "PUT",
        _VAULT + "/accessPolicies/{operationKind}",
        responses.update_access_policy,
        "keyvault.vaults.update_access_policy",
        operation=ACCESS_POLICIES_WRITE,
    ),
]
