"""Storage account containment actions (``azure-mgmt-storage``)."""

from __future__ import annotations

import copy
import ipaddress
from datetime import datetime
from typing import Any, Literal

from azure.mgmt.storage.models import StorageAccountKey
from pydantic import BaseModel, ConfigDict, Field

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
from irflow.domain.resource_id import ResourceId, StorageAccountId
from irflow.redaction import fingerprint

READ = "Microsoft.Storage/storageAccounts/read"
WRITE = "Microsoft.Storage/storageAccounts/write"
REGENERATE_KEY = "Microsoft.Storage/storageAccounts/regeneratekey/action"
CONTAINERS_READ = "Microsoft.Storage/storageAccounts/blobServices/containers/read"
CONTAINERS_WRITE = "Microsoft.Storage/storageAccounts/blobServices/containers/write"
BLOB_SERVICE_READ = "Microsoft.Storage/storageAccounts/blobServices/read"
BLOB_SERVICE_WRITE = "Microsoft.Storage/storageAccounts/blobServices/write"
CONTAINER_GET_ACL = "Microsoft.Storage/storageAccounts/blobServices/containers/getAcl/action"
CONTAINER_SET_ACL = "Microsoft.Storage/storageAccounts/blobServices/containers/setAcl/action"


def get_account(ctx: StepContext, account_id: str) -> Any:
    """The account as ARM shows it, read once per target where the engine allows (see ``read_once``).

    Storage accounts carry no ETag (the RP's ``StorageAccount`` has none, so there is no If-Match to send):
    plan and apply share one read only inside one engine step holding the target's lock."""
    rid = ResourceId.parse(account_id)

    def read() -> Any:
        with azure_errors(permission=READ, scope=account_id):
            return ctx.clients.storage(rid.subscription_id).storage_accounts.get_properties(
                rid.resource_group, rid.name
            )

    return ctx.read_once(account_key(account_id), read)


def account_key(account_id: str) -> str:
    return f"account:{account_id.lower()}"


def _update_account(ctx: StepContext, account_id: str, body: dict[str, Any]) -> Any:
    """PATCH the account; Azure answers 200 with the account as stored
    (https://learn.microsoft.com/en-us/rest/api/storagerp/storage-accounts/update), which verify checks
    instead of reading it again."""
    rid = ResourceId.parse(account_id)
    with azure_errors(permission=WRITE, scope=account_id):
        updated = ctx.clients.storage(rid.subscription_id).storage_accounts.update(
            rid.resource_group, rid.name, body
        )
    ctx.remember(account_key(account_id), updated)
    return updated


def _network_state(props: dict[str, Any]) -> dict[str, Any]:
    acls = props.get("networkAcls") or {}
    return {
        "publicNetworkAccess": props.get("publicNetworkAccess", "Enabled"),
        "allowBlobPublicAccess": props.get("allowBlobPublicAccess", False),
        "networkAcls": copy.deepcopy(acls) or {"defaultAction": "Allow", "bypass": "AzureServices"},
    }


def _origin_rules(origin: Any) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """irflow's origin as storage ``ipRules`` and ``virtualNetworkRules``. Storage refuses /31 and /32
    ranges (single addresses are written bare; a /31 becomes its two addresses): storage-network-security
    "Small address ranges using /31 or /32 prefix sizes aren't supported"."""
    values: list[str] = []
    for entry in getattr(origin, "egress_ips", ()) or ():
        network = ipaddress.ip_network(entry, strict=False)
        if network.num_addresses <= 2:
            values.extend(str(address) for address in (network if network.num_addresses == 2 else [network]))
        else:
            values.append(str(network))
    values = [v.split("/")[0] if v.endswith("/32") else v for v in dict.fromkeys(values)]
    ip_rules = [{"value": value, "action": "Allow"} for value in values]
    subnet = getattr(origin, "subnet_id", None)
    vnet_rules = [{"id": subnet, "action": "Allow"}] if subnet else []
    return ip_rules, vnet_rules


def _rule_keys(acls: dict[str, Any]) -> tuple[set[str], set[str], int]:
    ips = {str(r.get("value", "")).removesuffix("/32") for r in acls.get("ipRules") or []}
    subnets = {str(r.get("id", "")).lower() for r in acls.get("virtualNetworkRules") or []}
    return ips, subnets, len(acls.get("resourceAccessRules") or [])


class IsolateAccountParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: StorageAccountId = Field(description="Resource id of the storage account to isolate.")


