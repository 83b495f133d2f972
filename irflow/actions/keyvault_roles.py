"""Key Vault containment on the Azure RBAC permission model: data-plane role assignments at the vault.

On a vault with ``enableRbacAuthorization: true`` access policies grant nothing; data-plane access comes from
role assignments at the vault scope or above (https://learn.microsoft.com/azure/key-vault/general/rbac-guide).
Role assignments are read, deleted and re-created with ``azure-mgmt-authorization``
(``role_assignments.list_for_scope`` / ``delete`` / ``create``, api-version 2022-04-01); a role's data
actions are read from its definition (``role_definitions.get_by_id``), so custom roles count too.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from irflow.actions.base import (
    Action,
    Change,
    Plan,
    ResourceMissing,
    Result,
    StepContext,
    azure_errors,
    register,
)
from irflow.actions.keyvault import READ, _properties, self_object_id, uses_rbac
from irflow.domain.resource_id import DirectoryObjectId, KeyVaultId, ResourceId

ASSIGNMENTS_READ = "Microsoft.Authorization/roleAssignments/read"
ASSIGNMENTS_WRITE = "Microsoft.Authorization/roleAssignments/write"
ASSIGNMENTS_DELETE = "Microsoft.Authorization/roleAssignments/delete"
DEFINITIONS_READ = "Microsoft.Authorization/roleDefinitions/read"

_KV = "Microsoft.KeyVault/vaults"
# What makes a data-plane role over-broad by default: using key material (decrypt, unwrap, sign, release)
# or reading secret values. Key Vault Reader (metadata only) is not.
DANGEROUS_DATA_ACTIONS = (
    f"{_KV}/keys/decrypt/action",
    f"{_KV}/keys/unwrap/action",
    f"{_KV}/keys/sign/action",
    f"{_KV}/keys/release/action",
    f"{_KV}/secrets/getSecret/action",
)


def _covers(scope: str, inner: str) -> bool:
    """Whether ``inner`` lies at or below ``scope`` (resource ids compare case-insensitively)."""
    outer, target = scope.rstrip("/").lower(), inner.rstrip("/").lower()
    return target == outer or target.startswith(outer + "/")


def _matches(pattern: str, action: str) -> bool:
    return fnmatch.fnmatchcase(action.lower(), pattern.lower())


class _Survey:
    """The vault's role assignments, sorted into what a revocation removes and what it leaves."""

    def __init__(self, ctx: StepContext, vault_id: str, keep: set[str], dangerous: list[str]) -> None:
        rid = ResourceId.parse(vault_id)
        client = ctx.clients.authorization(rid.subscription_id)
        self.dangerous = dangerous
        self.props = _properties(ctx, vault_id)
        self.removable: list[dict[str, Any]] = []
        self.inherited: list[dict[str, Any]] = []
        self.unknown_roles: list[str] = []
        with azure_errors(permission=ASSIGNMENTS_READ, scope=vault_id):
            assignments = [a.as_dict() for a in client.role_assignments.list_for_scope(vault_id.lstrip("/"))]
        roles: dict[str, tuple[str, list[str]]] = {}
        for assignment in sorted(assignments, key=lambda a: (a["scope"].lower(), a["name"])):
            if str(assignment.get("principal_id", "")).lower() in keep:
                continue
            definition_id = assignment["role_definition_id"]
            if definition_id not in roles:
                roles[definition_id] = self._role(client, definition_id, vault_id)
            role_name, granted = roles[definition_id]
            if not granted or not any(a in granted for a in dangerous):
                continue
            record = {
                "name": assignment["name"],
                "scope": assignment["scope"],
                "roleDefinitionId": definition_id,
                "roleName": role_name,
                "principalId": assignment["principal_id"],
                "principalType": assignment.get("principal_type") or "User",
                "description": assignment.get("description"),
                "condition": assignment.get("condition"),
                "conditionVersion": assignment.get("condition_version"),
            }
            (self.removable if _covers(vault_id, assignment["scope"]) else self.inherited).append(record)

    def _role(self, client: Any, definition_id: str, vault_id: str) -> tuple[str, list[str]]:
        """The role's name and which of the dangerous data actions it grants."""
        try:
            with azure_errors(permission=DEFINITIONS_READ, scope=definition_id):
                definition = client.role_definitions.get_by_id(definition_id).as_dict()
        except ResourceMissing:
            # An assignment whose role no longer exists grants nothing; it is named, not removed.
            self.unknown_roles.append(definition_id)
            return definition_id, []
        granted: list[str] = []
        for permission in definition.get("permissions") or []:
            allowed = permission.get("data_actions") or []
            denied = permission.get("not_data_actions") or []
            for action in self.dangerous:
                if any(_matches(p, action) for p in allowed) and not any(_matches(p, action) for p in denied):
                    granted.append(action)
        return str(definition.get("role_name") or definition_id), sorted(set(granted))

    def notes(self) -> list[str]:
        notes = [
            f"role definition {definition_id} was not found: its assignments are left alone"
            for definition_id in self.unknown_roles
        ]
        if not uses_rbac(self.props):
            notes.append(
                "the vault uses access policies: Key Vault ignores data-plane role assignments there, so "
                "nothing is changed here (keyvault.revoke_access_policies revokes access on such a vault)"
            )
        for record in self.inherited:
            notes.append(
                f"{record['roleName']} for {record['principalId']} is assigned at {record['scope']}, wider "
                "than the vault: not removed here (it covers other resources); remove or narrow it there"
            )
        return notes


