"""Incident facts, the deadlines they drive, and notices recorded as sent.

Every input is a typed pydantic command validated here, so the CLI, the API and the dashboard share one set
of rules. Changing a fact is one transaction: the incident row, the recomputed deadlines, and audit events
carrying the old and new values and every old and new due date. Facts that do not make a valid whole (state
counts above the total, a breach that starts after discovery, a discovery later than the first detection
without a reason...) raise ``ValueError`` (pydantic's ``ValidationError`` is one) and write nothing.

The discovery date (HIPAA's day 0) is the calendar date of ``discovered_at`` in the incident's time zone, or
the organisation's (setting ``IRFLOW_TIMEZONE``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from irflow import clock
from irflow.audit import AuditChain
from irflow.compliance import IncidentFacts, ObligationKind, SentNotice, compute_obligations
from irflow.compliance.clock import pick_recipient
from irflow.compliance.models import US, LawEnforcementDelay, Role, discovery_date, normalize_state, zone
from irflow.engine.evidence import capture
from irflow.engine.uow import unit_of_work
from irflow.store.db import Database
from irflow.store.models import Deadline, Incident, NoticeSent, RiskAssessment

ROLES = {"ce": "covered_entity", "ba": "business_associate"}
DEFAULT_TIMEZONE = "America/New_York"

NonNegativeInt = Annotated[int, Field(ge=0)]

# Facts that always have a value: an explicit null is refused rather than stored.
_NOT_NULLABLE = ("role", "affected_by_state", "hipaa", "ca_facility", "urgent", "deceased_with_next_of_kin")


def _organisation_timezone() -> str:
    from irflow.settings import get_settings

    return get_settings().timezone


class FactsUpdate(BaseModel):
    """The facts to change; a field left unset keeps its value, ``None`` clears an optional one."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    role: Role | None = None
    # A naive time is read in the incident's time zone (or the organisation's).
    discovered_at: datetime | None = None
    # Why discovery is later than the first detection (required then).
    discovery_reason: str | None = Field(default=None, min_length=1, max_length=2000)
    timezone: str | None = Field(default=None, max_length=64)
    affected_total: NonNegativeInt | None = None
    affected_by_state: dict[str, NonNegativeInt] | None = None
    breach_start: date | None = None
    breach_end: date | None = None
    law_enforcement_delay: LawEnforcementDelay | None = None
    ba_contract_days: NonNegativeInt | None = None
    hipaa: bool | None = None
    ca_facility: bool | None = None
    ba_agent_discovered_on: date | None = None
    out_of_date_addresses: NonNegativeInt | None = None
    urgent: bool | None = None
    deceased_with_next_of_kin: NonNegativeInt | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            zone(value)
        return value

    @field_validator("affected_by_state", mode="before")
    @classmethod
    def _states(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        result: dict[str, object] = {}
        for key, count in value.items():
            if not isinstance(key, str):
                raise ValueError(f"state code must be a string, got {key!r}")
            code = normalize_state(key)
            if code in result:
                raise ValueError(f"state {code} given twice")
            result[code] = count
        return result

    @model_validator(mode="after")
    def _no_null_for_required(self) -> Self:
        for name in _NOT_NULLABLE:
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be cleared")
        return self


@dataclass(frozen=True)
class FactsChange:
    facts: dict[str, Any]
    changed: dict[str, dict[str, Any]]
    deadlines: list[dict[str, Any]]
    deadline_changes: list[dict[str, Any]]
    warnings: list[str]


def _facts_of(incident: Incident) -> dict[str, Any]:
    return {
        "role": incident.role,
        "discovered_at": incident.discovered_at.isoformat() if incident.discovered_at else None,
        "discovery_reason": incident.discovery_reason,
        "timezone": incident.timezone,
        "affected_total": incident.affected_total,
        "affected_by_state": dict(incident.affected_by_state or {}),
        "breach_start": incident.breach_start.isoformat() if incident.breach_start else None,
        "breach_end": incident.breach_end.isoformat() if incident.breach_end else None,
        "law_enforcement_delay": incident.law_enforcement_delay,
        "ba_contract_days": incident.ba_contract_days,
        "hipaa": incident.hipaa,
        "ca_facility": incident.ca_facility,
        "ba_agent_discovered_on": (
            incident.ba_agent_discovered_on.isoformat() if incident.ba_agent_discovered_on else None
        ),
        "out_of_date_addresses": incident.out_of_date_addresses,
        "urgent": incident.urgent,
        "deceased_with_next_of_kin": incident.deceased_with_next_of_kin,
    }


def _audited(facts: dict[str, Any]) -> dict[str, Any]:
    """The facts as the audit chain keeps them: the free-text reason only as "recorded"."""
    return {**facts, "discovery_reason": "recorded" if facts.get("discovery_reason") else None}


def incident_timezone(incident: Incident) -> str:
    return incident.timezone or _organisation_timezone()


def compliance_facts(incident: Incident, sent: tuple[SentNotice, ...] = ()) -> IncidentFacts | None:
    """The compliance clock's input, or None while discovery date or affected count is unknown."""
    if incident.discovered_at is None or incident.affected_total is None:
        return None
    return IncidentFacts(
        role=incident.role,
        discovered_on=discovery_date(incident.discovered_at, incident_timezone(incident)),
        breach_start=incident.breach_start,
        breach_end=incident.breach_end,
        affected_total=incident.affected_total,
        affected_by_state=incident.affected_by_state or {},
        law_enforcement_delay=incident.law_enforcement_delay,
        ba_contract_days=incident.ba_contract_days,
        hipaa=incident.hipaa,
        ca_facility=incident.ca_facility,
        ba_agent_discovered_on=incident.ba_agent_discovered_on,
        out_of_date_addresses=incident.out_of_date_addresses,
        urgent=incident.urgent,
        deceased_with_next_of_kin=incident.deceased_with_next_of_kin,
        sent=sent,
    )


def _sent_notices(session: Session, incident_id: str) -> tuple[SentNotice, ...]:
    rows = session.execute(select(NoticeSent).where(NoticeSent.incident_id == incident_id)).scalars()
    return tuple(
        SentNotice(kind=r.kind, jurisdiction=r.jurisdiction, recipient=r.recipient, on=r.sent_on)
        for r in rows
    )


def _check_discovery(incident: Incident) -> None:
    if incident.discovered_at is None:
        return
    if incident.discovered_at > incident.detected_at and not incident.discovery_reason:
        raise ValueError(
            f"discovered_at ({incident.discovered_at.isoformat()}) is later than the first detection "
            f"({incident.detected_at.isoformat()}): record the reason (discovery_reason); under 45 CFR "
            f"164.404(a)(2) a breach counts as discovered on the first day it is known or would have been "
            f"known with reasonable diligence"
        )


def _facts_for(session: Session, incident: Incident) -> IncidentFacts | None:
    """The clock's input for the incident's current state; None when its obligations are switched off."""
    facts = compliance_facts(incident, _sent_notices(session, incident.id))
    if incident.risk_outcome == "low_probability":
        return None  # the documented assessment switched the obligations off
    return facts


def update_facts(db: Database, incident_id: str, update: FactsUpdate, *, actor: str) -> FactsChange:
    chain = AuditChain()
    with unit_of_work(db, chain) as work:  # the incident's lock first, audit events last
        session = work.session
        incident = work.lock(Incident, incident_id)
        if incident is None:
            raise LookupError(f"no incident {incident_id}")
        before = _facts_of(incident)
        values = update.model_dump(exclude_unset=True, mode="python")
        if "timezone" in values:
            incident.timezone = values.pop("timezone")
        for name, value in values.items():
            if name == "discovered_at" and value is not None:
                if value.tzinfo is None:
                    value = value.replace(tzinfo=zone(incident_timezone(incident)))
                value = value.astimezone(UTC)
            if name == "law_enforcement_delay" and value is not None:
                value = update.law_enforcement_delay.model_dump(mode="json")  # type: ignore[union-attr]
            setattr(incident, name, value)
        _check_discovery(incident)
        facts = _facts_for(session, incident)  # raises ValueError (pydantic) on an inconsistent whole
        after = _facts_of(incident)
        changed = {
            k: {"old": _audited(before)[k], "new": _audited(after)[k]} for k in after if before[k] != after[k]
        }
        if not changed:
            return FactsChange(after, {}, _deadline_rows(session, incident_id), [], [])
        incident.updated_at = clock.now()
        chain.append(
            session,
            actor=actor,
            type="incident.facts_changed",
            incident_id=incident_id,
            payload={"changed": changed},
        )
        deadline_changes, warnings = _recompute(session, incident, facts)
        if deadline_changes:
            chain.append(
                session,
                actor=actor,
                type="deadlines.recomputed",
                incident_id=incident_id,
                payload={"changes": deadline_changes, "warnings": warnings},
            )
        return FactsChange(after, changed, _deadline_rows(session, incident_id), deadline_changes, warnings)


def _status_of(row: Deadline | None, status: str, due_changed: bool) -> str:
    # A deadline the reminders marked overdue stays so while still unmet, unless its date moved.
    if status == "open" and row is not None and row.status == "overdue" and not due_changed:
        return "overdue"
    return status


def _recompute(
    session: Session, incident: Incident, facts: IncidentFacts | None
) -> tuple[list[dict[str, Any]], list[str]]:
    existing = {
        (d.kind, d.jurisdiction, d.recipient): d
        for d in session.execute(select(Deadline).where(Deadline.incident_id == incident.id)).scalars()
    }
    result = compute_obligations(facts) if facts is not None else None
    wanted = {o.key: o for o in (result.obligations if result else ())}
    now = clock.now()
    changes = []
    for key, row in existing.items():
        if key not in wanted:
            changes.append(_change(key, row.due.isoformat(), None, row.status, None))
            session.delete(row)
    for key, obligation in wanted.items():
        row = existing.get(key)
        old_due, old_status = (row.due.isoformat(), row.status) if row else (None, None)
        due_changed = old_due != obligation.due.isoformat()
        status = _status_of(row, obligation.status.value, due_changed)
        if row is None:
            row = Deadline(incident_id=incident.id, kind=key[0], jurisdiction=key[1], recipient=key[2])
            session.add(row)
        row.due, row.basis, row.notes, row.computed_at = (
            obligation.due,
            obligation.basis,
            obligation.notes,
            now,
        )
        row.status = status
        row.status_reason = obligation.notes if status == "not_required" else None
        row.sent_on, row.outer_bound = obligation.sent_on, obligation.outer_bound
        row.outer_basis = obligation.outer_basis or None
        row.hipaa_treatment = obligation.hipaa_treatment
        if due_changed or old_status != status:
            changes.append(_change(key, old_due, obligation.due.isoformat(), old_status, status))
    session.flush()
    return changes, list(result.warnings) if result else []


def _change(
    key: tuple[str, str, str], old_due: str | None, new_due: str | None, old: str | None, new: str | None
) -> dict[str, Any]:
    change: dict[str, Any] = {"kind": key[0], "jurisdiction": key[1], "old_due": old_due, "new_due": new_due}
    if key[2]:
        change["recipient"] = key[2]
    if old != new and old is not None and new is not None:
        change["old_status"], change["new_status"] = old, new
    return change


def _deadline_rows(session: Session, incident_id: str) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Deadline)
        .where(Deadline.incident_id == incident_id)
        .order_by(Deadline.due, Deadline.kind, Deadline.jurisdiction, Deadline.recipient)
    ).scalars()
    return [
        {
            "id": d.id,
            "kind": d.kind,
            "jurisdiction": d.jurisdiction,
            "recipient": d.recipient,
            "due": d.due.isoformat(),
            "basis": d.basis,
            "notes": d.notes,
            "status": d.status,
            "sent_on": d.sent_on.isoformat() if d.sent_on else None,
            "outer_bound": d.outer_bound.isoformat() if d.outer_bound else None,
            "outer_basis": d.outer_basis,
            "hipaa_treatment": d.hipaa_treatment,
        }
        for d in rows
    ]