@register
class IsolateAccount(Action):
    """Cut a storage account off every network path but irflow's own (allow-list mode).

    The first containment change: the firewall's default action becomes Deny with exactly irflow's origin
    allowed (``IRFLOW_EGRESS_IPS`` as IP rules, ``IRFLOW_SUBNET_ID`` as a virtual-network rule), every other
    IP, virtual-network and resource-instance rule removed, the trusted-services bypass off and blob public
    access off. Public network access stays as it is (Enabled: irflow still needs the data plane for
    evidence and revocation; sealing to Disabled is the final, optional ``storage.seal_account``; an
    account already Disabled is never re-opened). The prior settings are recorded in the step result: the
    evidence of what was there, and what ``storage.restore_account_network`` puts back.

    Without irflow's origin configured the account is still isolated (exfiltration stops first), but the
    data-plane steps that follow are refused by its firewall: the plan says so.

    Azure: the storage firewall applies to the data plane only, so ARM calls keep working
    (https://learn.microsoft.com/en-us/azure/storage/common/storage-network-security).

    Example::

        - id: isolate
          action: storage.isolate_account
          for_each: "{{ inputs.storage_accounts }}"
          with: {account: "{{ item }}"}
    """

    name = "storage.isolate_account"
    Params = IsolateAccountParams
    permissions = (READ, WRITE)
    target_param = "account"

    @staticmethod
    def _target_acls(ctx: StepContext) -> dict[str, Any]:
        ip_rules, vnet_rules = _origin_rules(ctx.clients.origin)
        return {
            "defaultAction": "Deny",
            "bypass": "None",
            "ipRules": ip_rules,
            "virtualNetworkRules": vnet_rules,
        }

    def _diff(self, ctx: StepContext, state: dict[str, Any]) -> list[Change]:
        acls = state["networkAcls"]
        target = self._target_acls(ctx)
        changes = []
        if state["allowBlobPublicAccess"]:
            changes.append(Change(field="properties.allowBlobPublicAccess", before=True, after=False))
        for key in ("defaultAction", "bypass"):
            current = acls.get(key, "Allow" if key == "defaultAction" else "AzureServices")
            if current != target[key]:
                field = f"properties.networkAcls.{key}"
                changes.append(Change(field=field, before=current, after=target[key]))
        for index, key in enumerate(("ipRules", "virtualNetworkRules", "resourceAccessRules")):
            if _rule_keys(acls)[index] != _rule_keys(target)[index]:
                field = f"properties.networkAcls.{key}"
                changes.append(Change(field=field, before=acls.get(key) or [], after=target.get(key, [])))
        return changes

    def _notes(self, ctx: StepContext, state: dict[str, Any]) -> list[str]:
        notes = []
        if not ctx.clients.origin.configured:
            notes.append(
                "irflow's network origin is not configured (IRFLOW_EGRESS_IPS / IRFLOW_SUBNET_ID): once "
                "isolated, the account's firewall refuses irflow's own data-plane calls (evidence, stored "
                "access policies)"
            )
        if state["publicNetworkAccess"] != "Enabled":
            notes.append(
                f"public network access is already {state['publicNetworkAccess']}: left as is; irflow "
                "reaches the data plane only through a private endpoint"
            )
        return notes

    def _state(self, ctx: StepContext) -> dict[str, Any]:
        params: IsolateAccountParams = ctx.params  # type: ignore[assignment]
        return _network_state(get_account(ctx, params.account).as_dict().get("properties", {}))

    def plan(self, ctx: StepContext) -> Plan:
        params: IsolateAccountParams = ctx.params  # type: ignore[assignment]
        state = self._state(ctx)
        return Plan(
            action=self.name,
            target=params.account,
            changes=self._diff(ctx, state),
            notes=self._notes(ctx, state),
        )

    def apply(self, ctx: StepContext) -> Result:
        params: IsolateAccountParams = ctx.params  # type: ignore[assignment]
        state = self._state(ctx)
        changes = self._diff(ctx, state)
        notes = self._notes(ctx, state)
        if not changes:
            return Result(changed=False, prior_state=state, notes=["already isolated", *notes])
        acls = self._target_acls(ctx)
        if state["networkAcls"].get("resourceAccessRules"):
            acls["resourceAccessRules"] = []  # resource-instance rules admit other Azure resources: removed
        body = {"properties": {"allowBlobPublicAccess": False, "networkAcls": acls}}
        _update_account(ctx, params.account, body)
        ctx.log.info("storage account isolated", changes=len(changes))
        return Result(changed=True, changes=changes, prior_state=state, notes=notes)

    def verify(self, ctx: StepContext) -> bool:
        return not self._diff(ctx, self._state(ctx))


class SealAccountParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: StorageAccountId = Field(description="Resource id of the storage account to seal.")


@register
class SealAccount(Action):
    """Seal a storage account: public network access Disabled, the final and optional containment step.

    With public network access Disabled Azure refuses every request through the public endpoint, irflow's
    allow-listed origin included (IP and virtual-network rules become inert): run it after evidence capture
    and revocation. The prior setting is recorded for ``storage.unseal_account``.

    Example::

        - id: seal
          action: storage.seal_account
          for_each: "{{ inputs.storage_accounts }}"
          with: {account: "{{ item }}"}
    """

    name = "storage.seal_account"
    Params = SealAccountParams
    permissions = (READ, WRITE)
    target_param = "account"

    def _state(self, ctx: StepContext) -> dict[str, Any]:
        params: SealAccountParams = ctx.params  # type: ignore[assignment]
        properties = get_account(ctx, params.account).as_dict().get("properties", {})
        return {"publicNetworkAccess": properties.get("publicNetworkAccess", "Enabled")}

    @staticmethod
    def _changes(state: dict[str, Any]) -> list[Change]:
        if state["publicNetworkAccess"] == "Disabled":
            return []
        before = state["publicNetworkAccess"]
        return [Change(field="properties.publicNetworkAccess", before=before, after="Disabled")]

    def plan(self, ctx: StepContext) -> Plan:
        params: SealAccountParams = ctx.params  # type: ignore[assignment]
        changes = self._changes(self._state(ctx))
        notes = ["after the seal irflow's own data-plane calls are refused too (private endpoint only)"]
        return Plan(action=self.name, target=params.account, changes=changes, notes=notes if changes else [])

    def apply(self, ctx: StepContext) -> Result:
        params: SealAccountParams = ctx.params  # type: ignore[assignment]
        state = self._state(ctx)
        changes = self._changes(state)
        if not changes:
            return Result(changed=False, prior_state=state, notes=["already sealed"])
        _update_account(ctx, params.account, {"properties": {"publicNetworkAccess": "Disabled"}})
        ctx.log.info("storage account sealed")
        return Result(changed=True, changes=changes, prior_state=state)

    def verify(self, ctx: StepContext) -> bool:
        return not self._changes(self._state(ctx))


class SealState(BaseModel):
    """What ``storage.seal_account`` records: public network access before the seal."""

    model_config = ConfigDict(extra="ignore")

    publicNetworkAccess: Literal["Enabled", "Disabled", "SecuredByPerimeter"]  # noqa: N815 (ARM names)


class UnsealAccountParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: StorageAccountId = Field(description="Resource id of the storage account to unseal.")
    prior: SealState = Field(
        description="The prior_state recorded by storage.seal_account "
        "(in a playbook: {{ incident.prior_state['storage.seal_account'][item] }})."
    )


@register
class UnsealAccount(Action):
    """Undo ``storage.seal_account``: put back the public network access recorded before the seal.

    The firewall rules are not touched (``storage.restore_account_network`` restores them).

    Example::

        - id: unseal
          action: storage.unseal_account
          for_each: "{{ inputs.storage_accounts }}"
          with:
            account: "{{ item }}"
            prior: "{{ incident.prior_state['storage.seal_account'][item] }}"
    """

    name = "storage.unseal_account"
    Params = UnsealAccountParams
    permissions = (READ, WRITE)
    target_param = "account"

    def _diff(self, ctx: StepContext) -> tuple[list[Change], dict[str, Any]]:
        params: UnsealAccountParams = ctx.params  # type: ignore[assignment]
        properties = get_account(ctx, params.account).as_dict().get("properties", {})
        current = {"publicNetworkAccess": properties.get("publicNetworkAccess", "Enabled")}
        wanted = params.prior.publicNetworkAccess
        if current["publicNetworkAccess"] == wanted:
            return [], current
        before = current["publicNetworkAccess"]
        return [Change(field="properties.publicNetworkAccess", before=before, after=wanted)], current

    def plan(self, ctx: StepContext) -> Plan:
        params: UnsealAccountParams = ctx.params  # type: ignore[assignment]
        changes, _ = self._diff(ctx)
        return Plan(action=self.name, target=params.account, changes=changes)

    def apply(self, ctx: StepContext) -> Result:
        params: UnsealAccountParams = ctx.params  # type: ignore[assignment]
        changes, current = self._diff(ctx)
        if not changes:
            return Result(changed=False, prior_state=current, notes=["already unsealed"])
        _update_account(ctx, params.account, {"properties": {"publicNetworkAccess": changes[0].after}})
        ctx.log.info("storage account unsealed")
        return Result(changed=True, changes=changes, prior_state=current)

    def verify(self, ctx: StepContext) -> bool:
        changes, _ = self._diff(ctx)
        return not changes


class RotateAccountKeysParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: StorageAccountId = Field(description="Resource id of the storage account whose keys to rotate.")
    keys: list[Literal["key1", "key2"]] = Field(
        default=["key1", "key2"], min_length=1, description="Which account keys to regenerate."
    )
    rotated_since: datetime | None = Field(
        default=None,
        description="A key Azure shows as created at or after this time counts as already rotated. "
        "Default: the incident's containment epoch (when irflow opened the incident).",
    )


@register
class RotateAccountKeys(Action):
    """Regenerate a storage account's access keys, invalidating every account-key SAS signed with them.

    Idempotent from Azure-side facts: a key whose ``keyCreationTime`` is at or after ``rotated_since`` (by
    default the incident's containment epoch) is not regenerated again, so re-running the step, the playbook
    or a crashed attempt never rotates a key twice for one incident. Key values are never kept or logged; the
    result holds a fingerprint of each new key.

    Example::

        - id: rotate-keys
          action: storage.rotate_account_keys
          for_each: "{{ inputs.storage_accounts }}"
          with: {account: "{{ item }}", keys: [key1, key2]}
          retry: {max_attempts: 5, backoff: exponential}
    """

    name = "storage.rotate_account_keys"
    Params = RotateAccountKeysParams
    permissions = (READ, REGENERATE_KEY)
    target_param = "account"

    def _stale_keys(self, ctx: StepContext) -> tuple[list[Change], dict[str, Any]]:
        params: RotateAccountKeysParams = ctx.params  # type: ignore[assignment]
        since = params.rotated_since or ctx.reference_time
        times = ctx.read_once(KEY_TIMES, lambda: _key_times(get_account(ctx, params.account)))
        changes = [
            Change(
                field=f"keys.{key}",
                before={"created": times[key].isoformat() if times[key] else None},
                after="regenerate",
            )
            for key in params.keys
            if times[key] is None or times[key] < since
        ]
        prior = {key: (value.isoformat() if value else None) for key, value in times.items()}
        return changes, {"keyCreationTime": prior, "rotated_since": since.isoformat()}

    def plan(self, ctx: StepContext) -> Plan:
        params: RotateAccountKeysParams = ctx.params  # type: ignore[assignment]
        changes, prior = self._stale_keys(ctx)
        notes = [
            f"{key} already rotated (created {prior['keyCreationTime'][key]})"
            for key in params.keys
            if not any(change.field == f"keys.{key}" for change in changes)
        ]
        return Plan(action=self.name, target=params.account, changes=changes, notes=notes)

    def apply(self, ctx: StepContext) -> Result:
        params: RotateAccountKeysParams = ctx.params  # type: ignore[assignment]
        changes, prior = self._stale_keys(ctx)
        if not changes:
            return Result(changed=False, prior_state=prior, notes=["keys already rotated"])
        rid = ResourceId.parse(params.account)
        client = ctx.clients.storage(rid.subscription_id)
        fingerprints: dict[str, str] = {}
        for change in changes:
            key_name = change.field.removeprefix("keys.")
            with azure_errors(permission=REGENERATE_KEY, scope=params.account):
                listed = client.storage_accounts.regenerate_key(
                    rid.resource_group, rid.name, {"keyName": key_name}
                )
            keys = [StorageAccountKey(key) for key in listed.as_dict().get("keys", [])]
            for key in keys:
                if key.key_name == key_name and key.value:
                    fingerprints[key_name] = fingerprint(key.value)
            ctx.log.info("storage account key regenerated", key_name=key_name)
        # Azure answers regenerateKey with the account's keys and their creationTime
        # (https://learn.microsoft.com/en-us/rest/api/storagerp/storage-accounts/regenerate-key): verify
        # checks that answer rather than reading the account again.
        answered = {key.key_name: key.creation_time for key in keys}
        if all(answered.get(name) is not None for name in ("key1", "key2")):
            ctx.remember(KEY_TIMES, {name: answered[name] for name in ("key1", "key2")})
        ctx.forget(account_key(params.account))
        return Result(changed=True, changes=changes, prior_state=prior, outputs={"new_keys": fingerprints})

    def verify(self, ctx: StepContext) -> bool:
        changes, _ = self._stale_keys(ctx)
        return not changes