def _recorded(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if v is not None}


# ------------------------------------------------------------------------------ revoke role assignments
class RevokeRoleAssignmentsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vault: KeyVaultId = Field(description="Resource id of the key vault (Azure RBAC permission model).")
    keep_principal_ids: list[DirectoryObjectId] = Field(
        default_factory=list,
        description="Object ids of principals whose role assignments are left alone (workloads that must "
        "keep running). irflow's own object id is always kept, listed or not.",
    )
    data_actions: list[str] = Field(
        default_factory=lambda: list(DANGEROUS_DATA_ACTIONS),
        min_length=1,
        description="Data actions that make a role over-broad: an assignment whose role grants any of them "
        "(wildcards in the role resolved) is removed.",
    )

    @field_validator("data_actions")
    @classmethod
    def _key_vault_actions(cls, value: list[str]) -> list[str]:
        for action in value:
            if not action.lower().startswith(f"{_KV.lower()}/"):
                raise ValueError(f"not a Key Vault data action: {action[:200]!r}")
        return list(dict.fromkeys(value))


@register
class RevokeRoleAssignments(Action):
    """Remove over-broad data-plane role assignments at a key vault, except the allow-list and irflow.

    On a vault using the Azure RBAC permission model, deletes every role assignment at the vault scope (or
    on one of its keys or secrets) whose role grants a dangerous data action (by default decrypt, unwrap,
    sign or release a key, or read a secret value: Key Vault Administrator, Crypto Officer, Crypto User,
    Crypto Service Encryption User, Secrets Officer, Secrets User … and custom roles alike), unless its
    principal is in ``keep_principal_ids`` or is irflow itself (``IRFLOW_SELF_OBJECT_ID`` or its token's
    ``oid``), so the key rotation that follows still works. Assignments inherited from the resource group or
    subscription are not removed (they cover other resources): the plan names them. Every removed
    assignment is recorded whole (name, scope, role, principal) for ``keyvault.restore_role_assignments``.
    On an access-policy vault role assignments grant no data-plane access: nothing changes, and it says so.

    Azure takes a while to apply the change: Key Vault may honour a removed role assignment for up to 10
    minutes (https://learn.microsoft.com/azure/key-vault/general/rbac-guide, "Known limits and
    performance"), and tokens already issued stay valid until they expire; network isolation, which comes
    first in the playbook, is what stops use in the meantime.

    Deleting role assignments is a privileged right: grant irflow the built-in Key Vault Data Access
    Administrator role at the vaults' scope, whose condition limits the assignments it may write to the Key
    Vault data roles (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/security),
    rather than User Access Administrator or Owner.

    Example::

        - id: revoke-role-assignments
          action: keyvault.revoke_role_assignments
          for_each: "{{ inputs.key_vaults }}"
          with:
            vault: "{{ item }}"
            keep_principal_ids: ["4b7d2e19-3a6c-4f8e-9d15-7c2a0e6b8f31"]
    """

    name = "keyvault.revoke_role_assignments"
    Params = RevokeRoleAssignmentsParams
    permissions = (READ, ASSIGNMENTS_READ, ASSIGNMENTS_DELETE, DEFINITIONS_READ)
    target_param = "vault"

    def _survey(self, ctx: StepContext) -> tuple[_Survey, list[dict[str, Any]], list[Change]]:
        params: RevokeRoleAssignmentsParams = ctx.params  # type: ignore[assignment]
        keep = {oid.lower() for oid in params.keep_principal_ids} | {self_object_id(ctx)}
        survey = _Survey(ctx, params.vault, keep, params.data_actions)
        removals = survey.removable if uses_rbac(survey.props) else []
        changes = [
            Change(
                field=f"roleAssignments.{r['name']}",
                before={"role": r["roleName"], "principalId": r["principalId"], "scope": r["scope"]},
                after=None,
            )
            for r in removals
        ]
        return survey, removals, changes

    def plan(self, ctx: StepContext) -> Plan:
        params: RevokeRoleAssignmentsParams = ctx.params  # type: ignore[assignment]
        survey, _, changes = self._survey(ctx)
        return Plan(action=self.name, target=params.vault, changes=changes, notes=survey.notes())

    def apply(self, ctx: StepContext) -> Result:
        params: RevokeRoleAssignmentsParams = ctx.params  # type: ignore[assignment]
        survey, removals, changes = self._survey(ctx)
        prior = {
            "enableRbacAuthorization": uses_rbac(survey.props),
            "roleAssignments": [_recorded(r) for r in removals],
        }
        if not removals:
            notes = survey.notes() or ["no over-broad role assignment at the vault"]
            return Result(changed=False, prior_state=prior, notes=notes)
        client = ctx.clients.authorization(ResourceId.parse(params.vault).subscription_id)
        for record in removals:
            with azure_errors(permission=ASSIGNMENTS_DELETE, scope=record["scope"]):
                client.role_assignments.delete(record["scope"].lstrip("/"), record["name"])
        ctx.log.info("key vault role assignments revoked", assignments=len(removals))
        return Result(changed=True, changes=changes, prior_state=prior, notes=survey.notes())

    def verify(self, ctx: StepContext) -> bool:
        _, removals, _ = self._survey(ctx)
        return not removals