def incident_deadlines(db: Database, incident_id: str) -> list[dict[str, Any]]:
    with db.transaction() as session:
        if session.get(Incident, incident_id) is None:
            raise LookupError(f"no incident {incident_id}")
        return _deadline_rows(session, incident_id)


def incident_view(db: Database, incident_id: str) -> dict[str, Any]:
    """The incident with its facts, runs, deadlines and sent notices, as the CLI prints it and the API "
    "returns it."""
    with db.transaction() as session:
        incident = session.get(Incident, incident_id)
        if incident is None:
            raise LookupError(f"no incident {incident_id}")
        facts = _facts_of(incident)
        facts["discovered_on"] = (
            discovery_date(incident.discovered_at, incident_timezone(incident)).isoformat()
            if incident.discovered_at is not None
            else None
        )
        return {
            "id": incident.id,
            "title": incident.title,
            "severity": incident.severity,
            "source": incident.source,
            "status": incident.status,
            "detected_at": incident.detected_at.isoformat(),
            "facts": facts,
            "risk_outcome": incident.risk_outcome,
            "runs": [
                {"id": r.id, "playbook": r.playbook_name, "status": r.status, "dry_run": r.dry_run}
                for r in incident.runs
            ],
            "deadlines": _deadline_rows(session, incident_id),
            "notices_sent": _notice_rows(session, incident_id),
        }