KEY_TIMES = "key_creation_times"


def _key_times(account: Any) -> dict[str, datetime | None]:
    created = account.key_creation_time
    return {key: getattr(created, key, None) if created is not None else None for key in ("key1", "key2")}


class NetworkState(BaseModel):
    """The account settings ``storage.isolate_account`` changes, as recorded in its step result."""

    model_config = ConfigDict(extra="ignore")

    publicNetworkAccess: Literal["Enabled", "Disabled", "SecuredByPerimeter"]  # noqa: N815 (ARM names)
    allowBlobPublicAccess: bool  # noqa: N815
    networkAcls: dict[str, Any]  # noqa: N815


class RestoreAccountNetworkParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: StorageAccountId = Field(description="Resource id of the storage account to restore.")
    prior: NetworkState = Field(
        description="The state before containment: the prior_state recorded by storage.isolate_account "
        "(in a playbook: {{ incident.prior_state['storage.isolate_account'][item] }})."
    )


@register
class RestoreAccountNetwork(Action):
    """Undo ``storage.isolate_account``: put back the network settings recorded before containment.

    Restores public network access, blob public access and the whole firewall rule set (default action,
    bypass, IP and virtual-network rules) exactly as they were. A no-op when the account already matches.

    Example::

        - id: restore-network
          action: storage.restore_account_network
          for_each: "{{ inputs.storage_accounts }}"
          with:
            account: "{{ item }}"
            prior: "{{ incident.prior_state['storage.isolate_account'][item] }}"
    """

    name = "storage.restore_account_network"
    Params = RestoreAccountNetworkParams
    permissions = (READ, WRITE)
    target_param = "account"

    def _diff(self, ctx: StepContext) -> tuple[list[Change], dict[str, Any]]:
        params: RestoreAccountNetworkParams = ctx.params  # type: ignore[assignment]
        current = _network_state(get_account(ctx, params.account).as_dict().get("properties", {}))
        target = params.prior.model_dump()
        changes = [
            Change(field=f"properties.{key}", before=current[key], after=target[key])
            for key in ("publicNetworkAccess", "allowBlobPublicAccess", "networkAcls")
            if current[key] != target[key]
        ]
        return changes, current

    def plan(self, ctx: StepContext) -> Plan:
        params: RestoreAccountNetworkParams = ctx.params  # type: ignore[assignment]
        changes, _ = self._diff(ctx)
        return Plan(action=self.name, target=params.account, changes=changes)

    def apply(self, ctx: StepContext) -> Result:
        params: RestoreAccountNetworkParams = ctx.params  # type: ignore[assignment]
        changes, current = self._diff(ctx)
        if not changes:
            return Result(changed=False, prior_state=current, notes=["already restored"])
        body = {"properties": {change.field.removeprefix("properties."): change.after for change in changes}}
        _update_account(ctx, params.account, body)
        ctx.log.info("storage account network restored", changes=len(changes))
        return Result(changed=True, changes=changes, prior_state=current)

    def verify(self, ctx: StepContext) -> bool:
        changes, _ = self._diff(ctx)
        return not changes


class BlockPublicContainersParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: StorageAccountId = Field(description="Resource id of the storage account.")
    containers: list[str] | None = Field(
        default=None, description="Only these containers (default: every container of the account)."
    )