# ----------------------------------------------------------------------------- restore role assignments
class RecordedRoleAssignment(BaseModel):
    """One role assignment as ``keyvault.revoke_role_assignments`` records it."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(pattern=r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
    scope: str = Field(pattern=r"^/subscriptions/")
    roleDefinitionId: str = Field(min_length=1)  # noqa: N815 (ARM names)
    roleName: str | None = None  # noqa: N815
    principalId: DirectoryObjectId  # noqa: N815
    principalType: str = "User"  # noqa: N815
    description: str | None = None
    condition: str | None = None
    conditionVersion: str | None = None  # noqa: N815


class RoleAssignmentsState(BaseModel):
    model_config = ConfigDict(extra="ignore")

    roleAssignments: list[RecordedRoleAssignment]  # noqa: N815 (ARM names)


class RestoreRoleAssignmentsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vault: KeyVaultId = Field(description="Resource id of the key vault.")
    prior: RoleAssignmentsState = Field(
        description="What containment removed: the prior_state recorded by keyvault.revoke_role_assignments "
        "(in a playbook: {{ incident.prior_state['keyvault.revoke_role_assignments'][item] }})."
    )

    @field_validator("prior")
    @classmethod
    def _within_vault(cls, value: RoleAssignmentsState, info: Any) -> RoleAssignmentsState:
        vault = info.data.get("vault")
        for record in value.roleAssignments:
            if vault and not _covers(vault, record.scope):
                raise ValueError(f"recorded assignment {record.name} is not at the vault {vault}")
        return value


@register
class RestoreRoleAssignments(Action):
    """Undo ``keyvault.revoke_role_assignments``: re-create exactly the role assignments it removed.

    Each recorded assignment comes back with its own name, scope, role, principal, description and condition
    (``PUT …/roleAssignments/{name}``). One already present (same name, or the same principal and role at
    the same scope) is left alone; nothing else is added or taken away.

    Example::

        - id: restore-role-assignments
          action: keyvault.restore_role_assignments
          for_each: "{{ inputs.key_vaults }}"
          with:
            vault: "{{ item }}"
            prior: "{{ incident.prior_state['keyvault.revoke_role_assignments'][item] }}"
    """

    name = "keyvault.restore_role_assignments"
    Params = RestoreRoleAssignmentsParams
    permissions = (ASSIGNMENTS_READ, ASSIGNMENTS_WRITE)
    target_param = "vault"

    def _missing(self, ctx: StepContext) -> tuple[Any, list[RecordedRoleAssignment], list[Change]]:
        params: RestoreRoleAssignmentsParams = ctx.params  # type: ignore[assignment]
        client = ctx.clients.authorization(ResourceId.parse(params.vault).subscription_id)
        with azure_errors(permission=ASSIGNMENTS_READ, scope=params.vault):
            current = [a.as_dict() for a in client.role_assignments.list_for_scope(params.vault.lstrip("/"))]
        present = {a["name"].lower() for a in current} | {
            (
                a["scope"].lower(),
                a["role_definition_id"].rsplit("/", 1)[-1].lower(),
                a["principal_id"].lower(),
            )
            for a in current
        }
        missing = [
            r
            for r in params.prior.roleAssignments
            if r.name.lower() not in present
            and (r.scope.lower(), r.roleDefinitionId.rsplit("/", 1)[-1].lower(), r.principalId.lower())
            not in present
        ]
        changes = [
            Change(
                field=f"roleAssignments.{r.name}",
                before=None,
                after={
                    "role": r.roleName or r.roleDefinitionId,
                    "principalId": r.principalId,
                    "scope": r.scope,
                },
            )
            for r in missing
        ]
        return client, missing, changes

    def plan(self, ctx: StepContext) -> Plan:
        params: RestoreRoleAssignmentsParams = ctx.params  # type: ignore[assignment]
        _, _, changes = self._missing(ctx)
        return Plan(action=self.name, target=params.vault, changes=changes)

    def apply(self, ctx: StepContext) -> Result:
        client, missing, changes = self._missing(ctx)
        if not missing:
            return Result(changed=False, notes=["role assignments already restored"])
        for record in missing:
            properties = {
                "roleDefinitionId": record.roleDefinitionId,
                "principalId": record.principalId,
                "principalType": record.principalType,
                "description": record.description,
                "condition": record.condition,
                "conditionVersion": record.conditionVersion,
            }
            with azure_errors(permission=ASSIGNMENTS_WRITE, scope=record.scope):
                client.role_assignments.create(
                    record.scope.lstrip("/"),
                    record.name,
                    {"properties": {k: v for k, v in properties.items() if v is not None}},
                )
        ctx.log.info("key vault role assignments restored", assignments=len(missing))
        return Result(changed=True, changes=changes)

    def verify(self, ctx: StepContext) -> bool:
        _, missing, _ = self._missing(ctx)
        return not missing