# --- notices recorded as sent (45 CFR 164.414(b): the burden of proof) -------------------------------------

NoticeMethod = Literal[
    "first_class_mail",
    "email",
    "telephone",
    "web_posting",
    "media",
    "hhs_portal",
    "regulator_portal",
    "fax",
    "other",
]


class NoticeSentInput(BaseModel):
    """One notice as sent: which obligation it meets, when, how and to how many recipients."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: ObligationKind
    jurisdiction: str = US
    # The regulator, when the jurisdiction's law names more than one.
    recipient: str = Field(default="", max_length=120)
    sent_on: date
    method: NoticeMethod
    count: int = Field(ge=1, le=100_000_000)

    @field_validator("jurisdiction", mode="before")
    @classmethod
    def _jurisdiction(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().upper() != US:
            return normalize_state(value)
        return value.strip().upper() if isinstance(value, str) else value


@dataclass(frozen=True)
class NoticeCopy:
    """A copy of the notice as sent, by its SHA-256 and size. Neither its bytes nor its file name are stored:
    a letter to an individual, and often its name, holds PHI; the organisation keeps the copy, the audit chain
    pins its hash."""

    sha256: str
    size: int

    @classmethod
    def of(cls, data: bytes) -> NoticeCopy:
        return cls(sha256=hashlib.sha256(data).hexdigest(), size=len(data))

    @classmethod
    def read(cls, path: Path) -> NoticeCopy:
        """Hash the file in chunks (any size, nothing held in memory). OSError if it cannot be read."""
        digest, size = hashlib.sha256(), 0
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        return cls(sha256=digest.hexdigest(), size=size)


@dataclass(frozen=True)
class NoticeRecorded:
    notice: dict[str, Any]
    deadlines: list[dict[str, Any]]
    deadline_changes: list[dict[str, Any]]
    warnings: list[str]


def record_notice_sent(
    db: Database, incident_id: str, notice: NoticeSentInput, *, author: str, copy: NoticeCopy | None = None
) -> NoticeRecorded:
    """Record a notice as sent: its obligation becomes met (or late), the deadlines that run from its send
    date move, reminders for it stop, and the recording is audited with its author. Refuses a notice that
    matches no obligation of the incident, a date in the future or before discovery, or a second recording."""
    chain = AuditChain()
    with unit_of_work(db, chain) as work:  # the incident's lock first, audit events last
        session = work.session
        incident = work.lock(Incident, incident_id)
        if incident is None:
            raise LookupError(f"no incident {incident_id}")
        row = _obligation_row(session, incident_id, notice)
        tz = incident_timezone(incident)
        today = discovery_date(clock.now(), tz)
        if notice.sent_on > today:
            raise ValueError(f"sent on {notice.sent_on} is in the future (today is {today} in {tz})")
        already = session.scalar(
            select(NoticeSent).where(
                NoticeSent.incident_id == incident_id,
                NoticeSent.kind == row.kind,
                NoticeSent.jurisdiction == row.jurisdiction,
                NoticeSent.recipient == row.recipient,
            )
        )
        if already is not None:
            raise ValueError(f"{_label(row)} was already recorded as sent on {already.sent_on}")
        if (
            incident.affected_total is not None
            and row.kind == ObligationKind.INDIVIDUALS
            and (notice.count > incident.affected_total)
        ):
            raise ValueError(
                f"count {notice.count} is more than the {incident.affected_total} affected individuals"
            )
        record = NoticeSent(
            incident_id=incident_id,
            kind=row.kind,
            jurisdiction=row.jurisdiction,
            recipient=row.recipient,
            sent_on=notice.sent_on,
            method=notice.method,
            recipients_count=notice.count,
            author=author,
            recorded_at=clock.now(),
        )
        session.add(record)
        session.flush()
        sha = None
        if copy is not None:
            sha = copy.sha256
            record.evidence_id = capture(
                session,
                incident_id=incident_id,
                kind="notice_copy",
                source=f"copy of the {_label(row)} notice as sent",
                location="kept by the organisation; identified by its SHA-256",
                data=None,
                sha256=sha,
                size=copy.size,
                dedupe_key=f"notice-copy:{record.id}",
                metadata={"notice_id": record.id},
                actor=author,
            )
        # Raises on facts that no longer make a whole; the transaction then writes nothing.
        facts = _facts_for(session, incident)
        chain.append(
            session,
            actor=author,
            type="notice.sent_recorded",
            incident_id=incident_id,
            payload={
                "notice_id": record.id,
                "kind": row.kind,
                "jurisdiction": row.jurisdiction,
                "recipient": row.recipient,
                "sent_on": notice.sent_on.isoformat(),
                "method": notice.method,
                "count": notice.count,
                "copy_sha256": sha,
                "due": row.due.isoformat(),
            },
        )
        incident.updated_at = clock.now()
        deadline_changes, warnings = _recompute(session, incident, facts)
        if deadline_changes:
            chain.append(
                session,
                actor=author,
                type="deadlines.recomputed",
                incident_id=incident_id,
                payload={"changes": deadline_changes, "reason": f"notice sent: {_label(row)}"},
            )
        return NoticeRecorded(
            _notice_row(record, sha), _deadline_rows(session, incident_id), deadline_changes, warnings
        )


class ObligationSent(BaseModel):
    """The body of ``POST /incidents/{id}/notices/{obligation_id}/sent`` (the obligation named by id)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    on: date
    method: NoticeMethod
    count: int = Field(ge=1, le=100_000_000)


