"""Anchors of the audit chain outside the database (WORM blobs).

The hash chain alone cannot tell a rewrite of its tail made together with the ``audit_head`` row: whoever
holds the database can recompute every hash after the point they changed. An anchor closes that gap: the
chain head (seq and hash) is written as a blob into a container of an evidence storage account whose
time-based immutability policy is *locked*, so no one (irflow included) can overwrite or delete it before
the retention period ends. Each anchor is itself an ``audit.anchored`` event. :func:`verify_with_anchors`
compares the chain with every anchor: an event that an anchor names and that is missing or has another
hash is a rewrite before the last anchor. Events after the last anchor are only as safe as the database
until the next anchor — anchor periodically (:func:`anchor_chain` is the callable a worker schedules).

Azure rules relied on (https://learn.microsoft.com/azure/storage/blobs/immutable-time-based-retention-policy-overview):
a locked time-based retention policy cannot be deleted or shortened, only extended; blobs under it can be
created and read, not modified or deleted until the retention interval of each blob has passed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from irflow import clock
from irflow.actions.base import ActionError, ResourceMissing, azure_errors
from irflow.audit import AuditChain, ChainReport, canonical_json
from irflow.audit.chain import HEAD_ROW_ID, format_ts
from irflow.domain.resource_id import ResourceId
from irflow.settings import Settings
from irflow.store.db import Database
from irflow.store.models import AuditEvent, AuditHead

ANCHOR_EVENT = "audit.anchored"
CONTAINER_WRITE = "Microsoft.Storage/storageAccounts/blobServices/containers/write"
CONTAINER_READ = "Microsoft.Storage/storageAccounts/blobServices/containers/read"
POLICY_WRITE = "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies/write"
POLICY_LOCK = "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies/lock/action"
BLOB_WRITE = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write"
BLOB_READ = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"
ACCOUNT_READ = "Microsoft.Storage/storageAccounts/read"


class AnchorError(RuntimeError):
    """Anchoring or reading anchors failed; the message is safe to show."""


@dataclass(frozen=True)
class AnchorConfig:
    account_id: str  # ARM id of the evidence storage account
    container: str
    retention_days: int
    prefix: str

    @classmethod
    def from_settings(cls, settings: Settings) -> AnchorConfig | None:
        if not settings.anchor_account_id:
            return None
        return cls(
            account_id=settings.anchor_account_id,
            container=settings.anchor_container,
            retention_days=settings.anchor_retention_days,
            prefix=settings.anchor_prefix.strip("/"),
        )


@dataclass(frozen=True)
class Anchor:
    """What one anchor blob holds: the chain head it saw."""

    seq: int
    hash: str
    event_ts: str
    anchored_at: str

    def to_bytes(self) -> bytes:
        return canonical_json({"version": 1, **asdict(self)}).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Anchor:
        try:
            doc = json.loads(data)
            return cls(
                seq=int(doc["seq"]),
                hash=str(doc["hash"]),
                event_ts=str(doc["event_ts"]),
                anchored_at=str(doc["anchored_at"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise AnchorError(f"an anchor blob is not an irflow anchor: {exc}") from None


@dataclass(frozen=True)
class AnchorResult:
    anchor: Anchor
    blob: str
    created: bool  # False when the head was already anchored


@dataclass
class AnchoredReport:
    chain: ChainReport
    anchors: int = 0
    last_anchor_seq: int | None = None
    first_bad_seq: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.problems

    def describe(self) -> list[str]:
        lines = [self.chain.describe()]
        if self.anchors:
            lines.append(f"anchors: {self.anchors} checked, last anchors event #{self.last_anchor_seq}")
        else:
            lines.append("anchors: none found")
        lines.extend(self.problems)
        return lines


class AnchorStore:
    """The anchor container of the evidence account, through azure-mgmt-storage and azure-storage-blob."""

    def __init__(self, clients: Any, config: AnchorConfig) -> None:
        self.clients = clients
        self.config = config
        self.rid = ResourceId.parse(config.account_id)
        self.scope = f"{config.account_id}/blobServices/default/containers/{config.container}"
        self._container_client: Any = None

    def blob_name(self, seq: int) -> str:
        return f"{self.config.prefix}/{seq:012d}.json" if self.config.prefix else f"{seq:012d}.json"

    def _containers(self) -> Any:
        return self.clients.storage(self.rid.subscription_id).blob_containers

    def _container(self) -> Any:
        if self._container_client is None:
            with _azure(ACCOUNT_READ, self.config.account_id):
                account = self.clients.storage(self.rid.subscription_id).storage_accounts.get_properties(
                    self.rid.resource_group, self.rid.name
                )
            endpoint = ((account.as_dict().get("properties") or {}).get("primaryEndpoints") or {}).get("blob")
            if not endpoint:
                raise AnchorError(f"{self.config.account_id} has no blob endpoint")
            self._container_client = self.clients.blob_service(endpoint).get_container_client(
                self.config.container
            )
        return self._container_client

    def ensure_worm(self) -> None:
        """The container exists under a locked time-based retention policy; creates and locks it if not.
        A locked policy shorter than ``retention_days`` is accepted (it cannot be shortened, and extending
        it is an operator's decision); an unlocked one is set to ``retention_days`` (or kept, when longer)
        and locked."""
        from azure.core import MatchConditions
        from azure.mgmt.storage.models import ImmutabilityPolicy

        rg, account, name = self.rid.resource_group, self.rid.name, self.config.container
        containers = self._containers()
        try:
            with azure_errors(permission=CONTAINER_READ, scope=self.scope):
                found = containers.get(rg, account, name)
        except ResourceMissing:
            # Created on the data plane (Create Container, private), as forensics.snapshot_containers does.
            with _azure(CONTAINER_WRITE, self.scope):
                self._container().create_container()
                found = containers.get(rg, account, name)
        policy = found.immutability_policy
        if policy is not None and policy.state == "Locked":
            return
        # Never shorten what someone set before us: the longer of the existing period and ours is locked.
        days = max(
            self.config.retention_days,
            (policy.immutability_period_since_creation_in_days or 0) if policy else 0,
        )
        with _azure(POLICY_WRITE, self.scope):
            written = containers.create_or_update_immutability_policy(
                rg, account, name, ImmutabilityPolicy(immutability_period_since_creation_in_days=days)
            )
        with _azure(POLICY_LOCK, self.scope):
            locked = containers.lock_immutability_policy(
                rg, account, name, etag=written.etag, match_condition=MatchConditions.IfNotModified
            )
        if locked.state != "Locked":
            raise AnchorError(f"the immutability policy of {self.scope} did not lock (state {locked.state})")

    def write(self, anchor: Anchor) -> bool:
        """Create the anchor blob; never overwrites. Returns False when the same anchor already exists;
        raises when a different one does (the chain was rewritten since)."""
        from azure.core.exceptions import ResourceExistsError

        name = self.blob_name(anchor.seq)
        with _azure(BLOB_WRITE, f"{self.scope}/{name}"):
            try:
                self._container().upload_blob(name, anchor.to_bytes(), overwrite=False)
                return True
            except ResourceExistsError:
                pass
        kept = self.read(name)
        if kept.hash != anchor.hash:
            raise AnchorError(
                f"event #{anchor.seq} was anchored on {kept.anchored_at} with hash {kept.hash[:16]}…, "
                f"the database now says {anchor.hash[:16]}…: rewritten after it was anchored"
            )
        return False

    def read(self, name: str) -> Anchor:
        with _azure(BLOB_READ, f"{self.scope}/{name}"):
            data = self._container().download_blob(name).readall()
        return Anchor.from_bytes(data)

    def read_all(self) -> list[tuple[str, Anchor]]:
        """Every anchor under the prefix; none when the container does not exist yet."""
        prefix = f"{self.config.prefix}/" if self.config.prefix else None
        with _azure(BLOB_READ, self.scope):
            try:
                with azure_errors(permission=BLOB_READ, scope=self.scope):
                    names = sorted(b.name for b in self._container().list_blobs(name_starts_with=prefix))
            except ResourceMissing:
                return []
        return [(name, self.read(name)) for name in names]


@contextmanager
def _azure(permission: str, scope: str) -> Iterator[None]:
    """Azure failures as :class:`AnchorError` naming the permission and scope (never a traceback)."""
    from azure.core.exceptions import AzureError

    try:
        with azure_errors(permission=permission, scope=scope):
            yield
    except ActionError as exc:
        raise AnchorError(str(exc)) from None
    except AzureError as exc:  # no answer at all (connection, TLS, timeout)
        raise AnchorError(f"Azure did not answer for {scope}: {str(exc).splitlines()[0][:300]}") from None


def verify_with_anchors(db: Database, store: AnchorStore | None) -> AnchoredReport:
    """The chain's own verification, then every anchor compared with the event it names."""
    chain = AuditChain()
    with db.transaction() as session:
        report = AnchoredReport(chain=chain.verify(session))
        if store is None:
            return report
        anchors = store.read_all()
        head = session.execute(select(AuditHead).where(AuditHead.id == HEAD_ROW_ID)).scalar_one()
        stored = {name for name, _ in anchors}
        for event in session.execute(
            select(AuditEvent).where(AuditEvent.type == ANCHOR_EVENT).order_by(AuditEvent.seq)
        ).scalars():
            payload = json.loads(event.payload)
            same_place = (
                str(payload.get("account", "")).lower() == store.config.account_id.lower()
                and payload.get("container") == store.config.container
            )
            name = str(payload.get("blob", ""))
            if same_place and name not in stored:  # written under another prefix, or gone
                try:
                    anchors.append((name, store.read(name)))
                    stored.add(name)
                except AnchorError:
                    report.problems.append(
                        f"event #{event.seq} records anchor {name} that cannot be read from the container "
                        f"{store.config.container}"
                    )
                    report.first_bad_seq = report.first_bad_seq or event.seq
        for name, anchor in sorted(anchors, key=lambda item: item[1].seq):
            report.anchors += 1
            report.last_anchor_seq = anchor.seq
            event = session.get(AuditEvent, anchor.seq)
            if event is None:
                problem = (
                    f"event #{anchor.seq} anchored on {anchor.anchored_at} ({name}) is missing: the chain "
                    f"was truncated or rewritten before the last anchor (the database head is #{head.seq})"
                )
            elif event.hash != anchor.hash:
                problem = (
                    f"event #{anchor.seq} does not match its anchor of {anchor.anchored_at} ({name}): "
                    "the chain was rewritten before the last anchor"
                )
            else:
                continue
            report.problems.append(problem)
            if report.first_bad_seq is None:
                report.first_bad_seq = anchor.seq
    return report


def anchor_chain(db: Database, store: AnchorStore, *, actor: str = "system:anchor") -> AnchorResult:
    """Anchor the current chain head (the callable a scheduler runs). Refuses to anchor a chain that fails
    verification (an anchor must never bless a rewrite). When the head is already the event of the last
    anchor, nothing new is written."""
    store.ensure_worm()
    report = verify_with_anchors(db, store)
    if not report.ok:
        raise AnchorError(
            "not anchoring a chain that fails verification: " + "; ".join(report.describe()[1:])
        )
    with db.transaction() as session:
        head = session.execute(select(AuditHead).where(AuditHead.id == HEAD_ROW_ID)).scalar_one()
        event = session.get(AuditEvent, head.seq)
        if event is None:
            raise AnchorError("the audit chain is empty: nothing to anchor")
        previous = json.loads(event.payload) if event.type == ANCHOR_EVENT else None
        anchor = Anchor(
            seq=event.seq, hash=event.hash, event_ts=format_ts(event.ts), anchored_at=format_ts(clock.now())
        )
    if previous is not None:
        return AnchorResult(anchor=store.read(previous["blob"]), blob=previous["blob"], created=False)
    # The blob is written outside the transaction (no Azure call while holding the chain's lock); should
    # the append below fail, the blob still anchors a true head, and the next run appends the event.
    name = store.blob_name(anchor.seq)
    created = store.write(anchor)
    with db.transaction() as session:
        AuditChain().append(
            session,
            actor=actor,
            type=ANCHOR_EVENT,
            payload={
                "anchored_seq": anchor.seq,
                "anchored_hash": anchor.hash,
                "account": store.config.account_id,
                "container": store.config.container,
                "blob": name,
            },
        )
    return AnchorResult(anchor=anchor, blob=name, created=created)


def anchor_if_configured(
    db: Database, clients: Any, settings: Settings, *, actor: str = "system:anchor"
) -> AnchorResult | None:
    """The scheduled job's body: anchor now when ``IRFLOW_ANCHOR_ACCOUNT_ID`` is set, else do nothing."""
    config = AnchorConfig.from_settings(settings)
    if config is None:
        return None
    return anchor_chain(db, AnchorStore(clients, config), actor=actor)
