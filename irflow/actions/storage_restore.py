"""Restore counterparts of the storage container containment actions (``azure-mgmt-storage`` for container
public access, ``azure-storage-blob`` for stored access policies)."""

from __future__ import annotations

from typing import Any, Literal

from azure.storage.blob import AccessPolicy
from pydantic import BaseModel, ConfigDict, Field

from irflow.actions.base import (
    Action,
    ActionError,
    Change,
    Plan,
    ResourceMissing,
    Result,
    StepContext,
    azure_errors,
    register,
)
from irflow.actions.storage import (
    CONTAINER_GET_ACL,
    CONTAINER_SET_ACL,
    CONTAINERS_READ,
    CONTAINERS_WRITE,
    READ,
    get_account,
)
from irflow.domain.resource_id import ResourceId, StorageAccountId

PublicLevel = Literal["None", "Blob", "Container"]


def _container_scope(account: str, container: str) -> str:
    return f"{account}/blobServices/default/containers/{container}"


def _account_properties(ctx: StepContext, account: str) -> dict[str, Any]:
    return get_account(ctx, account).as_dict().get("properties", {}) or {}


# ----------------------------------------------------------------------------- restore public containers
class PublicContainersState(BaseModel):
    """What ``storage.block_public_containers`` records: each container's public access level before."""

    model_config = ConfigDict(extra="ignore")

    publicAccess: dict[str, PublicLevel]  # noqa: N815 (ARM names)


class RestorePublicContainersParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: StorageAccountId = Field(description="Resource id of the storage account.")
    prior: PublicContainersState = Field(
        description="The state before containment: the prior_state recorded by "
        "storage.block_public_containers "
        "(in a playbook: {{ incident.prior_state['storage.block_public_containers'][item] }})."
    )


@register
class RestorePublicContainers(Action):
    """Undo ``storage.block_public_containers``: put back each container's recorded public access level.

    Only the containers named in the recorded prior state are touched; a container already at its recorded
    level is left alone. Azure refuses a public level (409 ``PublicAccessNotPermitted``) while the account's
    ``allowBlobPublicAccess`` is false, so the account network must be restored first
    (``storage.restore_account_network``): the step checks that before writing and says so.

    Example::

        - id: restore-public-containers
          action: storage.restore_public_containers
          for_each: "{{ inputs.storage_accounts }}"
          with:
            account: "{{ item }}"
            prior: "{{ incident.prior_state['storage.block_public_containers'][item] }}"
    """

    name = "storage.restore_public_containers"
    Params = RestorePublicContainersParams
    permissions = (READ, CONTAINERS_READ, CONTAINERS_WRITE)
    target_param = "account"

    def _diff(self, ctx: StepContext) -> tuple[list[Change], dict[str, str]]:
        params: RestorePublicContainersParams = ctx.params  # type: ignore[assignment]
        rid = ResourceId.parse(params.account)
        with azure_errors(permission=CONTAINERS_READ, scope=params.account):
            listed = list(
                ctx.clients.storage(rid.subscription_id).blob_containers.list(rid.resource_group, rid.name)
            )
        levels = {c.name: (c.as_dict().get("properties", {}).get("publicAccess") or "None") for c in listed}
        wanted = params.prior.publicAccess
        missing = sorted(set(wanted) - set(levels))
        if missing:
            raise ResourceMissing(f"not found: container(s) {', '.join(missing)} in {params.account}")
        current = {name: levels[name] for name in wanted}
        changes = [
            Change(field=f"containers.{name}.publicAccess", before=current[name], after=level)
            for name, level in sorted(wanted.items())
            if current[name] != level
        ]
        return changes, current

    @staticmethod
    def _needs_public(changes: list[Change]) -> bool:
        return any(change.after != "None" for change in changes)

    @staticmethod
    def _refusal(account: str) -> str:
        return (
            f"{account} has allowBlobPublicAccess false: Azure refuses a public container level (409) "
            "until the account network is restored first (storage.restore_account_network)"
        )

    def plan(self, ctx: StepContext) -> Plan:
        params: RestorePublicContainersParams = ctx.params  # type: ignore[assignment]
        changes, _ = self._diff(ctx)
        notes = []
        if self._needs_public(changes) and not _account_properties(ctx, params.account).get(
            "allowBlobPublicAccess"
        ):
            notes.append(self._refusal(params.account))
        return Plan(action=self.name, target=params.account, changes=changes, notes=notes)

    def apply(self, ctx: StepContext) -> Result:
        params: RestorePublicContainersParams = ctx.params  # type: ignore[assignment]
        changes, current = self._diff(ctx)
        prior = {"publicAccess": current}
        if not changes:
            return Result(changed=False, prior_state=prior, notes=["containers already restored"])
        if self._needs_public(changes) and not _account_properties(ctx, params.account).get(
            "allowBlobPublicAccess"
        ):
            raise ActionError(self._refusal(params.account))
        rid = ResourceId.parse(params.account)
        client = ctx.clients.storage(rid.subscription_id)
        for change in changes:
            container = change.field.split(".")[1]
            with azure_errors(permission=CONTAINERS_WRITE, scope=_container_scope(params.account, container)):
                client.blob_containers.update(
                    rid.resource_group, rid.name, container, {"properties": {"publicAccess": change.after}}
                )
        ctx.log.info("container public access restored", containers=len(changes))
        return Result(changed=True, changes=changes, prior_state=prior)

    def verify(self, ctx: StepContext) -> bool:
        changes, _ = self._diff(ctx)
        return not changes