def record_obligation_sent(
    db: Database,
    incident_id: str,
    obligation_id: str,
    sent: ObligationSent,
    *,
    author: str,
    copy: NoticeCopy | None = None,
) -> NoticeRecorded:
    """:func:`record_notice_sent` for the deadline ``obligation_id`` of the incident (LookupError if none)."""
    with db.transaction() as session:
        row = session.get(Deadline, obligation_id)
        if row is None or row.incident_id != incident_id:
            raise LookupError(f"incident {incident_id} has no obligation {obligation_id}")
        notice = NoticeSentInput(
            kind=ObligationKind(row.kind),
            jurisdiction=row.jurisdiction,
            recipient=row.recipient,
            sent_on=sent.on,
            method=sent.method,
            count=sent.count,
        )
    return record_notice_sent(db, incident_id, notice, author=author, copy=copy)


def _label(row: Deadline) -> str:
    return " ".join(p for p in (row.kind, row.jurisdiction, row.recipient) if p)


def _obligation_row(session: Session, incident_id: str, notice: NoticeSentInput) -> Deadline:
    rows = {
        r.recipient: r
        for r in session.execute(
            select(Deadline).where(
                Deadline.incident_id == incident_id,
                Deadline.kind == notice.kind.value,
                Deadline.jurisdiction == notice.jurisdiction,
            )
        ).scalars()
    }
    label = f"{notice.kind.value} {notice.jurisdiction}"
    if not rows:
        raise LookupError(f"incident {incident_id} has no {label} obligation")
    return rows[pick_recipient(list(rows), notice.recipient, label)]


