"""Forensics actions: capture evidence (resource state, blob copies, log exports) with a chain of custody.

Every capture is recorded through the engine's evidence port (``ctx.evidence``): one evidence row (source,
where the bytes are, their SHA-256 and size) and one ``evidence.captured`` audit event, in one transaction.
Captures are idempotent per incident: a capture whose evidence row exists (and, for blob copies, whose copy
exists in the evidence container) is not taken again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import quote

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from irflow import clock
from irflow.actions.base import (
    Action,
    ActionError,
    AzureCallFailed,
    Change,
    Plan,
    ResourceMissing,
    Result,
    StepContext,
    azure_errors,
    register,
)
from irflow.actions.monitor import QUERY_READ, iso_duration
from irflow.actions.storage import CONTAINERS_READ, CONTAINERS_WRITE
from irflow.actions.storage import READ as STORAGE_READ
from irflow.domain.resource_id import ResourceId, StorageAccountId, WorkspaceGuid
from irflow.redaction import redact

ACTOR = "irflow-engine"
KEYVAULT_READ = "Microsoft.KeyVault/vaults/read"
NSG_READ = "Microsoft.Network/networkSecurityGroups/read"
VNET_READ = "Microsoft.Network/virtualNetworks/read"
SUBNET_READ = "Microsoft.Network/virtualNetworks/subnets/read"  # a subnet is read as its own resource
PEERING_READ = "Microsoft.Network/virtualNetworks/virtualNetworkPeerings/read"
SET_LEGAL_HOLD = "Microsoft.Storage/storageAccounts/blobServices/containers/setLegalHold/action"
IMMUTABILITY_WRITE = "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies/write"
IMMUTABILITY_LOCK = (
    "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies/lock/action"
)
BLOB_READ = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"
BLOB_WRITE = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write"
GENERATE_USER_DELEGATION_KEY = (
    "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action"
)

_READERS = {
    "microsoft.storage/storageaccounts": STORAGE_READ,
    "microsoft.keyvault/vaults": KEYVAULT_READ,
    "microsoft.network/networksecuritygroups": NSG_READ,
    "microsoft.network/virtualnetworks": VNET_READ,
    "microsoft.network/virtualnetworks/subnets": VNET_READ,
    "microsoft.network/virtualnetworks/virtualnetworkpeerings": VNET_READ,
}


def canonical_bytes(value: Any) -> bytes:
    """Canonical JSON (sorted keys, no insignificant whitespace) as UTF-8: what is hashed and stored."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return text.encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def evidence_key(*parts: str) -> str:
    """A stable dedupe key for one capture (hashed: no URL or query text appears in it)."""
    return "evidence:" + sha256_hex("\x1f".join(parts).encode("utf-8"))


def _port(ctx: StepContext) -> Any:
    if ctx.evidence is None or not ctx.incident.get("id"):
        raise ActionError("forensics.* actions run inside the engine, which provides the evidence store")
    return ctx.evidence


# ------------------------------------------------------------------------------ capture_resource_state
def _supported_resource(value: str) -> str:
    rid = ResourceId.parse(value)
    if rid.full_type.lower() not in _READERS:
        raise ValueError(
            f"cannot capture {rid.full_type}: storage accounts, key vaults, network security groups, "
            "virtual networks, subnets and peerings are supported"
        )
    return str(rid)


class CaptureResourceStateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resource: str | None = Field(
        default=None,
        description="One resource id (the target of a for_each step: each resource is its own target, "
        "captured in parallel with the others).",
    )
    resources: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Resource ids: storage accounts, key vaults, NSGs, virtual networks, subnets, peerings "
        "(one target reading them in turn; prefer for_each with resource).",
    )
    phase: Literal["before", "after"] = Field(
        default="before", description="Before or after containment (one capture of each per incident)."
    )

    @field_validator("resource")
    @classmethod
    def _resource(cls, value: str | None) -> str | None:
        return None if value is None else _supported_resource(value)

    @field_validator("resources")
    @classmethod
    def _resources(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else [_supported_resource(v) for v in values]

    @model_validator(mode="after")
    def _one_of(self) -> CaptureResourceStateParams:
        if (self.resource is None) == (self.resources is None):
            raise ValueError("give resource (one, in a for_each step) or resources (a list), not both")
        return self

    def all_resources(self) -> list[str]:
        return [self.resource] if self.resource is not None else list(self.resources or [])


@register
class CaptureResourceState(Action):
    """Capture the ARM JSON of resources as evidence (before or after containment), hashed with SHA-256.

    Reads each resource with its management client and stores its canonical JSON (sorted keys) in the
    evidence store with its SHA-256; the audit chain records the capture. Writes nothing to Azure. One
    capture per incident, resource and phase: re-running the step does not capture again. Over a list, use
    ``for_each`` (each resource its own target, read in parallel, once for plan and apply).

    Example::

        - id: capture-before
          action: forensics.capture_resource_state
          for_each: "{{ inputs.storage_accounts }}"
          with: {resource: "{{ item }}", phase: before}
    """

    name = "forensics.capture_resource_state"
    Params = CaptureResourceStateParams
    permissions = (STORAGE_READ, KEYVAULT_READ, NSG_READ, VNET_READ, SUBNET_READ, PEERING_READ)
    target_param = "resource"

    @staticmethod
    def _read(ctx: StepContext, resource: str) -> dict[str, Any]:
        rid = ResourceId.parse(resource)
        kind = rid.full_type.lower()
        sub, group, name = rid.subscription_id, rid.resource_group, rid.names[0]
        with azure_errors(permission=_READERS[kind], scope=resource):
            if kind == "microsoft.storage/storageaccounts":
                found = ctx.clients.storage(sub).storage_accounts.get_properties(group, name)
            elif kind == "microsoft.keyvault/vaults":
                found = ctx.clients.keyvault_mgmt(sub).vaults.get(group, name)
            elif kind == "microsoft.network/networksecuritygroups":
                found = ctx.clients.network(sub).network_security_groups.get(group, name)
            elif kind == "microsoft.network/virtualnetworks/subnets":
                found = ctx.clients.network(sub).subnets.get(group, name, rid.names[1])
            elif kind == "microsoft.network/virtualnetworks/virtualnetworkpeerings":
                found = ctx.clients.network(sub).virtual_network_peerings.get(group, name, rid.names[1])
            else:
                found = ctx.clients.network(sub).virtual_networks.get(group, name)
        return found.as_dict()

    def _key(self, ctx: StepContext, resource: str) -> str:
        params: CaptureResourceStateParams = ctx.params  # type: ignore[assignment]
        return evidence_key(ctx.incident["id"], self.name, resource.lower(), params.phase)

    def _state(self, ctx: StepContext, resource: str) -> dict[str, Any]:
        """The resource's ARM JSON; after containment, a resource that is gone (a deleted peering) is itself
        the evidence: ``{"id", "absent": true}``."""
        params: CaptureResourceStateParams = ctx.params  # type: ignore[assignment]
        try:  # plan's read is apply's capture when both run in one engine step (ctx.read_once)
            return ctx.read_once(f"state:{resource.lower()}", lambda: self._read(ctx, resource))
        except ResourceMissing:
            if params.phase == "before":
                raise
            return {"id": resource, "absent": True}

    def _pending(self, ctx: StepContext) -> list[str]:
        params: CaptureResourceStateParams = ctx.params  # type: ignore[assignment]
        port = _port(ctx)
        return [r for r in dict.fromkeys(params.all_resources()) if not port.exists(self._key(ctx, r))]

    def plan(self, ctx: StepContext) -> Plan:
        params: CaptureResourceStateParams = ctx.params  # type: ignore[assignment]
        changes = []
        for resource in self._pending(ctx):
            data = canonical_bytes(self._state(ctx, resource))
            changes.append(
                Change(
                    field=f"evidence.resource_state.{params.phase}.{resource}",
                    before=None,
                    after={"sha256": sha256_hex(data), "size": len(data)},
                )
            )
        notes = [] if changes else [f"{params.phase} state already captured for this incident"]
        return Plan(action=self.name, changes=changes, notes=notes)

    def apply(self, ctx: StepContext) -> Result:
        params: CaptureResourceStateParams = ctx.params  # type: ignore[assignment]
        changes, recorded = [], []
        for resource in self._pending(ctx):
            data = canonical_bytes(self._state(ctx, resource))
            digest = sha256_hex(data)
            evidence_id = ctx.evidence.record(
                incident_id=ctx.incident["id"],
                kind="resource_state",
                source=resource,
                location="database",
                data=data,
                sha256=digest,
                size=len(data),
                dedupe_key=self._key(ctx, resource),
                metadata={"phase": params.phase, "type": ResourceId.parse(resource).full_type},
                actor=ACTOR,
            )
            recorded.append(evidence_id)
            changes.append(
                Change(
                    field=f"evidence.resource_state.{params.phase}.{resource}",
                    before=None,
                    after={"evidence_id": evidence_id, "sha256": digest, "size": len(data)},
                )
            )
        notes = [] if changes else [f"{params.phase} state already captured for this incident"]
        return Result(changed=bool(changes), changes=changes, outputs={"evidence": recorded}, notes=notes)

    def verify(self, ctx: StepContext) -> bool:
        return not self._pending(ctx)


# --------------------------------------------------------------------------------- snapshot_containers
_CONTAINER_NAME = r"^[a-z0-9](?:-?[a-z0-9]){2,62}$"


class SnapshotContainersParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: StorageAccountId = Field(description="Resource id of the storage account holding the PHI.")
    containers: list[str] | None = Field(
        default=None, description="Only these containers (default: every container of the account)."
    )
    evidence_account: StorageAccountId = Field(
        description="Resource id of the storage account that keeps the evidence copies."
    )
    evidence_container: str = Field(
        default="irflow-evidence", pattern=_CONTAINER_NAME, description="Container of the evidence copies."
    )
    retention_days: int = Field(
        default=2190,
        ge=1,
        le=146000,
        description="Time-based immutability of the evidence container, days (default six years).",
    )
    legal_hold_tag: str = Field(
        default="irflowincident", pattern=r"^[a-z0-9]{3,23}$", description="Legal hold tag to set."
    )
    lock_immutability: bool = Field(
        default=False,
        description="Lock the evidence container's time-based retention policy. IRREVERSIBLE: a locked "
        "policy can only be extended, never shortened or removed, and the container (its account, its "
        "resource group) cannot be deleted until every blob's retention has passed.",
    )


class _Endpoints(BaseModel):
    source: str
    evidence: str


@register
class SnapshotContainers(Action):
    """Copy every blob of PHI containers into an immutable evidence container, with SHA-256 of each copy.

    Per blob: take a snapshot (a point-in-time, read-only version), copy the snapshot into the evidence
    container and hash it, reading in 4 MiB ranges (never a whole blob in memory). The copy takes one of two
    paths, both accepted by Azure: when the source account's firewall is open, a server-side Copy Blob whose
    source carries a short-lived, read-only user-delegation SAS (another account's source is not authorised by
    the destination's token: Azure answers 404 ``CannotVerifyCopySource``); when the source is behind its
    firewall (isolated by ``storage.isolate_account``, whose allow-list admits irflow but not Azure's
    server-side copy), the bytes go over irflow's own path, ranged reads staged as blocks into the evidence
    blob. The evidence metadata says which path was taken. One evidence row per blob (source blob URL without
    any query, evidence blob URL, SHA-256, size) and one ``evidence.captured`` audit event. The evidence
    container is created if missing, put under a legal hold and a time-based immutability policy
    (``retention_days``, default six years) before anything is copied into it. A blob already copied for this
    incident (evidence row and evidence blob both present) is skipped; an evidence blob without its row is
    hashed and recorded, never overwritten.

    Example::

        - id: preserve-evidence
          action: forensics.snapshot_containers
          for_each: "{{ inputs.storage_accounts }}"
          with:
            account: "{{ item }}"
            evidence_account: "{{ inputs.evidence_account }}"
            evidence_container: irflow-evidence
            retention_days: 2190
    """

    name = "forensics.snapshot_containers"
    Params = SnapshotContainersParams
    permissions = (
        STORAGE_READ,
        CONTAINERS_READ,
        CONTAINERS_WRITE,
        SET_LEGAL_HOLD,
        IMMUTABILITY_WRITE,
        IMMUTABILITY_LOCK,
        BLOB_READ,
        BLOB_WRITE,
        GENERATE_USER_DELEGATION_KEY,
    )
    target_param = "account"
    _delegation_key: Any = None

    # -------------------------------------------------------------------------- reads
    @staticmethod
    def _endpoint(ctx: StepContext, account: str) -> str:
        rid = ResourceId.parse(account)
        with azure_errors(permission=STORAGE_READ, scope=account):
            found = ctx.clients.storage(rid.subscription_id).storage_accounts.get_properties(
                rid.resource_group, rid.name
            )
        endpoint = ((found.as_dict().get("properties") or {}).get("primaryEndpoints") or {}).get("blob")
        if not endpoint:
            raise ResourceMissing(f"not found: a blob endpoint on {account}")
        return endpoint if endpoint.endswith("/") else endpoint + "/"

    def _container_state(self, ctx: StepContext) -> dict[str, Any] | None:
        """The evidence container's ARM properties, or None when it does not exist."""
        params: SnapshotContainersParams = ctx.params  # type: ignore[assignment]
        rid = ResourceId.parse(params.evidence_account)
        scope = f"{params.evidence_account}/blobServices/default/containers/{params.evidence_container}"
        try:
            with azure_errors(permission=CONTAINERS_READ, scope=scope):
                found = ctx.clients.storage(rid.subscription_id).blob_containers.get(
                    rid.resource_group, rid.name, params.evidence_container
                )
        except ResourceMissing:
            return None
        return found.as_dict().get("properties") or {}

    @staticmethod
    def _protection_changes(params: SnapshotContainersParams, state: dict[str, Any] | None) -> list[Change]:
        prefix = f"evidence_container.{params.evidence_container}"
        changes = []
        if state is None:
            changes.append(Change(field=prefix, before=None, after="created"))
            state = {}
        tags = [t.get("tag", "").lower() for t in (state.get("legalHold") or {}).get("tags") or []]
        if params.legal_hold_tag not in tags:
            changes.append(
                Change(field=f"{prefix}.legalHold.tags", before=tags, after=[params.legal_hold_tag])
            )
        policy = (state.get("immutabilityPolicy") or {}).get("properties") or {}
        days = policy.get("immutabilityPeriodSinceCreationInDays")
        if days is None or (days < params.retention_days and policy.get("state") != "Locked"):
            changes.append(
                Change(
                    field=f"{prefix}.immutabilityPolicy.immutabilityPeriodSinceCreationInDays",
                    before=days,
                    after=params.retention_days,
                )
            )
        if params.lock_immutability and policy.get("state") != "Locked":
            changes.append(
                Change(field=f"{prefix}.immutabilityPolicy.state", before=policy.get("state"), after="Locked")
            )
        return changes

    def _source_blobs(self, ctx: StepContext, endpoints: _Endpoints) -> list[tuple[str, str]]:
        """(container, blob name) of every base blob to preserve."""
        params: SnapshotContainersParams = ctx.params  # type: ignore[assignment]
        rid = ResourceId.parse(params.account)
        with azure_errors(permission=CONTAINERS_READ, scope=params.account):
            names = [
                c.name
                for c in ctx.clients.storage(rid.subscription_id).blob_containers.list(
                    rid.resource_group, rid.name
                )
            ]
        if params.containers is not None:
            missing = sorted(set(params.containers) - set(names))
            if missing:
                raise ResourceMissing(f"not found: container(s) {', '.join(missing)} in {params.account}")
            names = [n for n in names if n in params.containers]
        service = ctx.clients.blob_service(endpoints.source)
        blobs = []
        for container in sorted(names):
            scope = f"{params.account}/blobServices/default/containers/{container}"
            with azure_errors(permission=BLOB_READ, scope=scope):
                blobs.extend(
                    (container, b.name) for b in service.get_container_client(container).list_blobs()
                )
        return blobs

    def _evidence_name(self, ctx: StepContext, container: str, blob: str) -> str:
        params: SnapshotContainersParams = ctx.params  # type: ignore[assignment]
        return f"{ctx.incident['id']}/{ResourceId.parse(params.account).name}/{container}/{blob}"

    def _key(self, ctx: StepContext, source_url: str) -> str:
        return evidence_key(ctx.incident["id"], self.name, source_url)

    def _survey(self, ctx: StepContext) -> tuple[_Endpoints, dict[str, Any] | None, list[dict[str, Any]]]:
        """Endpoints, the evidence container's state and, per source blob, what remains to do."""
        params: SnapshotContainersParams = ctx.params  # type: ignore[assignment]
        port = _port(ctx)
        endpoints = _Endpoints(
            source=self._endpoint(ctx, params.account), evidence=self._endpoint(ctx, params.evidence_account)
        )
        state = self._container_state(ctx)
        evidence_service = ctx.clients.blob_service(endpoints.evidence)
        scope = f"{params.evidence_account}/blobServices/default/containers/{params.evidence_container}"
        todo = []
        for container, blob in self._source_blobs(ctx, endpoints):
            source_url = f"{endpoints.source}{container}/{quote(blob)}"
            name = self._evidence_name(ctx, container, blob)
            key = self._key(ctx, source_url)
            recorded = port.exists(key)
            copied = False
            if state is not None:
                with azure_errors(permission=BLOB_READ, scope=scope):
                    copied = evidence_service.get_blob_client(params.evidence_container, name).exists()
            if recorded and copied:
                continue
            todo.append(
                {
                    "container": container,
                    "blob": blob,
                    "source": source_url,
                    "name": name,
                    "key": key,
                    "copied": copied,
                }
            )
        return endpoints, state, todo

    def _changes(
        self, ctx: StepContext, state: dict[str, Any] | None, todo: list[dict[str, Any]]
    ) -> list[Change]:
        changes = self._protection_changes(ctx.params, state)  # type: ignore[arg-type]
        changes.extend(
            Change(
                field=f"evidence.blob_copy.{item['source']}",
                before=None,
                after="record existing copy" if item["copied"] else "snapshot, copy, hash",
            )
            for item in todo
        )
        return changes

    # ----------------------------------------------------------------------- actions
    def plan(self, ctx: StepContext) -> Plan:
        params: SnapshotContainersParams = ctx.params  # type: ignore[assignment]
        _, state, todo = self._survey(ctx)
        changes = self._changes(ctx, state, todo)
        notes = []
        if any(c.field.endswith("immutabilityPolicy.state") for c in changes):
            notes.append(
                f"IRREVERSIBLE: locking the retention policy of {params.evidence_container} means its "
                f"{params.retention_days}-day retention can never be shortened or removed, and the "
                "container, its account and resource group cannot be deleted until it has passed"
            )
        return Plan(action=self.name, target=params.account, changes=changes, notes=notes)

    def _protect(self, ctx: StepContext, endpoints: _Endpoints, state: dict[str, Any] | None) -> None:
        from azure.mgmt.storage.models import ImmutabilityPolicy, LegalHold

        params: SnapshotContainersParams = ctx.params  # type: ignore[assignment]
        rid = ResourceId.parse(params.evidence_account)
        client = ctx.clients.storage(rid.subscription_id).blob_containers
        scope = f"{params.evidence_account}/blobServices/default/containers/{params.evidence_container}"
        etag = ((state or {}).get("immutabilityPolicy") or {}).get("etag")
        for change in self._protection_changes(params, state):
            if change.field.endswith(".legalHold.tags"):
                with azure_errors(permission=SET_LEGAL_HOLD, scope=scope):
                    client.set_legal_hold(
                        rid.resource_group,
                        rid.name,
                        params.evidence_container,
                        LegalHold(tags=[params.legal_hold_tag]),
                    )
            elif change.field.endswith("immutabilityPeriodSinceCreationInDays"):
                policy = ImmutabilityPolicy(immutability_period_since_creation_in_days=params.retention_days)
                with azure_errors(permission=IMMUTABILITY_WRITE, scope=scope):
                    etag = client.create_or_update_immutability_policy(
                        rid.resource_group, rid.name, params.evidence_container, policy
                    ).etag
            elif change.field.endswith("immutabilityPolicy.state"):
                from azure.core import MatchConditions

                with azure_errors(permission=IMMUTABILITY_LOCK, scope=scope):
                    client.lock_immutability_policy(
                        rid.resource_group,
                        rid.name,
                        params.evidence_container,
                        etag=etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
                ctx.log.info("evidence retention policy locked", container=params.evidence_container)
            else:
                # Created on the data plane (Create Container), which needs the same RBAC operation.
                with azure_errors(permission=CONTAINERS_WRITE, scope=scope):
                    ctx.clients.blob_service(endpoints.evidence).create_container(params.evidence_container)

    def _source_open(self, ctx: StepContext) -> bool:
        """Whether the source account's firewall admits Azure's own server-side copy: public network access
        Enabled and default action Allow. Otherwise (an isolated account, say) Azure refuses the copy
        (copy-blobs-between-storage-accounts-network-restriction), and the bytes go over irflow's path."""
        params: SnapshotContainersParams = ctx.params  # type: ignore[assignment]
        rid = ResourceId.parse(params.account)
        with azure_errors(permission=STORAGE_READ, scope=params.account):
            found = ctx.clients.storage(rid.subscription_id).storage_accounts.get_properties(
                rid.resource_group, rid.name
            )
        props = found.as_dict().get("properties") or {}
        acls = props.get("networkAcls") or {}
        return (
            props.get("publicNetworkAccess", "Enabled") == "Enabled" and acls.get("defaultAction") != "Deny"
        )

    def _source_sas(
        self, ctx: StepContext, endpoints: _Endpoints, item: dict[str, Any], snapshot: str
    ) -> str:
        """A short-lived, read-only user-delegation SAS for one source snapshot: the destination's token does
        not authorise another account's source (Copy Blob: public or SAS, else CannotVerifyCopySource)."""
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        params: SnapshotContainersParams = ctx.params  # type: ignore[assignment]
        now = clock.now()
        if self._delegation_key is None:
            with azure_errors(permission=GENERATE_USER_DELEGATION_KEY, scope=params.account):
                self._delegation_key = ctx.clients.blob_service(endpoints.source).get_user_delegation_key(
                    now - timedelta(minutes=1), now + SAS_LIFETIME
                )
        return generate_blob_sas(
            ResourceId.parse(params.account).name,
            item["container"],
            item["blob"],
            snapshot=snapshot,
            user_delegation_key=self._delegation_key,
            permission=BlobSasPermissions(read=True),
            start=now - timedelta(minutes=1),
            expiry=now + SAS_LIFETIME,
        )

    def _copy(self, ctx: StepContext, endpoints: _Endpoints, item: dict[str, Any]) -> dict[str, Any]:
        params: SnapshotContainersParams = ctx.params  # type: ignore[assignment]
        source_scope = f"{params.account}/blobServices/default/containers/{item['container']}"
        target_scope = (
            f"{params.evidence_account}/blobServices/default/containers/{params.evidence_container}"
        )
        target = ctx.clients.blob_service(endpoints.evidence).get_blob_client(
            params.evidence_container, item["name"]
        )
        snapshot, copy_id, path = None, None, "recorded"
        if not item["copied"]:
            source = ctx.clients.blob_service(endpoints.source).get_blob_client(
                item["container"], item["blob"]
            )
            with azure_errors(permission=BLOB_WRITE, scope=source_scope):
                snapshot = source.create_snapshot()["snapshot"]
            if self._source_open(ctx):
                sas = self._source_sas(ctx, endpoints, item, snapshot)
                with _copy_refusals(item["source"]), azure_errors(permission=BLOB_WRITE, scope=target_scope):
                    target.start_copy_from_url(f"{item['source']}?snapshot={quote(snapshot)}&{sas}")
                path = "server-side copy (user-delegation SAS)"
            else:
                digest, size = self._stream_copy(ctx, endpoints, item, snapshot, target)
                return {
                    "sha256": digest,
                    "size": size,
                    "snapshot": snapshot,
                    "copy_id": None,
                    "path": "streamed over irflow's path",
                }
        with azure_errors(permission=BLOB_READ, scope=target_scope):
            properties = self._copied(target)
            digest, size = _stream_sha256(target, properties.size)
        copy = properties.copy
        copy_id = getattr(copy, "id", None)
        return {
            "sha256": digest,
            "size": size,
            "snapshot": snapshot or _snapshot_of(getattr(copy, "source", None)),
            "copy_id": copy_id,
            "path": path,
        }

    @staticmethod
    def _stream_copy(
        ctx: StepContext, endpoints: _Endpoints, item: dict[str, Any], snapshot: str, target: Any
    ) -> tuple[str, int]:
        """Copy one snapshot over irflow's own network path, in bounded chunks: ranged reads from the source,
        staged blocks into the evidence blob, SHA-256 computed on the way. Never the whole blob in memory."""
        params: SnapshotContainersParams = ctx.params  # type: ignore[assignment]
        source_scope = f"{params.account}/blobServices/default/containers/{item['container']}"
        target_scope = (
            f"{params.evidence_account}/blobServices/default/containers/{params.evidence_container}"
        )
        source = ctx.clients.blob_service(endpoints.source).get_blob_client(
            item["container"], item["blob"], snapshot=snapshot
        )
        with azure_errors(permission=BLOB_READ, scope=source_scope):
            size = source.get_blob_properties().size
        hasher = hashlib.sha256()

        def chunks() -> Any:
            for offset in range(0, size, CHUNK_BYTES):
                with azure_errors(permission=BLOB_READ, scope=source_scope):
                    chunk = source.download_blob(
                        offset=offset, length=min(CHUNK_BYTES, size - offset)
                    ).readall()
                hasher.update(chunk)
                yield chunk

        with azure_errors(permission=BLOB_WRITE, scope=target_scope):
            # length=None: the SDK stages blocks of max_block_size (4 MiB) instead of one Put Blob in memory.
            target.upload_blob(chunks(), length=None, max_concurrency=1, overwrite=False)
        return hasher.hexdigest(), size

    @staticmethod
    def _copied(target: Any, attempts: int = 60) -> Any:
        """The evidence blob's properties once its copy is done (Azure copies across accounts async)."""
        for _ in range(attempts):
            properties = target.get_blob_properties()
            status = getattr(properties.copy, "status", None)
            if status in (None, "success"):
                return properties
            if status != "pending":
                raise AzureCallFailed(f"copy into {target.url.split('?')[0]} ended {status}")
            time.sleep(2)
        raise AzureCallFailed(f"copy into {target.url.split('?')[0]} still pending")

    def apply(self, ctx: StepContext) -> Result:
        params: SnapshotContainersParams = ctx.params  # type: ignore[assignment]
        endpoints, state, todo = self._survey(ctx)
        changes = self._changes(ctx, state, todo)
        if not changes:
            return Result(changed=False, notes=["every blob already preserved for this incident"])
        self._protect(ctx, endpoints, state)
        recorded = []
        self._delegation_key = None  # one user delegation key per apply, for every source SAS
        for item in todo:
            copied = self._copy(ctx, endpoints, item)
            location = f"{endpoints.evidence}{params.evidence_container}/{quote(item['name'])}"
            recorded.append(
                ctx.evidence.record(
                    incident_id=ctx.incident["id"],
                    kind="blob_copy",
                    source=item["source"],
                    location=location,
                    data=None,
                    sha256=copied["sha256"],
                    size=copied["size"],
                    dedupe_key=item["key"],
                    metadata={
                        "account": params.account,
                        "container": item["container"],
                        "snapshot": copied["snapshot"],
                        "copy_id": copied["copy_id"],
                        "path": copied["path"],
                        "evidence_account": params.evidence_account,
                        "legal_hold_tag": params.legal_hold_tag,
                        "retention_days": params.retention_days,
                    },
                    actor=ACTOR,
                )
            )
        ctx.log.info("blobs preserved as evidence", blobs=len(recorded))
        return Result(changed=True, changes=changes, outputs={"evidence": recorded})

    def verify(self, ctx: StepContext) -> bool:
        _, state, todo = self._survey(ctx)
        return not self._changes(ctx, state, todo)


CHUNK_BYTES = 4 * 1024 * 1024  # ranged reads while hashing or copying: the most held in memory at once
SAS_LIFETIME = timedelta(minutes=30)  # the source SAS and its user delegation key: short-lived


def _stream_sha256(blob: Any, size: int) -> tuple[str, int]:
    """SHA-256 of a blob read in ranged chunks (never the whole blob in memory)."""
    hasher = hashlib.sha256()
    for offset in range(0, size, CHUNK_BYTES):
        hasher.update(blob.download_blob(offset=offset, length=min(CHUNK_BYTES, size - offset)).readall())
    return hasher.hexdigest(), size


@contextmanager
def _copy_refusals(source: str) -> Iterator[None]:
    """A copy whose source Azure refuses is named as such, not as a missing evidence container."""
    try:
        yield
    except HttpResponseError as exc:
        code = str(getattr(getattr(exc, "error_code", None), "value", getattr(exc, "error_code", "")) or "")
        if code == "CannotVerifyCopySource":
            raise ActionError(
                f"Azure refused to read the copy source {source} (CannotVerifyCopySource): it is neither "
                "public nor authorised by a valid SAS, or its firewall refuses Azure's server-side copy"
            ) from None
        raise


def _snapshot_of(copy_source: str | None) -> str | None:
    if not copy_source or "snapshot=" not in copy_source:
        return None
    return copy_source.split("snapshot=", 1)[1].split("&", 1)[0]


# ------------------------------------------------------------------------------------------ export_logs
class ExportLogsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workspace_id: WorkspaceGuid = Field(description="The Log Analytics workspace (its GUID).")
    query: str = Field(
        min_length=1,
        max_length=20000,
        description="KQL. Select only the columns the investigation needs: UPNs and IP addresses are "
        "personal data, and blob names or query text may hold PHI.",
    )
    timespan: timedelta = Field(description="How far back: an ISO 8601 duration such as P7D.")
    redact: bool = Field(
        default=True, description="Mask secrets and PHI-shaped values in every cell before storing."
    )

    @field_validator("timespan")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0) or value > timedelta(days=730):
            raise ValueError("timespan must be a positive duration of at most two years (P730D)")
        return value


@register
class ExportLogs(Action):
    """Export the result of a KQL query as evidence: canonical JSON of every result table, with its SHA-256.

    The export is kept in the evidence store (not in Azure) and audited. The query author decides what is
    kept: select only the columns needed, since user principal names and IP addresses are personal data; with
    ``redact`` (the default) every cell is passed through irflow's redaction (secrets, SSNs, e-mail addresses
    and the like are masked) before it is hashed and stored. One export per incident, workspace, query and
    timespan: re-running the step does not query again. A partial result is refused (retried), never kept.

    Example::

        - id: export-blob-logs
          action: forensics.export_logs
          with:
            workspace_id: "{{ inputs.workspace_id }}"
            query: >-
              StorageBlobLogs | where OperationName == 'GetBlob'
              | project TimeGenerated, AccountName, StatusCode
            timespan: P30D
    """

    name = "forensics.export_logs"
    Params = ExportLogsParams
    permissions = (QUERY_READ,)
    target_param = "workspace_id"

    @staticmethod
    def _query_hash(params: ExportLogsParams) -> str:
        return sha256_hex(params.query.encode("utf-8"))

    def _key(self, ctx: StepContext) -> str:
        params: ExportLogsParams = ctx.params  # type: ignore[assignment]
        return evidence_key(
            ctx.incident["id"],
            self.name,
            params.workspace_id,
            self._query_hash(params),
            iso_duration(params.timespan),
            str(params.redact),
        )

    def _field(self, params: ExportLogsParams) -> str:
        return f"evidence.log_export.{params.workspace_id}.{self._query_hash(params)[:16]}"

    def plan(self, ctx: StepContext) -> Plan:
        params: ExportLogsParams = ctx.params  # type: ignore[assignment]
        if _port(ctx).exists(self._key(ctx)):
            return Plan(action=self.name, target=params.workspace_id, notes=["already exported"])
        change = Change(
            field=self._field(params), before=None, after=f"query over {iso_duration(params.timespan)}"
        )
        return Plan(action=self.name, target=params.workspace_id, changes=[change], notes=[params.query])

    def _tables(self, ctx: StepContext) -> list[dict[str, Any]]:
        from azure.monitor.query import LogsQueryStatus

        params: ExportLogsParams = ctx.params  # type: ignore[assignment]
        with azure_errors(permission=QUERY_READ, scope=f"Log Analytics workspace {params.workspace_id}"):
            try:
                response = ctx.clients.logs().query_workspace(
                    params.workspace_id, params.query, timespan=params.timespan
                )
            except HttpResponseError as exc:
                if exc.status_code == 404 and not isinstance(exc, ResourceNotFoundError):
                    raise ResourceNotFoundError(message=exc.message, response=exc.response) from None
                raise
        if response.status == LogsQueryStatus.PARTIAL:
            error = response.partial_error
            raise AzureCallFailed(
                f"partial result from workspace {params.workspace_id}: {getattr(error, 'code', 'partial')}"
            )
        tables = []
        for table in response.tables:
            rows = [[_cell(v) for v in row] for row in table.rows]
            if params.redact:
                rows = redact(rows, default=str)
            tables.append(
                {
                    "name": getattr(table, "name", ""),
                    "columns": [getattr(c, "name", c) for c in table.columns],
                    "rows": rows,
                }
            )
        return tables

    def apply(self, ctx: StepContext) -> Result:
        params: ExportLogsParams = ctx.params  # type: ignore[assignment]
        key = self._key(ctx)
        if _port(ctx).exists(key):
            return Result(changed=False, notes=["already exported"])
        tables = self._tables(ctx)
        data = canonical_bytes(
            {
                "workspace_id": params.workspace_id,
                "query": params.query,
                "timespan": iso_duration(params.timespan),
                "redacted": params.redact,
                "tables": tables,
            }
        )
        digest = sha256_hex(data)
        query_hash = self._query_hash(params)
        evidence_id = ctx.evidence.record(
            incident_id=ctx.incident["id"],
            kind="log_export",
            source=f"workspace:{params.workspace_id}/query-sha256:{query_hash}",
            location="database",
            data=data,
            sha256=digest,
            size=len(data),
            dedupe_key=key,
            metadata={
                "workspace_id": params.workspace_id,
                "query_sha256": query_hash,
                "timespan": iso_duration(params.timespan),
                "redacted": params.redact,
                "rows": sum(len(t["rows"]) for t in tables),
            },
            actor=ACTOR,
        )
        change = Change(
            field=self._field(params), before=None, after={"evidence_id": evidence_id, "sha256": digest}
        )
        return Result(changed=True, changes=[change], outputs={"evidence": [evidence_id], "sha256": digest})

    def verify(self, ctx: StepContext) -> bool:
        return bool(_port(ctx).exists(self._key(ctx)))


def _cell(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