# ------------------------------------------------------------------------ restore stored access policies
class StoredPolicy(BaseModel):
    """One stored access policy as ``storage.remove_stored_access_policies`` records it (no signature)."""

    model_config = ConfigDict(extra="ignore")

    permission: str | None = None
    start: str | None = None
    expiry: str | None = None


class StoredAccessPoliciesState(BaseModel):
    """What ``storage.remove_stored_access_policies`` records: per container, its policies before."""

    model_config = ConfigDict(extra="ignore")

    storedAccessPolicies: dict[str, dict[str, StoredPolicy]]  # noqa: N815 (ARM names)


class RestoreStoredAccessPoliciesParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: StorageAccountId = Field(description="Resource id of the storage account.")
    prior: StoredAccessPoliciesState = Field(
        description="The state before containment: the prior_state recorded by "
        "storage.remove_stored_access_policies "
        "(in a playbook: {{ incident.prior_state['storage.remove_stored_access_policies'][item] }})."
    )


@register
class RestoreStoredAccessPolicies(Action):
    """Undo ``storage.remove_stored_access_policies``: re-create the recorded stored access policies.

    For each container of the recorded prior state, every recorded policy id missing from the container is
    created again with its recorded permissions, start and expiry (service SAS bound to it work again).
    Policies already present (by id) are left as they are, and nothing is written when all are present. The
    container's current public access level is kept (setting an ACL without it would reset it); on an
    account that forbids blob public access it is necessarily private, and the plan says so.

    Example::

        - id: restore-stored-access-policies
          action: storage.restore_stored_access_policies
          for_each: "{{ inputs.storage_accounts }}"
          with:
            account: "{{ item }}"
            prior: "{{ incident.prior_state['storage.remove_stored_access_policies'][item] }}"
    """

    name = "storage.restore_stored_access_policies"
    Params = RestoreStoredAccessPoliciesParams
    permissions = (READ, CONTAINER_GET_ACL, CONTAINER_SET_ACL)
    target_param = "account"

    def _survey(self, ctx: StepContext) -> tuple[Any, dict[str, dict[str, Any]]]:
        """The blob service client and, per recorded container, its ACL and the policies to re-create."""
        params: RestoreStoredAccessPoliciesParams = ctx.params  # type: ignore[assignment]
        properties = _account_properties(ctx, params.account)
        endpoint = (properties.get("primaryEndpoints") or {}).get("blob")
        if not endpoint:
            raise ResourceMissing(f"not found: a blob endpoint on {params.account}")
        public_allowed = bool(properties.get("allowBlobPublicAccess", False))
        service = ctx.clients.blob_service(endpoint)
        acls: dict[str, dict[str, Any]] = {}
        for name, recorded in sorted(params.prior.storedAccessPolicies.items()):
            if not recorded:
                continue
            with azure_errors(permission=CONTAINER_GET_ACL, scope=_container_scope(params.account, name)):
                acl = service.get_container_client(name).get_container_access_policy()
            present = {i.id: i.access_policy for i in acl.get("signed_identifiers") or []}
            public = acl.get("public_access")
            acls[name] = {
                "public_access": public,
                "keep_public": public if public_allowed else None,
                "present": present,
                "add": {pid: policy for pid, policy in sorted(recorded.items()) if pid not in present},
            }
        return service, acls

    @staticmethod
    def _changes(acls: dict[str, dict[str, Any]]) -> list[Change]:
        changes = []
        for name, acl in sorted(acls.items()):
            changes.extend(
                Change(
                    field=f"containers.{name}.storedAccessPolicies.{pid}", before=None, after=p.model_dump()
                )
                for pid, p in acl["add"].items()
            )
            if acl["add"] and acl["keep_public"] != acl["public_access"]:
                changes.append(
                    Change(field=f"containers.{name}.publicAccess", before=acl["public_access"], after=None)
                )
        return changes

    def plan(self, ctx: StepContext) -> Plan:
        params: RestoreStoredAccessPoliciesParams = ctx.params  # type: ignore[assignment]
        _, acls = self._survey(ctx)
        return Plan(action=self.name, target=params.account, changes=self._changes(acls))

    def apply(self, ctx: StepContext) -> Result:
        params: RestoreStoredAccessPoliciesParams = ctx.params  # type: ignore[assignment]
        service, acls = self._survey(ctx)
        changes = self._changes(acls)
        prior = {
            "storedAccessPolicies": {
                name: {
                    pid: {
                        "permission": getattr(p, "permission", None),
                        "start": str(getattr(p, "start", None) or "") or None,
                        "expiry": str(getattr(p, "expiry", None) or "") or None,
                    }
                    for pid, p in acl["present"].items()
                }
                for name, acl in acls.items()
            }
        }
        if not changes:
            return Result(changed=False, prior_state=prior, notes=["stored access policies already present"])
        for name, acl in sorted(acls.items()):
            if not acl["add"]:
                continue
            identifiers = dict(acl["present"])
            identifiers.update(
                {
                    pid: AccessPolicy(permission=p.permission, start=p.start, expiry=p.expiry)
                    for pid, p in acl["add"].items()
                }
            )
            with azure_errors(permission=CONTAINER_SET_ACL, scope=_container_scope(params.account, name)):
                service.get_container_client(name).set_container_access_policy(
                    signed_identifiers=identifiers, public_access=acl["keep_public"]
                )
        ctx.log.info("stored access policies restored", policies=len(changes))
        return Result(changed=True, changes=changes, prior_state=prior)

    def verify(self, ctx: StepContext) -> bool:
        _, acls = self._survey(ctx)
        return not any(acl["add"] for acl in acls.values())