@register
class BlockPublicContainers(Action):
    """Set every container's public access level to None, so no blob is readable anonymously.

    ``storage.isolate_account`` already turns blob public access off for the account; this removes the
    container-level grants too, so re-enabling the account setting later does not re-expose the data. The
    prior level of each container is recorded.

    Example::

        - id: block-public-containers
          action: storage.block_public_containers
          for_each: "{{ inputs.storage_accounts }}"
          with: {account: "{{ item }}"}
    """

    name = "storage.block_public_containers"
    Params = BlockPublicContainersParams
    permissions = (CONTAINERS_READ, CONTAINERS_WRITE)
    target_param = "account"

    def _public(self, ctx: StepContext) -> dict[str, str]:
        params: BlockPublicContainersParams = ctx.params  # type: ignore[assignment]
        rid = ResourceId.parse(params.account)
        with azure_errors(permission=CONTAINERS_READ, scope=params.account):
            listed = list(
                ctx.clients.storage(rid.subscription_id).blob_containers.list(rid.resource_group, rid.name)
            )
        levels = {c.name: (c.as_dict().get("properties", {}).get("publicAccess") or "None") for c in listed}
        if params.containers is not None:
            missing = sorted(set(params.containers) - set(levels))
            if missing:
                raise ResourceMissing(f"not found: container(s) {', '.join(missing)} in {params.account}")
            levels = {name: level for name, level in levels.items() if name in params.containers}
        return levels

    def _changes(self, levels: dict[str, str]) -> list[Change]:
        return [
            Change(field=f"containers.{name}.publicAccess", before=level, after="None")
            for name, level in sorted(levels.items())
            if level != "None"
        ]

    def plan(self, ctx: StepContext) -> Plan:
        params: BlockPublicContainersParams = ctx.params  # type: ignore[assignment]
        return Plan(action=self.name, target=params.account, changes=self._changes(self._public(ctx)))

    def apply(self, ctx: StepContext) -> Result:
        params: BlockPublicContainersParams = ctx.params  # type: ignore[assignment]
        levels = self._public(ctx)
        changes = self._changes(levels)
        prior = {"publicAccess": levels}
        if not changes:
            return Result(changed=False, prior_state=prior, notes=["no public container"])
        rid = ResourceId.parse(params.account)
        client = ctx.clients.storage(rid.subscription_id)
        for change in changes:
            container = change.field.split(".")[1]
            with azure_errors(
                permission=CONTAINERS_WRITE,
                scope=f"{params.account}/blobServices/default/containers/{container}",
            ):
                client.blob_containers.update(
                    rid.resource_group, rid.name, container, {"properties": {"publicAccess": "None"}}
                )
        ctx.log.info("public containers blocked", containers=len(changes))
        return Result(changed=True, changes=changes, prior_state=prior)

    def verify(self, ctx: StepContext) -> bool:
        return not self._changes(self._public(ctx))


BLOB_SERVICE = "blob_service"


class EnableDataProtectionParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: StorageAccountId = Field(description="Resource id of the storage account.")
    blob_retention_days: int = Field(
        default=30, ge=1, le=365, description="Blob soft-delete retention, days."
    )
    container_retention_days: int = Field(
        default=30, ge=1, le=365, description="Container soft-delete retention, days."
    )
    versioning: bool = Field(
        default=True,
        description="Turn blob versioning on (skipped on hierarchical-namespace accounts: Azure does not "
        "support it there).",
    )


