"""Azure built-in role definitions the simulator knows: the Key Vault data roles and the general ones.

Names, ids and permissions from Microsoft's "Azure built-in roles" reference
(https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/security, the Key Vault section;
https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/general for Owner, Contributor,
Reader). The Key Vault data roles "only work for key vaults that use the 'Azure role-based access control'
permission model" (their descriptions): on an access-policy vault they grant no data-plane access.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from irflow.sim.rbac import operation_matches

ROLE_DEFINITION_TYPE = "Microsoft.Authorization/roleDefinitions"
_KV = "Microsoft.KeyVault/vaults"
_KV_READ_ACTIONS = (
    "Microsoft.Authorization/*/read",
    "Microsoft.Insights/alertRules/*",
    "Microsoft.Resources/deployments/*",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    "Microsoft.Support/*",
    "Microsoft.KeyVault/checkNameAvailability/read",
    "Microsoft.KeyVault/deletedVaults/read",
    "Microsoft.KeyVault/locations/*/read",
    f"{_KV}/*/read",
    "Microsoft.KeyVault/operations/read",
)


@dataclass(frozen=True)
class RoleDefinition:
    id: str  # the GUID (the definition's name)
    name: str  # roleName
    description: str
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = field(default_factory=tuple)

    def grants_data_action(self, operation: str) -> bool:
        return any(operation_matches(p, operation) for p in self.data_actions) and not any(
            operation_matches(p, operation) for p in self.not_data_actions
        )

    def to_arm(self, scope: str) -> dict[str, Any]:
        """The wire shape (``RoleDefinition``, api-version 2022-04-01) as seen from ``scope``."""
        prefix = scope.rstrip("/") if scope.lower().startswith("/subscriptions/") else ""
        subscription = "/".join(prefix.split("/")[:3]) if prefix else ""
        return {
            "id": f"{subscription}/providers/{ROLE_DEFINITION_TYPE}/{self.id}",
            "name": self.id,
            "type": ROLE_DEFINITION_TYPE,
            "properties": {
                "roleName": self.name,
                "type": "BuiltInRole",
                "description": self.description,
                "assignableScopes": ["/"],
                "permissions": [
                    {
                        "actions": list(self.actions),
                        "notActions": list(self.not_actions),
                        "dataActions": list(self.data_actions),
                        "notDataActions": list(self.not_data_actions),
                    }
                ],
            },
        }


BUILT_IN_ROLES: tuple[RoleDefinition, ...] = (
    RoleDefinition(
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        "Owner",
        "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
        actions=("*",),
    ),
    RoleDefinition(
        "b24988ac-6180-42a0-ab88-20f7382dd24c",
        "Contributor",
        "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC.",
        actions=("*",),
        not_actions=(
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
        ),
    ),
    RoleDefinition(
        "acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader", "View all resources, but no changes.", ("*/read",)
    ),
    RoleDefinition(
        "00482a5a-887f-4fb3-b363-3b7fe8e74483",
        "Key Vault Administrator",
        "Perform all data plane operations on a key vault and all objects in it, including certificates, "
        "keys, and secrets. Cannot manage key vault resources or manage role assignments. Only works for key "
        "vaults that use the 'Azure role-based access control' permission model.",
        actions=_KV_READ_ACTIONS,
        data_actions=(f"{_KV}/*",),
    ),
    RoleDefinition(
        "a4417e6f-fecd-4de8-b567-7b0420556985",
        "Key Vault Certificates Officer",
        "Perform any action on the certificates of a key vault, except manage permissions. Only works for "
        "key vaults that use the 'Azure role-based access control' permission model.",
        actions=_KV_READ_ACTIONS,
        data_actions=(
            f"{_KV}/certificatecas/*",
            f"{_KV}/certificates/*",
            f"{_KV}/certificatecontacts/write",
        ),
    ),
    RoleDefinition(
        "14b46e9e-c2b7-41b4-b07b-48a6ebf60603",
        "Key Vault Crypto Officer",
        "Perform any action on the keys of a key vault, except manage permissions. Only works for key vaults "
        "that use the 'Azure role-based access control' permission model.",
        actions=_KV_READ_ACTIONS,
        data_actions=(f"{_KV}/keys/*", f"{_KV}/keyrotationpolicies/*"),
    ),
    RoleDefinition(
        "12338af0-0e69-4776-bea7-57ae8d297424",
        "Key Vault Crypto User",
        "Perform cryptographic operations using keys. Only works for key vaults that use the 'Azure "
        "role-based access control' permission model.",
        data_actions=(
            f"{_KV}/keys/read",
            f"{_KV}/keys/update/action",
            f"{_KV}/keys/backup/action",
            f"{_KV}/keys/encrypt/action",
            f"{_KV}/keys/decrypt/action",
            f"{_KV}/keys/wrap/action",
            f"{_KV}/keys/unwrap/action",
            f"{_KV}/keys/sign/action",
            f"{_KV}/keys/verify/action",
        ),
    ),
    RoleDefinition(
        "e147488a-f6f5-4113-8e2d-b22465e65bf6",
        "Key Vault Crypto Service Encryption User",
        "Read metadata of keys and perform wrap/unwrap operations. Only works for key vaults that use the "
        "'Azure role-based access control' permission model.",
        actions=(
            "Microsoft.EventGrid/eventSubscriptions/write",
            "Microsoft.EventGrid/eventSubscriptions/read",
            "Microsoft.EventGrid/eventSubscriptions/delete",
        ),
        data_actions=(f"{_KV}/keys/read", f"{_KV}/keys/wrap/action", f"{_KV}/keys/unwrap/action"),
    ),
    RoleDefinition(
        "08bbd89e-9f13-488c-ac41-acfcb10c90ab",
        "Key Vault Crypto Service Release User",
        "Release keys. Only works for key vaults that use the 'Azure role-based access control' permission "
        "model.",
        data_actions=(f"{_KV}/keys/release/action",),
    ),
    RoleDefinition(
        "21090545-7ca7-4776-b22c-e363652d74d2",
        "Key Vault Reader",
        "Read metadata of key vaults and its certificates, keys, and secrets. Cannot read sensitive values "
        "such as secret contents or key material. Only works for key vaults that use the 'Azure role-based "
        "access control' permission model.",
        actions=_KV_READ_ACTIONS,
        data_actions=(f"{_KV}/*/read", f"{_KV}/secrets/readMetadata/action"),
    ),
    RoleDefinition(
        "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
        "Key Vault Secrets Officer",
        "Perform any action on the secrets of a key vault, except manage permissions. Only works for key "
        "vaults that use the 'Azure role-based access control' permission model.",
        actions=_KV_READ_ACTIONS,
        data_actions=(f"{_KV}/secrets/*",),
    ),
    RoleDefinition(
        "4633458b-17de-408a-b874-0445c86b69e6",
        "Key Vault Secrets User",
        "Read secret contents including secret portion of a certificate with private key. Only works for key "
        "vaults that use the 'Azure role-based access control' permission model.",
        data_actions=(f"{_KV}/secrets/getSecret/action", f"{_KV}/secrets/readMetadata/action"),
    ),
    RoleDefinition(
        "8b54135c-b56d-4d72-a534-26097cfdc8d8",
        "Key Vault Data Access Administrator",
        "Manage access to Azure Key Vault by adding or removing role assignments for the Key Vault data "
        "roles.",
        actions=(
            "Microsoft.Authorization/roleAssignments/write",
            "Microsoft.Authorization/roleAssignments/delete",
            "Microsoft.Authorization/*/read",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Resources/subscriptions/read",
            "Microsoft.Management/managementGroups/read",
            "Microsoft.Support/*",
            f"{_KV}/*/read",
        ),
    ),
)

_BY_ID = {role.id: role for role in BUILT_IN_ROLES}
_BY_NAME = {role.name.lower(): role for role in BUILT_IN_ROLES}


def find(reference: str) -> RoleDefinition | None:
    """A built-in role by GUID, by full definition id (``…/roleDefinitions/{guid}``) or by role name."""
    value = reference.strip()
    guid = value.rsplit("/", 1)[-1].lower()
    return _BY_ID.get(guid) or _BY_NAME.get(value.lower())
