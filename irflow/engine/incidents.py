"""Incident facts and the deadlines they drive.

Changing a fact is one transaction: the incident row, the recomputed deadlines, and audit events carrying
the old and new values and every old and new due date. Facts that do not make a valid whole (state counts
above the total, a breach that starts after discovery…) raise ``ValueError`` and write nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from irflow import clock
from irflow.audit import AuditChain
from irflow.compliance import IncidentFacts, compute_obligations
from irflow.store.db import Database
from irflow.store.models import Deadline, Incident, RiskAssessment

ROLES = {"ce": "covered_entity", "ba": "business_associate"}


class FactsUpdate(BaseModel):
    """The facts to change; a field left unset keeps its value."""

    model_config = ConfigDict(extra="forbid")

    role: str | None = Field(default=None, pattern="^(covered_entity|business_associate)$")
    discovered_at: datetime | None = None
    affected_total: int | None = Field(default=None, ge=0)
    affected_by_state: dict[str, int] | None = None
    breach_start: date | None = None
    breach_end: date | None = None
    law_enforcement_delay: dict[str, Any] | None = None
    ba_contract_days: int | None = Field(default=None, ge=0)


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
        "affected_total": incident.affected_total,
        "affected_by_state": dict(incident.affected_by_state or {}),
        "breach_start": incident.breach_start.isoformat() if incident.breach_start else None,
        "breach_end": incident.breach_end.isoformat() if incident.breach_end else None,
        "law_enforcement_delay": incident.law_enforcement_delay,
        "ba_contract_days": incident.ba_contract_days,
    }


def compliance_facts(incident: Incident) -> IncidentFacts | None:
    """The compliance clock's input, or None while discovery date or affected count is unknown.

    The discovery date is the UTC calendar date of ``discovered_at``.
    """
    if incident.discovered_at is None or incident.affected_total is None:
        return None
    return IncidentFacts(
        role=incident.role,
        discovered_on=incident.discovered_at.astimezone(UTC).date(),
        breach_start=incident.breach_start,
        breach_end=incident.breach_end,
        affected_total=incident.affected_total,
        affected_by_state=incident.affected_by_state or {},
        law_enforcement_delay=incident.law_enforcement_delay,
        ba_contract_days=incident.ba_contract_days,
    )


def update_facts(db: Database, incident_id: str, update: FactsUpdate, *, actor: str) -> FactsChange:
    chain = AuditChain()
    with db.transaction() as session:
        incident = session.get(Incident, incident_id, with_for_update=True)
        if incident is None:
            raise LookupError(f"no incident {incident_id}")
        before = _facts_of(incident)
        for name, value in update.model_dump(exclude_unset=True).items():
            if name == "discovered_at" and value is not None and value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            setattr(incident, name, value)
        facts = compliance_facts(incident)  # raises ValueError (pydantic) on an inconsistent whole
        if incident.risk_outcome == "low_probability":
            facts = None  # the documented assessment switched the obligations off
        after = _facts_of(incident)
        changed = {k: {"old": before[k], "new": after[k]} for k in after if before[k] != after[k]}
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


def _recompute(
    session: Session, incident: Incident, facts: IncidentFacts | None
) -> tuple[list[dict[str, Any]], list[str]]:
    existing = {
        (d.kind, d.jurisdiction): d
        for d in session.execute(select(Deadline).where(Deadline.incident_id == incident.id)).scalars()
    }
    result = compute_obligations(facts) if facts is not None else None
    wanted = {(o.kind.value, o.jurisdiction): o for o in (result.obligations if result else ())}
    now = clock.now()
    changes = []
    for key, row in existing.items():
        if key not in wanted:
            changes.append(
                {"kind": key[0], "jurisdiction": key[1], "old_due": row.due.isoformat(), "new_due": None}
            )
            session.delete(row)
    for key, obligation in wanted.items():
        row = existing.get(key)
        old_due = row.due.isoformat() if row else None
        if row is None:
            row = Deadline(incident_id=incident.id, kind=key[0], jurisdiction=key[1], status="open")
            session.add(row)
        row.due, row.basis, row.notes, row.computed_at = (
            obligation.due,
            obligation.basis,
            obligation.notes,
            now,
        )
        if old_due != obligation.due.isoformat():
            changes.append(
                {
                    "kind": key[0],
                    "jurisdiction": key[1],
                    "old_due": old_due,
                    "new_due": obligation.due.isoformat(),
                }
            )
    session.flush()
    return changes, list(result.warnings) if result else []


def _deadline_rows(session: Session, incident_id: str) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Deadline).where(Deadline.incident_id == incident_id).order_by(Deadline.due, Deadline.kind)
    ).scalars()
    return [
        {
            "kind": d.kind,
            "jurisdiction": d.jurisdiction,
            "due": d.due.isoformat(),
            "basis": d.basis,
            "notes": d.notes,
            "status": d.status,
        }
        for d in rows
    ]


def incident_deadlines(db: Database, incident_id: str) -> list[dict[str, Any]]:
    with db.transaction() as session:
        if session.get(Incident, incident_id) is None:
            raise LookupError(f"no incident {incident_id}")
        return _deadline_rows(session, incident_id)


def incident_view(db: Database, incident_id: str) -> dict[str, Any]:
    """The incident with its facts, runs and deadlines, as the CLI prints it and the API returns it."""
    with db.transaction() as session:
        incident = session.get(Incident, incident_id)
        if incident is None:
            raise LookupError(f"no incident {incident_id}")
        return {
            "id": incident.id,
            "title": incident.title,
            "severity": incident.severity,
            "source": incident.source,
            "status": incident.status,
            "detected_at": incident.detected_at.isoformat(),
            "facts": _facts_of(incident),
            "risk_outcome": incident.risk_outcome,
            "runs": [
                {"id": r.id, "playbook": r.playbook_name, "status": r.status, "dry_run": r.dry_run}
                for r in incident.runs
            ],
            "deadlines": _deadline_rows(session, incident_id),
        }


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
    with db.transaction() as session:
        incident = session.get(Incident, incident_id, with_for_update=True)
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
        facts = compliance_facts(incident) if assessment.outcome == "notify" else None
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
