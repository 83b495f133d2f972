"""The blob service of a storage account as the storage resource provider shows it: service properties
(soft delete, versioning) and containers (public access, metadata, legal holds, immutability policy).

Wire shapes follow the x-ms-examples of Microsoft.Storage (BlobServicesGet/Put, BlobContainersList/Get/Patch,
BlobContainersSetLegalHold/ClearLegalHold, BlobContainersPutImmutabilityPolicy).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from irflow.sim import arm, errors

BLOB_SERVICE_TYPE = "Microsoft.Storage/storageAccounts/blobServices"
CONTAINER_TYPE = "Microsoft.Storage/storageAccounts/blobServices/containers"
IMMUTABILITY_POLICY_TYPE = "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies"

PUBLIC_ACCESS = ("None", "Blob", "Container")
MAX_LEGAL_HOLD_TAGS = 10
MAX_IMMUTABILITY_DAYS = 146000
_CONTAINER_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$")
_SPECIAL_CONTAINERS = frozenset({"$root", "$web", "$logs"})
_LEGAL_HOLD_TAG = re.compile(r"^[A-Za-z0-9]{3,23}$")
_DOTNET_EPOCH = datetime(1, 1, 1, tzinfo=UTC)


def _ticks(when: datetime) -> int:
    """.NET ticks (100 ns since 0001-01-01): what the blob service's ETags are made of."""
    delta = when.astimezone(UTC) - _DOTNET_EPOCH
    return (delta.days * 86400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def blob_time(when: datetime) -> str:
    """``lastModifiedTime`` as the blob service reports it: whole seconds, ``Z``."""
    return f"{when.astimezone(UTC):%Y-%m-%dT%H:%M:%S}Z"


def valid_container_name(name: str) -> bool:
    return name in _SPECIAL_CONTAINERS or bool(_CONTAINER_NAME.match(name))


def canonical_public_access(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, str):
        for candidate in PUBLIC_ACCESS:
            if candidate.lower() == value.lower():
                return candidate
    raise errors.invalid_values("publicAccess")


def _validate_metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k) and isinstance(v, str)
        for k, v in value.items()
    ):
        raise errors.invalid_values("metadata")
    return dict(value)


# ---------------------------------------------------------------------------------------------- service
def default_service_properties() -> dict[str, Any]:
    """What ``GET …/blobServices/default`` shows for an account created through the API with no options."""
    return {
        "cors": {"corsRules": []},
        "deleteRetentionPolicy": {"allowPermanentDelete": False, "enabled": False},
    }


