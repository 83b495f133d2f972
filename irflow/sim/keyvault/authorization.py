"""Who may do what on a vault's data plane: access policies or Azure RBAC, as the vault's model says.

- ``enableRbacAuthorization: true``: access policies are ignored; the caller needs a role assignment at the
  vault scope or above (or at the key / secret itself) whose role's ``dataActions`` cover the operation and
  whose ``notDataActions`` do not. Refusal: 403 ``Forbidden``, inner error ``ForbiddenByRbac``.
  (https://learn.microsoft.com/azure/key-vault/general/rbac-guide: "When Azure RBAC permission model is
  enabled, all access policies permissions become invalid"; https://learn.microsoft.com/azure/key-vault/
  general/rbac-access-policy.) An assignment carrying an ABAC condition grants nothing here: the simulator
  does not evaluate conditions, so it takes the stricter reading.
- ``enableRbacAuthorization: false``: data-plane role assignments grant nothing (the Key Vault data roles
  "only work for key vaults that use the 'Azure role-based access control' permission model"); the caller's
  own access policy entry (its object id, without an application id: the simulated caller is never a
  compound identity) must list the operation's permission in its kind (``keys: [get]`` …). Permission names
  are the service's enum values, compared case-insensitively; the legacy ``all`` is not honoured (stricter:
  current API versions no longer accept it). Refusal: 403 ``Forbidden`` "The user, group or application
  '…' does not have keys get permission on key vault '…'", inner error ``ForbiddenByPolicy``
  (https://learn.microsoft.com/azure/key-vault/general/troubleshooting-access-issues).
- Deny rules of the tenant (:mod:`irflow.sim.rbac`) refuse on either model with ``ForbiddenByRbac``: they
  model an identity that lacks a permission, whatever grants it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from irflow.sim.keyvault.data_models import KeyVaultError

if TYPE_CHECKING:
    from irflow.sim.keyvault.models import KeyVault
    from irflow.sim.models import Tenant


@dataclass(frozen=True)
class Permission:
    """What one data-plane operation needs: its RBAC data action and its access-policy permission."""

    data_action: str
    kind: str  # keys | secrets | certificates
    policy: str  # the access-policy permission name (``get``, ``rotate`` …)


def _caller(tenant: Tenant) -> str:
    return f"appid=irflow-sim;oid={tenant.principal_id};iss=https://sts.windows.net/{tenant.tenant_id}/"


def _where(vault: KeyVault) -> str:
    return f"{vault.name};location={vault.location}"


def _rbac_refusal(tenant: Tenant, vault: KeyVault, action: str, scope: str) -> KeyVaultError:
    return KeyVaultError(
        403,
        "Forbidden",
        "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or "
        "role definitions were changed recently, please observe propagation time.\r\n"
        f"Caller: {_caller(tenant)}\r\nAction: '{action}'\r\nResource: '{scope.lower()}'\r\n"
        "Assignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: null\r\n"
        f"Vault: {_where(vault)}",
        inner="ForbiddenByRbac",
    )


def rbac_grants(tenant: Tenant, action: str, scope: str) -> bool:
    """Whether one of the principal's role assignments covering ``scope`` grants the data action."""
    return any(
        a.condition is None and a.role.grants_data_action(action)
        for a in tenant.role_assignments.effective_for(tenant.principal_id, scope)
    )


def policy_grants(tenant: Tenant, vault: KeyVault, permission: Permission) -> bool:
    for entry in vault.access_policies:
        if entry["objectId"].lower() != tenant.principal_id.lower() or entry.get("applicationId"):
            continue
        if entry["tenantId"].lower() != tenant.tenant_id.lower():
            continue
        held = entry.get("permissions", {}).get(permission.kind) or []
        if permission.policy.lower() in {p.lower() for p in held}:
            return True
    return False


def authorize(tenant: Tenant, vault: KeyVault, permission: Permission, scope: str) -> None:
    """Raise Key Vault's 403 unless the tenant's principal may perform ``permission`` over ``scope``."""
    if tenant.rbac.denial(permission.data_action, scope):
        raise _rbac_refusal(tenant, vault, permission.data_action, scope)
    if vault.properties.get("enableRbacAuthorization"):
        if not rbac_grants(tenant, permission.data_action, scope):
            raise _rbac_refusal(tenant, vault, permission.data_action, scope)
        return
    if not policy_grants(tenant, vault, permission):
        raise KeyVaultError(
            403,
            "Forbidden",
            f"The user, group or application '{_caller(tenant)}' does not have {permission.kind} "
            f"{permission.policy} permission on key vault '{_where(vault)}'. For help resolving this issue, "
            "please see https://go.microsoft.com/fwlink/?linkid=2125287",
            inner="ForbiddenByPolicy",
        )