@register
class EnableDataProtection(Action):
    """Turn on blob and container soft delete and blob versioning, so evidence cannot be destroyed.

    A retention already longer than asked is kept (never shortened). Versioning is not supported on accounts
    with a hierarchical namespace (ADLS Gen2; https://learn.microsoft.com/en-us/azure/storage/blobs/
    versioning-overview): there it is left off and the plan says so, soft delete still protects the data. The
    whole blob service properties are PUT (what was read, with the changes), so no setting is lost whether
    Azure treats the PUT as a replacement or a merge. The prior blob service settings are recorded.

    Example::

        - id: protect-evidence
          action: storage.enable_data_protection
          for_each: "{{ inputs.storage_accounts }}"
          with: {account: "{{ item }}", blob_retention_days: 30, container_retention_days: 30}
    """

    name = "storage.enable_data_protection"
    Params = EnableDataProtectionParams
    permissions = (READ, BLOB_SERVICE_READ, BLOB_SERVICE_WRITE)
    target_param = "account"

    def _current(self, ctx: StepContext) -> dict[str, Any]:
        params: EnableDataProtectionParams = ctx.params  # type: ignore[assignment]
        rid = ResourceId.parse(params.account)

        def read() -> Any:
            with azure_errors(permission=BLOB_SERVICE_READ, scope=f"{params.account}/blobServices/default"):
                return ctx.clients.storage(rid.subscription_id).blob_services.get_service_properties(
                    rid.resource_group, rid.name
                )

        return dict(ctx.read_once(BLOB_SERVICE, read).as_dict().get("properties", {}))

    @staticmethod
    def _hierarchical(ctx: StepContext) -> bool:
        """Whether the account has a hierarchical namespace (fixed at creation: read once per target)."""
        params: EnableDataProtectionParams = ctx.params  # type: ignore[assignment]
        key = "hierarchical"
        if ctx.observations is not None and key in ctx.observations:
            return bool(ctx.observations[key])
        properties = get_account(ctx, params.account).as_dict().get("properties", {})
        ctx.remember(key, bool(properties.get("isHnsEnabled")))
        return bool(properties.get("isHnsEnabled"))

    def _target(
        self, ctx: StepContext, current: dict[str, Any], hierarchical: bool = False
    ) -> tuple[dict[str, Any], list[Change]]:
        params: EnableDataProtectionParams = ctx.params  # type: ignore[assignment]
        target = copy.deepcopy(current)
        changes = []
        for key, days in (
            ("deleteRetentionPolicy", params.blob_retention_days),
            ("containerDeleteRetentionPolicy", params.container_retention_days),
        ):
            policy = current.get(key) or {}
            if not policy.get("enabled") or (policy.get("days") or 0) < days:
                wanted = {**policy, "enabled": True, "days": max(days, policy.get("days") or 0)}
                target[key] = wanted
                changes.append(Change(field=f"properties.{key}", before=policy or None, after=wanted))
        if params.versioning and not hierarchical and not current.get("isVersioningEnabled"):
            target["isVersioningEnabled"] = True
            changes.append(
                Change(
                    field="properties.isVersioningEnabled",
                    before=current.get("isVersioningEnabled"),
                    after=True,
                )
            )
        return target, changes

    @staticmethod
    def _notes(ctx: StepContext, hierarchical: bool) -> list[str]:
        params: EnableDataProtectionParams = ctx.params  # type: ignore[assignment]
        if params.versioning and hierarchical:
            return ["versioning left off: Azure does not support it on hierarchical-namespace accounts"]
        return []

    def plan(self, ctx: StepContext) -> Plan:
        params: EnableDataProtectionParams = ctx.params  # type: ignore[assignment]
        hierarchical = self._hierarchical(ctx)
        _, changes = self._target(ctx, self._current(ctx), hierarchical)
        notes = self._notes(ctx, hierarchical)
        return Plan(action=self.name, target=params.account, changes=changes, notes=notes)

    def apply(self, ctx: StepContext) -> Result:
        params: EnableDataProtectionParams = ctx.params  # type: ignore[assignment]
        hierarchical = self._hierarchical(ctx)
        current = self._current(ctx)
        target, changes = self._target(ctx, current, hierarchical)
        notes = self._notes(ctx, hierarchical)
        if not changes:
            return Result(changed=False, prior_state=current, notes=["data protection already on", *notes])
        rid = ResourceId.parse(params.account)
        with azure_errors(permission=BLOB_SERVICE_WRITE, scope=f"{params.account}/blobServices/default"):
            stored = ctx.clients.storage(rid.subscription_id).blob_services.set_service_properties(
                rid.resource_group, rid.name, {"properties": target}
            )
        # Azure answers 200 with the blob service properties as stored
        # (https://learn.microsoft.com/en-us/rest/api/storagerp/blob-services/set-service-properties).
        ctx.remember(BLOB_SERVICE, stored)
        ctx.log.info("blob data protection enabled", changes=len(changes))
        return Result(changed=True, changes=changes, prior_state=current, notes=notes)

    def verify(self, ctx: StepContext) -> bool:
        _, changes = self._target(ctx, self._current(ctx), self._hierarchical(ctx))
        return not changes


class RemoveStoredAccessPoliciesParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: StorageAccountId = Field(description="Resource id of the storage account.")
    containers: list[str] | None = Field(default=None, description="Only these containers (default: all).")
    policy_ids: list[str] | None = Field(
        default=None, description="Only these stored access policies (default: every policy)."
    )