def _validate_retention(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not isinstance(value.get("enabled"), bool):
        raise errors.invalid_values(f"{name}.enabled")
    policy = dict(value)
    if policy["enabled"]:
        days = policy.get("days")
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 365:
            raise errors.invalid_values(f"{name}.days")
    else:
        policy.pop("days", None)
    if "allowPermanentDelete" in policy and not isinstance(policy["allowPermanentDelete"], bool):
        raise errors.invalid_values(f"{name}.allowPermanentDelete")
    return policy


def validate_service_properties(properties: dict[str, Any]) -> dict[str, Any]:
    result = dict(properties)
    if "deleteRetentionPolicy" in result:
        policy = _validate_retention(result["deleteRetentionPolicy"], "deleteRetentionPolicy")
        policy.setdefault("allowPermanentDelete", False)
        result["deleteRetentionPolicy"] = policy
    if "containerDeleteRetentionPolicy" in result:
        result["containerDeleteRetentionPolicy"] = _validate_retention(
            result["containerDeleteRetentionPolicy"], "containerDeleteRetentionPolicy"
        )
    for flag in ("isVersioningEnabled", "automaticSnapshotPolicyEnabled"):
        if flag in result and not isinstance(result[flag], bool):
            raise errors.invalid_values(flag)
    if "cors" in result:
        cors = result["cors"]
        if not isinstance(cors, dict) or not isinstance(cors.get("corsRules", []), list):
            raise errors.invalid_values("cors")
        result["cors"] = {"corsRules": list(cors.get("corsRules", []))}
    return result


# ---------------------------------------------------------------------------------------------- containers
@dataclass
class LegalHoldTag:
    tag: str
    timestamp: datetime
    object_identifier: str
    tenant_id: str

    def to_arm(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "timestamp": arm.format_time(self.timestamp),
            "objectIdentifier": self.object_identifier,
            "tenantId": self.tenant_id,
        }


@dataclass
class ImmutabilityPolicy:
    """A container's time-based retention policy (``immutabilityPolicies/default``)."""

    days: int
    updated: datetime
    state: str = "Unlocked"
    allow_protected_append_writes: bool | None = None
    allow_protected_append_writes_all: bool | None = None
    version: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def etag(self) -> str:
        return f'"{_ticks(self.updated) + self.version:x}"'

    def properties(self) -> dict[str, Any]:
        props: dict[str, Any] = {"immutabilityPeriodSinceCreationInDays": self.days}
        if self.allow_protected_append_writes is not None:
            props["allowProtectedAppendWrites"] = self.allow_protected_append_writes
        if self.allow_protected_append_writes_all is not None:
            props["allowProtectedAppendWritesAll"] = self.allow_protected_append_writes_all
        props["state"] = self.state
        return props


MAX_STORED_ACCESS_POLICIES = 5
SAS_PERMISSIONS = "racwdxyltfmeopi"  # the container / blob SAS permission letters


@dataclass
class StoredAccessPolicy:
    """A container's stored access policy (a ``SignedIdentifier`` of Get / Set Container ACL): the service SAS
    tokens that name its ``id`` get their permissions and validity from it; removing it revokes them."""

    id: str
    permission: str | None = None
    start: datetime | None = None
    expiry: datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not 1 <= len(self.id) <= 64:
            raise ValueError("a stored access policy id has 1 to 64 characters")
        if self.permission is not None and (
            not isinstance(self.permission, str) or set(self.permission) - set(SAS_PERMISSIONS)
        ):
            raise ValueError(f"permission {self.permission!r} holds letters other than {SAS_PERMISSIONS}")
        for name in ("start", "expiry"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                setattr(self, name, value.replace(tzinfo=UTC))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "permission": self.permission,
            "start": arm.format_time(self.start) if self.start else None,
            "expiry": arm.format_time(self.expiry) if self.expiry else None,
        }


@dataclass
class Blob:
    """A block blob as the blob service data plane keeps it (:mod:`irflow.sim.storage.blob_data`):
    content bytes, content type, metadata, times and ETag. ``snapshots`` are read-only copies of earlier
    states (each a :class:`Blob` whose ``snapshot`` is its id, the ``x-ms-snapshot`` time); ``copy_info``
    holds the ``x-ms-copy-*`` facts of a blob written by Copy Blob (``id``, ``source``, ``status``,
    ``progress``, ``completion_time``)."""

    name: str
    content: bytes
    content_type: str
    created: datetime
    last_modified: datetime
    metadata: dict[str, str] = field(default_factory=dict)
    snapshot: str | None = None
    snapshots: list[Blob] = field(default_factory=list)
    copy_info: dict[str, Any] | None = None
    version: int = 0

    @property
    def etag(self) -> str:
        return f'"0x{_ticks(self.last_modified) + self.version:X}"'

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def content_md5(self) -> str:
        """``Content-MD5``: base64 of the MD5 digest, as the service computes it for a Put Blob."""
        return base64.b64encode(hashlib.md5(self.content, usedforsecurity=False).digest()).decode("ascii")

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    def write(self, content: bytes, content_type: str, metadata: dict[str, str], when: datetime) -> None:
        """Overwrite (Put Blob / Copy Blob onto an existing name): the snapshots and creation time stay."""
        self.content, self.content_type, self.metadata = content, content_type, dict(metadata)
        self.copy_info = None
        self.last_modified = when
        self.version += 1

    def take_snapshot(self, when: datetime) -> Blob:
        """A read-only copy of the current state, with a snapshot id unique among this blob's snapshots."""
        taken = {s.snapshot for s in self.snapshots}
        moment = when
        while arm.format_time(moment) in taken:
            moment += timedelta(microseconds=1)
        snapshot = Blob(
            name=self.name,
            content=self.content,
            content_type=self.content_type,
            created=self.created,
            last_modified=self.last_modified,
            metadata=dict(self.metadata),
            snapshot=arm.format_time(moment),
            copy_info=copy.deepcopy(self.copy_info),
            version=self.version,
        )
        self.snapshots.append(snapshot)
        return snapshot

    def find_snapshot(self, snapshot: str) -> Blob | None:
        return next((s for s in self.snapshots if s.snapshot == snapshot), None)

    def summary(self) -> dict[str, Any]:
        """Secret-free, content-free facts (journal, ``/_sim/state``): size and SHA-256, never the bytes."""
        facts: dict[str, Any] = {
            "name": self.name,
            "size": self.size,
            "sha256": self.sha256,
            "contentType": self.content_type,
            "etag": self.etag,
            "lastModified": arm.format_time(self.last_modified),
        }
        if self.snapshot is not None:
            facts["snapshot"] = self.snapshot
        else:
            facts["snapshots"] = [s.snapshot for s in self.snapshots]
        if self.copy_info is not None:
            facts["copy"] = {k: v for k, v in self.copy_info.items() if k != "completion_time"}
        return facts


class BlobContainer:
    """One container. ``blob_count`` is scenario data for the data plane; ARM does not show it."""

    def __init__(
        self,
        account_id: str,
        name: str,
        *,
        public_access: str = "None",
        metadata: dict[str, str] | None = None,
        created: datetime,
        blob_count: int = 0,
    ) -> None:
        if not valid_container_name(name):
            raise errors.invalid_values("containerName")
        self.account_id = account_id
        self.name = name
        self.public_access = canonical_public_access(public_access)
        self.metadata = _validate_metadata(metadata)
        self.last_modified = created
        self.blob_count = blob_count
        self.legal_hold: list[LegalHoldTag] = []
        self.legal_hold_append_writes_all: bool | None = None
        self.immutability: ImmutabilityPolicy | None = None
        self.access_policies: list[StoredAccessPolicy] = []
        self.blobs: dict[str, Blob] = {}  # name (case-sensitive, as in Azure) → blob (data plane)
        self.uncommitted_blocks: dict[str, dict[str, bytes]] = {}  # blob name → block id → bytes (Put Block)
        self._version = 0

    @property
    def id(self) -> str:
        return f"{self.account_id}/blobServices/default/containers/{self.name}"

    @property
    def etag(self) -> str:
        return f'"0x{_ticks(self.last_modified) + self._version:X}"'

    @property
    def has_legal_hold(self) -> bool:
        return bool(self.legal_hold)

    @property
    def legal_hold_tags(self) -> list[str]:
        return [t.tag for t in self.legal_hold]

    def touch(self, when: datetime) -> None:
        self.last_modified = when
        self._version += 1

    # ----------------------------------------------------------------- wire shapes
    def _properties(self) -> dict[str, Any]:
        props: dict[str, Any] = {
            "publicAccess": self.public_access,
            "leaseStatus": "Unlocked",
            "leaseState": "Available",
            "lastModifiedTime": blob_time(self.last_modified),
            "defaultEncryptionScope": "$account-encryption-key",
            "denyEncryptionScopeOverride": False,
            "deleted": False,
            "remainingRetentionDays": 0,
        }
        if self.metadata:
            props["metadata"] = dict(self.metadata)
        return props

    def list_item(self) -> dict[str, Any]:
        """A ``value`` entry of ``GET …/containers`` (BlobContainersList)."""
        props = self._properties()
        props["hasImmutabilityPolicy"] = self.immutability is not None
        props["hasLegalHold"] = self.has_legal_hold
        return {
            "id": self.id,
            "name": self.name,
            "type": CONTAINER_TYPE,
            "etag": self.etag,
            "properties": props,
        }

    def to_arm(self) -> dict[str, Any]:
        """``GET …/containers/{name}`` (BlobContainersGet): the policy and the legal hold in full."""
        props = self._properties()
        if self.immutability is not None:
            props["immutabilityPolicy"] = {
                "etag": self.immutability.etag,
                "properties": self.immutability.properties(),
                "updateHistory": copy.deepcopy(self.immutability.history),
            }
        props["legalHold"] = {
            "hasLegalHold": self.has_legal_hold,
            "tags": [t.to_arm() for t in self.legal_hold],
        }
        props["hasImmutabilityPolicy"] = self.immutability is not None
        props["hasLegalHold"] = self.has_legal_hold
        return {
            "id": self.id,
            "name": self.name,
            "type": CONTAINER_TYPE,
            "etag": self.etag,
            "properties": props,
        }

    def patch_answer(self) -> dict[str, Any]:
        """``PATCH …/containers/{name}`` answers the resource without etag or lease (BlobContainersPatch)."""
        return {
            "id": self.id,
            "name": self.name,
            "type": CONTAINER_TYPE,
            "properties": {
                "metadata": dict(self.metadata),
                "publicAccess": self.public_access,
                "hasImmutabilityPolicy": self.immutability is not None,
                "hasLegalHold": self.has_legal_hold,
            },
        }

    def legal_hold_answer(self) -> dict[str, Any]:
        body: dict[str, Any] = {"hasLegalHold": self.has_legal_hold, "tags": self.legal_hold_tags}
        if self.legal_hold_append_writes_all is not None:
            body["allowProtectedAppendWritesAll"] = self.legal_hold_append_writes_all
        return body

    def policy_answer(self) -> dict[str, Any]:
        assert self.immutability is not None
        return {
            "id": f"{self.id}/immutabilityPolicies/default",
            "name": "default",
            "type": IMMUTABILITY_POLICY_TYPE,
            "etag": self.immutability.etag,
            "properties": self.immutability.properties(),
        }

    # ----------------------------------------------------------------- changes
    def apply_update(self, body: dict[str, Any], *, public_access_allowed: bool, when: datetime) -> None:
        """Apply a ``PATCH`` body atomically: ``properties.publicAccess`` and ``properties.metadata`` (the
        whole metadata set is replaced, as the blob service does)."""
        props = body.get("properties") or {}
        if not isinstance(props, dict):
            raise errors.invalid_request_content("properties must be a JSON object")
        public_access = self.public_access
        if "publicAccess" in props:
            public_access = canonical_public_access(props["publicAccess"])
            if public_access != "None" and not public_access_allowed:
                raise errors.public_access_not_permitted()
        metadata = _validate_metadata(props["metadata"]) if "metadata" in props else self.metadata
        self.public_access, self.metadata = public_access, metadata
        self.touch(when)

    def set_access_policies(
        self,
        policies: list[StoredAccessPolicy],
        *,
        public_access: str,
        public_access_allowed: bool,
        when: datetime,
    ) -> None:
        """Set Container ACL: replace the whole set of stored access policies and the public access level
        (Azure makes the container private when the request names no public access)."""
        public_access = canonical_public_access(public_access)
        if public_access != "None" and not public_access_allowed:
            raise errors.public_access_not_permitted()
        if len(policies) > MAX_STORED_ACCESS_POLICIES:
            raise ValueError(f"at most {MAX_STORED_ACCESS_POLICIES} stored access policies per container")
        if len({p.id for p in policies}) != len(policies):
            raise ValueError("stored access policy ids must be unique")
        self.access_policies = list(policies)
        self.public_access = public_access
        self.touch(when)

    @staticmethod
    def _tags(body: dict[str, Any]) -> list[str]:
        tags = body.get("tags")
        if not isinstance(tags, list) or not tags:
            raise errors.invalid_values("tags")
        if not all(isinstance(t, str) and _LEGAL_HOLD_TAG.match(t) for t in tags):
            raise errors.invalid_values("tags")
        return list(dict.fromkeys(t.lower() for t in tags))  # the resource provider lower-cases tags

    def set_legal_hold(self, body: dict[str, Any], *, when: datetime, principal: str, tenant_id: str) -> None:
        tags = self._tags(body)
        append_all = body.get("allowProtectedAppendWritesAll")
        if append_all is not None and not isinstance(append_all, bool):
            raise errors.invalid_values("allowProtectedAppendWritesAll")
        new = [t for t in tags if t not in self.legal_hold_tags]
        if len(self.legal_hold) + len(new) > MAX_LEGAL_HOLD_TAGS:
            raise errors.invalid_values("tags")
        self.legal_hold.extend(LegalHoldTag(t, when, principal, tenant_id) for t in new)
        if append_all is not None:
            self.legal_hold_append_writes_all = append_all
        self.touch(when)

    def clear_legal_hold(self, body: dict[str, Any], *, when: datetime) -> None:
        tags = set(self._tags(body))
        self.legal_hold = [t for t in self.legal_hold if t.tag not in tags]
        if not self.legal_hold:
            self.legal_hold_append_writes_all = None
        self.touch(when)

    def put_immutability_policy(
        self,
        body: dict[str, Any] | None,
        *,
        if_match: str | None,
        when: datetime,
        principal: str,
        tenant_id: str,
    ) -> None:
        """Create or update the unlocked time-based retention policy (``PUT …/immutabilityPolicies/default``).

        ``If-Match``: ``*`` needs an existing policy, an ETag must equal the current one (else 412)."""
        current = self.immutability
        if if_match is not None and if_match.strip() != "*":
            if current is None or if_match.strip() != current.etag:
                raise errors.condition_not_met()
        elif if_match is not None and current is None:
            raise errors.condition_not_met()
        if current is not None and current.state == "Locked":
            raise errors.immutability_policy_locked()
        props = (body or {}).get("properties")
        if not isinstance(props, dict):
            raise errors.invalid_values("properties")
        days = props.get("immutabilityPeriodSinceCreationInDays")
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_IMMUTABILITY_DAYS:
            raise errors.invalid_values("immutabilityPeriodSinceCreationInDays")
        append = props.get("allowProtectedAppendWrites")
        append_all = props.get("allowProtectedAppendWritesAll")
        for name, value in (
            ("allowProtectedAppendWrites", append),
            ("allowProtectedAppendWritesAll", append_all),
        ):
            if value is not None and not isinstance(value, bool):
                raise errors.invalid_values(name)
        if append and append_all:
            raise errors.invalid_values("allowProtectedAppendWrites", "allowProtectedAppendWritesAll")
        policy = ImmutabilityPolicy(
            days=days,
            allow_protected_append_writes=append,
            allow_protected_append_writes_all=append_all,
            version=(current.version + 1) if current else 0,
            updated=when,
            history=list(current.history) if current else [],
        )
        entry: dict[str, Any] = {"update": "put", "immutabilityPeriodSinceCreationInDays": days}
        if append is not None:
            entry["allowProtectedAppendWrites"] = append
        if append_all is not None:
            entry["allowProtectedAppendWritesAll"] = append_all
        entry.update(
            {"timestamp": arm.format_time(when), "objectIdentifier": principal, "tenantId": tenant_id}
        )
        policy.history.append(entry)
        self.immutability = policy
        self.touch(when)

    def lock_immutability_policy(
        self, *, if_match: str | None, when: datetime, principal: str, tenant_id: str
    ) -> None:
        """``POST …/immutabilityPolicies/default/lock``: "Sets the ImmutabilityPolicy to Locked state. The
        only action allowed on a Locked policy is ExtendImmutabilityPolicy action. ETag in If-Match is
        required for this operation." (azure-rest-api-specs, Microsoft.Storage blob.json,
        BlobContainers_LockImmutabilityPolicy). Without a policy there is nothing to lock (404); a missing
        If-Match is refused (400) and ``*`` is not an ETag of the policy (412) — the stricter reading, since
        locking cannot be undone."""
        current = self.immutability
        if current is None:
            raise errors.immutability_policy_not_found()
        if if_match is None or not if_match.strip():
            raise errors.missing_if_match()
        if if_match.strip() != current.etag:
            raise errors.condition_not_met()
        if current.state == "Locked":
            raise errors.immutability_policy_locked()
        current.state = "Locked"
        current.version += 1
        current.updated = when
        current.history.append(
            {
                "update": "lock",
                "immutabilityPeriodSinceCreationInDays": current.days,
                "timestamp": arm.format_time(when),
                "objectIdentifier": principal,
                "tenantId": tenant_id,
            }
        )
        self.touch(when)


class BlobService:
    """``blobServices/default`` of one account: its properties and its containers."""

    def __init__(self, account_id: str, properties: dict[str, Any] | None = None) -> None:
        self.account_id = account_id
        self.properties = validate_service_properties(
            arm.merge_patch(default_service_properties(), properties or {})
        )
        self.containers: dict[str, BlobContainer] = {}  # lower-cased name → container

    @property
    def id(self) -> str:
        return f"{self.account_id}/blobServices/default"

    def to_arm(self, sku: dict[str, str]) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": "default",
            "type": BLOB_SERVICE_TYPE,
            "properties": copy.deepcopy(self.properties),
            "sku": dict(sku),
        }

    def set_properties(self, body: dict[str, Any]) -> None:
        """``PUT …/blobServices/default``: each property given replaces the stored one; properties left out
        keep their value (the resource provider treats the PUT as a partial update)."""
        props = body.get("properties")
        if not isinstance(props, dict):
            raise errors.invalid_values("properties")
        self.properties = validate_service_properties({**self.properties, **props})

    def add_container(self, container: BlobContainer) -> BlobContainer:
        if container.name.lower() in self.containers:
            raise ValueError(f"container {container.name!r} already exists")
        self.containers[container.name.lower()] = container
        return container

    def container(self, name: str) -> BlobContainer:
        found = self.containers.get(name.lower())
        if found is None:
            raise errors.container_not_found()
        return found

    def list_containers(self) -> list[BlobContainer]:
        return sorted(self.containers.values(), key=lambda c: c.name)
