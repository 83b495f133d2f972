"""The audit trail: events, and verification of the hash chain."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from irflow.audit import AuditChain
from irflow.store.db import Database
from irflow.store.models import AuditEvent


class AuditFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    incident_id: str | None = Field(default=None, max_length=36)
    after_seq: int = Field(default=0, ge=0, le=2**62, description="Only events after this sequence number.")
    limit: int = Field(default=100, ge=1, le=1000)


class AuditEventView(BaseModel):
    seq: int
    ts: datetime
    actor: str
    incident_id: str | None
    type: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEventView]
    total: int
    next_after_seq: int | None = Field(description="Pass as after_seq for the next page; null at the end.")


class ChainVerification(BaseModel):
    ok: bool
    events: int
    head_seq: int
    first_bad_seq: int | None
    reason: str | None
    description: str


def list_events(db: Database, query: AuditFilter) -> AuditPage:
    conditions = [AuditEvent.seq > query.after_seq]
    if query.incident_id:
        conditions.append(AuditEvent.incident_id == query.incident_id)
    with db.transaction() as session:
        total = session.execute(select(func.count()).select_from(AuditEvent).where(*conditions)).scalar_one()
        rows = list(
            session.execute(
                select(AuditEvent).where(*conditions).order_by(AuditEvent.seq).limit(query.limit)
            ).scalars()
        )
    items = [
        AuditEventView(
            seq=e.seq,
            ts=e.ts,
            actor=e.actor,
            incident_id=e.incident_id,
            type=e.type,
            payload=json.loads(e.payload),
            prev_hash=e.prev_hash,
            hash=e.hash,
        )
        for e in rows
    ]
    more = total > len(items)
    return AuditPage(items=items, total=total, next_after_seq=items[-1].seq if more and items else None)


def verify_chain(db: Database) -> ChainVerification:
    with db.transaction() as session:
        report = AuditChain().verify(session)
    return ChainVerification(
        ok=report.ok,
        events=report.events,
        head_seq=report.head_seq,
        first_bad_seq=report.first_bad_seq,
        reason=report.reason,
        description=report.describe(),
    )


def record_session_event(
    db: Database, event: Literal["signed_in", "signed_out"], *, actor: str, payload: dict[str, Any]
) -> None:
    """A dashboard sign-in or sign-out, in the audit trail under the identity's actor name (ids only)."""
    with db.transaction() as session:
        AuditChain().append(session, actor=actor, type=f"ui.{event}", payload=payload)