@register
class RemoveStoredAccessPolicies(Action):
    """Remove containers' stored access policies, revoking every service SAS bound to them.

    Every service SAS that names a removed policy stops working at once, and no new SAS can be issued under
    an over-broad policy after the keys are rotated. The container's public access level is kept as it is
    (setting an ACL without it would reset it). Removed policies (id, permissions, start, expiry; never a
    signature) are recorded.

    Example::

        - id: revoke-service-sas
          action: storage.remove_stored_access_policies
          for_each: "{{ inputs.storage_accounts }}"
          with: {account: "{{ item }}"}
    """

    name = "storage.remove_stored_access_policies"
    Params = RemoveStoredAccessPoliciesParams
    permissions = (READ, CONTAINERS_READ, CONTAINER_GET_ACL, CONTAINER_SET_ACL)
    target_param = "account"

    def _policies(self, ctx: StepContext) -> tuple[Any, dict[str, dict[str, Any]]]:
        """The blob service client and, per container, its ACL: public access and the policies to remove."""
        params: RemoveStoredAccessPoliciesParams = ctx.params  # type: ignore[assignment]
        account = get_account(ctx, params.account)
        ctx.remember(account_key(params.account), account)  # this action changes no account setting
        properties = account.as_dict().get("properties", {})
        endpoint = (properties.get("primaryEndpoints") or {}).get("blob")
        public_allowed = bool(properties.get("allowBlobPublicAccess", False))
        if not endpoint:
            raise ResourceMissing(f"not found: a blob endpoint on {params.account}")
        rid = ResourceId.parse(params.account)

        def list_names() -> list[str]:
            with azure_errors(permission=CONTAINERS_READ, scope=params.account):
                return [
                    c.name
                    for c in ctx.clients.storage(rid.subscription_id).blob_containers.list(
                        rid.resource_group, rid.name
                    )
                ]

        names = ctx.read_once("containers", list_names)
        ctx.remember("containers", names)  # nor the list of containers
        if params.containers is not None:
            missing = sorted(set(params.containers) - set(names))
            if missing:
                raise ResourceMissing(f"not found: container(s) {', '.join(missing)} in {params.account}")
            names = [n for n in names if n in params.containers]
        service = ctx.clients.blob_service(endpoint)
        acls: dict[str, dict[str, Any]] = {}
        for name in names:

            def read_acl(name: str = name) -> Any:
                with azure_errors(
                    permission=CONTAINER_GET_ACL,
                    scope=f"{params.account}/blobServices/default/containers/{name}",
                ):
                    return service.get_container_client(name).get_container_access_policy()

            # Set Container ACL answers without the ACL: verify reads it again (taken once, not kept).
            acl = ctx.read_once(f"acl:{name}", read_acl)
            identifiers = {i.id: i.access_policy for i in acl.get("signed_identifiers") or []}
            remove = [i for i in identifiers if params.policy_ids is None or i in params.policy_ids]
            public = acl.get("public_access")
            # Azure refuses a public level on an account that forbids it: the ACL write makes it private.
            keep_public = public if public_allowed else None
            acls[name] = {
                "public_access": public,
                "keep_public": keep_public,
                "all": identifiers,
                "remove": remove,
            }
        return service, acls

    @staticmethod
    def _describe(policy: Any) -> dict[str, Any]:
        return {
            "permission": getattr(policy, "permission", None),
            "start": str(getattr(policy, "start", None) or "") or None,
            "expiry": str(getattr(policy, "expiry", None) or "") or None,
        }

    def _changes(self, acls: dict[str, dict[str, Any]]) -> list[Change]:
        changes = []
        for name, acl in sorted(acls.items()):
            changes.extend(
                Change(
                    field=f"containers.{name}.storedAccessPolicies.{pid}",
                    before=self._describe(acl["all"][pid]),
                    after=None,
                )
                for pid in acl["remove"]
            )
            if acl["remove"] and acl["keep_public"] != acl["public_access"]:
                changes.append(
                    Change(field=f"containers.{name}.publicAccess", before=acl["public_access"], after=None)
                )
        return changes

    def plan(self, ctx: StepContext) -> Plan:
        params: RemoveStoredAccessPoliciesParams = ctx.params  # type: ignore[assignment]
        _, acls = self._policies(ctx)
        return Plan(action=self.name, target=params.account, changes=self._changes(acls))

    def apply(self, ctx: StepContext) -> Result:
        params: RemoveStoredAccessPoliciesParams = ctx.params  # type: ignore[assignment]
        service, acls = self._policies(ctx)
        changes = self._changes(acls)
        prior = {
            name: {pid: self._describe(p) for pid, p in acl["all"].items()} for name, acl in acls.items()
        }
        if not changes:
            return Result(
                changed=False, prior_state={"storedAccessPolicies": prior}, notes=["no stored policy"]
            )
        for name, acl in sorted(acls.items()):
            if not acl["remove"]:
                continue
            keep = {pid: policy for pid, policy in acl["all"].items() if pid not in acl["remove"]}
            with azure_errors(
                permission=CONTAINER_SET_ACL, scope=f"{params.account}/blobServices/default/containers/{name}"
            ):
                service.get_container_client(name).set_container_access_policy(
                    signed_identifiers=keep, public_access=acl["keep_public"]
                )
        ctx.log.info("stored access policies removed", policies=len(changes))
        return Result(changed=True, changes=changes, prior_state={"storedAccessPolicies": prior})

    def verify(self, ctx: StepContext) -> bool:
        _, acls = self._policies(ctx)
        return not self._changes(acls)
