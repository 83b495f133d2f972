"""The tamper-evident audit trail: an append-only hash chain of events.

``hash = sha256(prev_hash + canonical event)`` where the canonical event is the canonical JSON of
``{seq, ts, actor, incident_id, type, payload}``. Appends lock the single ``audit_head`` row, so they are
serialized across threads and processes (PostgreSQL: ``SELECT … FOR UPDATE``; SQLite: every transaction
takes the write lock first, see ``store.db``). Verification walks the chain in ``seq`` order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from irflow import clock
from irflow.redaction import redact
from irflow.store.models import AuditEvent, AuditHead

GENESIS_HASH = "0" * 64
HEAD_ROW_ID = 1


def canonical_json(value: Any) -> str:
    """Canonical JSON: sorted keys, no insignificant whitespace, UTF-8 kept, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def format_ts(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(
    *, prev_hash: str, seq: int, ts: datetime, actor: str, incident_id: str | None, type: str, payload: str
) -> str:
    body = canonical_json(
        {
            "seq": seq,
            "ts": format_ts(ts),
            "actor": actor,
            "incident_id": incident_id,
            "type": type,
            "payload": payload,
        }
    )
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    events: int
    head_seq: int
    first_bad_seq: int | None = None
    reason: str | None = None

    def describe(self) -> str:
        if self.ok:
            return f"audit chain intact: {self.events} events, head #{self.head_seq}"
        return f"audit chain broken at event #{self.first_bad_seq}: {self.reason}"


_DEFERRED = "irflow.audit.deferred"


@dataclass(frozen=True)
class _Pending:
    actor: str
    type: str
    incident_id: str | None
    payload: str


def defer_appends(session: Session) -> None:
    """From now on, :meth:`AuditChain.append` on *session* collects its events;
    :meth:`AuditChain.append_deferred` writes them (the unit of work does, last before commit: see
    ``irflow.engine.uow``)."""
    session.info.setdefault(_DEFERRED, [])


class AuditChain:
    """Appends to and verifies the chain. Call :meth:`append` inside the caller's transaction, so the
    event commits (or not) together with the state change it records."""

    def append(
        self,
        session: Session,
        *,
        actor: str,
        type: str,
        payload: Mapping[str, Any] | None = None,
        incident_id: str | None = None,
    ) -> AuditEvent | None:
        """Append one event now; in a session whose appends are deferred, collect it (and return None).

        The payload is redacted and made canonical here, so a collected event is what the caller saw."""
        event = _Pending(actor, type, incident_id, canonical_json(redact(dict(payload or {}))))
        deferred = session.info.get(_DEFERRED)
        if deferred is not None:
            deferred.append(event)
            return None
        return self._write(session, [event])[0]

    def append_deferred(self, session: Session) -> int:
        """Write the events collected on *session* (one head lock, one batch); how many."""
        pending = session.info.pop(_DEFERRED, None) or []
        if pending:
            self._write(session, pending)
        return len(pending)

    @staticmethod
    def _write(session: Session, pending: list[_Pending]) -> list[AuditEvent]:
        head = session.execute(
            select(AuditHead).where(AuditHead.id == HEAD_ROW_ID).with_for_update()
        ).scalar_one()
        seq, prev_hash = head.seq, head.hash
        written = []
        for item in pending:
            seq += 1
            ts = clock.now()
            digest = event_hash(
                prev_hash=prev_hash,
                seq=seq,
                ts=ts,
                actor=item.actor,
                incident_id=item.incident_id,
                type=item.type,
                payload=item.payload,
            )
            written.append(
                AuditEvent(
                    seq=seq,
                    ts=ts,
                    actor=item.actor,
                    incident_id=item.incident_id,
                    type=item.type,
                    payload=item.payload,
                    prev_hash=prev_hash,
                    hash=digest,
                )
            )
            prev_hash = digest
        session.add_all(written)
        head.seq, head.hash = seq, prev_hash
        session.flush()
        return written

    def events(self, session: Session, *, incident_id: str | None = None) -> Iterator[AuditEvent]:
        query = select(AuditEvent).order_by(AuditEvent.seq)
        if incident_id is not None:
            query = query.where(AuditEvent.incident_id == incident_id)
        yield from session.execute(query.execution_options(yield_per=1000)).scalars()

    def verify(self, session: Session) -> ChainReport:
        head = session.execute(select(AuditHead).where(AuditHead.id == HEAD_ROW_ID)).scalar_one()
        expected_seq, prev_hash, count = 1, GENESIS_HASH, 0
        for event in self.events(session):
            if event.seq != expected_seq:
                missing = (
                    f"#{expected_seq}"
                    if event.seq == expected_seq + 1
                    else f"#{expected_seq}..#{event.seq - 1}"
                )
                return self._broken(
                    count,
                    head,
                    expected_seq,
                    f"event {missing} missing before #{event.seq} (deleted or renumbered)",
                )
            if event.prev_hash != prev_hash:
                return self._broken(
                    count,
                    head,
                    event.seq,
                    "prev_hash does not match the previous event (reordered or replaced)",
                )
            recomputed = event_hash(
                prev_hash=event.prev_hash,
                seq=event.seq,
                ts=event.ts,
                actor=event.actor,
                incident_id=event.incident_id,
                type=event.type,
                payload=event.payload,
            )
            if recomputed != event.hash:
                return self._broken(count, head, event.seq, "content does not match its hash (edited)")
            prev_hash, expected_seq, count = event.hash, expected_seq + 1, count + 1
        last_seq = expected_seq - 1
        if head.seq != last_seq or head.hash != prev_hash:
            return self._broken(
                count,
                head,
                last_seq + 1,
                f"missing: the chain head is #{head.seq}, the table ends at #{last_seq}",
            )
        return ChainReport(ok=True, events=count, head_seq=head.seq)

    @staticmethod
    def _broken(count: int, head: AuditHead, seq: int, reason: str) -> ChainReport:
        return ChainReport(ok=False, events=count, head_seq=head.seq, first_bad_seq=seq, reason=reason)