def _notice_row(record: NoticeSent, sha: str | None = None) -> dict[str, Any]:
    return {
        "id": record.id,
        "kind": record.kind,
        "jurisdiction": record.jurisdiction,
        "recipient": record.recipient,
        "sent_on": record.sent_on.isoformat(),
        "method": record.method,
        "count": record.recipients_count,
        "evidence_id": record.evidence_id,
        "copy_sha256": sha,
        "author": record.author,
        "recorded_at": record.recorded_at.isoformat(),
    }


def _notice_rows(session: Session, incident_id: str) -> list[dict[str, Any]]:
    from irflow.store.models import Evidence

    rows = session.execute(
        select(NoticeSent, Evidence.sha256)
        .outerjoin(Evidence, Evidence.id == NoticeSent.evidence_id)
        .where(NoticeSent.incident_id == incident_id)
        .order_by(NoticeSent.sent_on, NoticeSent.kind, NoticeSent.jurisdiction)
    ).all()
    return [_notice_row(record, sha) for record, sha in rows]


# --- risk assessment ----------------------------------------------------------------------------------------


class RiskAssessmentInput(BaseModel):
    """45 CFR 164.402(2): a breach is presumed unless four factors show a low probability of compromise."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    nature_and_extent: str = Field(
        min_length=1,
        max_length=4000,
        description="PHI involved, identifiers, likelihood of re-identification",
    )
    unauthorized_person: str = Field(
        min_length=1, max_length=4000, description="Who used or received the PHI"
    )
    acquired_or_viewed: str = Field(
        min_length=1, max_length=4000, description="Whether the PHI was actually acquired or viewed"
    )
    mitigation: str = Field(
        min_length=1, max_length=4000, description="The extent to which the risk was mitigated"
    )
    outcome: str = Field(pattern="^(notify|low_probability)$")


def record_risk_assessment(
    db: Database, incident_id: str, assessment: RiskAssessmentInput, *, author: str
) -> FactsChange:
    """Record the assessment; its outcome is an audited decision that switches the obligations on or off."""
    chain = AuditChain()
    with unit_of_work(db, chain) as work:  # the incident's lock first, audit events last
        session = work.session
        incident = work.lock(Incident, incident_id)
        if incident is None:
            raise LookupError(f"no incident {incident_id}")
        now = clock.now()
        session.add(
            RiskAssessment(incident_id=incident_id, author=author, created_at=now, **assessment.model_dump())
        )
        previous, incident.risk_outcome, incident.updated_at = incident.risk_outcome, assessment.outcome, now
        chain.append(
            session,
            actor=author,
            type="risk_assessment.decided",
            incident_id=incident_id,
            payload={"outcome": assessment.outcome, "previous_outcome": previous, "factors_recorded": 4},
        )
        facts = _facts_for(session, incident)
        deadline_changes, warnings = _recompute(session, incident, facts)
        if deadline_changes:
            chain.append(
                session,
                actor=author,
                type="deadlines.recomputed",
                incident_id=incident_id,
                payload={"changes": deadline_changes, "reason": f"risk assessment: {assessment.outcome}"},
            )
        return FactsChange(
            _facts_of(incident), {}, _deadline_rows(session, incident_id), deadline_changes, warnings
        )
