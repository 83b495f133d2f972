"""The evidence port handed to forensics.* actions: look a capture up by key, record one with its audit event.

Each record inserts the evidence row and appends ``evidence.captured`` to the audit chain in one
transaction, so the chain of custody (what, from where, where kept, SHA-256, size) is tamper-evident.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from irflow import clock
from irflow.audit import AuditChain
from irflow.redaction import fingerprint
from irflow.store.db import Database
from irflow.store.models import Evidence
from irflow.store.unique import insert_unique

KINDS = ("resource_state", "blob_copy", "log_export", "notice_copy")


class EvidenceRecorder:
    def __init__(self, db: Database) -> None:
        self.db = db

    def exists(self, dedupe_key: str) -> bool:
        with self.db.transaction() as session:
            return session.scalar(select(Evidence.id).where(Evidence.dedupe_key == dedupe_key)) is not None

    def record(
        self,
        *,
        incident_id: str,
        kind: str,
        source: str,
        location: str,
        data: bytes | None,
        sha256: str,
        size: int,
        dedupe_key: str,
        metadata: dict[str, Any],
        actor: str,
    ) -> str:
        """Store one piece of evidence (``data`` is JSON kept in the database, or None) and audit it.
        Returns the id; an existing capture with the same ``dedupe_key`` is returned, not duplicated."""
        with self.db.transaction() as session:
            return capture(
                session,
                incident_id=incident_id,
                kind=kind,
                source=source,
                location=location,
                data=data,
                sha256=sha256,
                size=size,
                dedupe_key=dedupe_key,
                metadata=metadata,
                actor=actor,
            )


def capture(
    session: Session,
    *,
    incident_id: str,
    kind: str,
    source: str,
    location: str,
    data: bytes | None,
    sha256: str,
    size: int,
    dedupe_key: str,
    metadata: dict[str, Any],
    actor: str,
) -> str:
    """Insert one evidence row and its ``evidence.captured`` event in the caller's transaction; the id.

    Idempotent on ``dedupe_key``, also against a concurrent capture: the existing row's id is returned and
    nothing is written."""
    if kind not in KINDS:
        raise ValueError(f"unknown evidence kind {kind!r}")
    evidence = Evidence(
        incident_id=incident_id,
        kind=kind,
        source=source,
        location=location,
        sha256=sha256,
        size=size,
        content=data.decode("utf-8") if data is not None else None,
        captured_at=clock.now(),
        dedupe_key=dedupe_key,
        meta=dict(metadata),
    )
    evidence, created = insert_unique(
        session, evidence, select(Evidence).where(Evidence.dedupe_key == dedupe_key)
    )
    if not created:
        return evidence.id
    AuditChain().append(
        session,
        actor=actor,
        type="evidence.captured",
        incident_id=incident_id,
        payload={
            "evidence_id": evidence.id,
            "kind": kind,
            # Blob names may hold PHI: the evidence row keeps them sealed, the trail their fingerprints.
            "source_fingerprint": fingerprint(source),
            "location_fingerprint": fingerprint(location),
            "sha256": sha256,
            "size": size,
        },
    )
    return evidence.id
