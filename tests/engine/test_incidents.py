"""Incident facts drive the deadlines; every change is audited with old and new due dates."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from irflow.audit import AuditChain
from irflow.engine.incidents import (
    FactsUpdate,
    RiskAssessmentInput,
    incident_view,
    record_risk_assessment,
    update_facts,
)
from irflow.engine.state import StateStore
from irflow.store.db import Database
from irflow.store.models import AuditEvent


@pytest.fixture
def incident_id(database: Database) -> str:
    created = StateStore(database).open_incident(
        title="PHI export exposed", severity="high", source="cli", actor="cli:ic"
    )
    return created


def _events(db: Database, kind: str) -> list[dict]:  # type: ignore[type-arg]
    with db.transaction() as session:
        return [json.loads(e.payload) for e in AuditChain().events(session) if e.type == kind]


def _due(view: dict, kind: str, where: str = "US") -> str | None:  # type: ignore[type-arg]
    return next(
        (d["due"] for d in view["deadlines"] if d["kind"] == kind and d["jurisdiction"] == where), None
    )


def test_facts_compute_deadlines_and_audit_them(database: Database, incident_id: str) -> None:
    update = FactsUpdate(
        discovered_at=datetime(2026, 3, 2, tzinfo=UTC),
        affected_total=1200,
        affected_by_state={"TX": 600, "CO": 20},
    )
    change = update_facts(database, incident_id, update, actor="cli:privacy")
    assert set(change.changed) == {"discovered_at", "affected_total", "affected_by_state"}
    view = incident_view(database, incident_id)
    assert _due(view, "individuals") == "2026-05-01"
    assert _due(view, "hhs") == "2026-05-01"
    assert _due(view, "media", "TX") == "2026-05-01"
    assert _due(view, "state_residents", "CO") == "2026-04-01"
    [recomputed] = _events(database, "deadlines.recomputed")
    assert {"kind": "individuals", "jurisdiction": "US", "old_due": None, "new_due": "2026-05-01"} in (
        recomputed["changes"]
    )
    [changed] = _events(database, "incident.facts_changed")
    assert changed["changed"]["affected_total"] == {"old": None, "new": 1200}


def test_moving_discovery_moves_every_deadline(database: Database, incident_id: str) -> None:
    update_facts(
        database,
        incident_id,
        FactsUpdate(discovered_at=datetime(2026, 3, 2, tzinfo=UTC), affected_total=700),
        actor="cli:privacy",
    )
    update_facts(
        database, incident_id, FactsUpdate(discovered_at=datetime(2026, 2, 20, tzinfo=UTC)), actor="cli:p"
    )
    view = incident_view(database, incident_id)
    assert _due(view, "individuals") == "2026-04-21"
    last = _events(database, "deadlines.recomputed")[-1]
    assert {
        "kind": "individuals",
        "jurisdiction": "US",
        "old_due": "2026-05-01",
        "new_due": "2026-04-21",
    } in (last["changes"])


def test_fewer_than_500_switches_hhs_to_the_annual_log(database: Database, incident_id: str) -> None:
    facts = FactsUpdate(
        discovered_at=datetime(2026, 3, 2, tzinfo=UTC), affected_total=600, affected_by_state={"TX": 501}
    )
    update_facts(database, incident_id, facts, actor="cli:p")
    update_facts(
        database, incident_id, FactsUpdate(affected_total=499, affected_by_state={"TX": 499}), actor="cli:p"
    )
    view = incident_view(database, incident_id)
    assert _due(view, "hhs") is None and _due(view, "media", "TX") is None
    assert _due(view, "hhs_annual_log") == "2027-03-01"
    changes = _events(database, "deadlines.recomputed")[-1]["changes"]
    assert {"kind": "media", "jurisdiction": "TX", "old_due": "2026-05-01", "new_due": None} in changes


def test_inconsistent_facts_write_nothing(database: Database, incident_id: str) -> None:
    update_facts(
        database,
        incident_id,
        FactsUpdate(discovered_at=datetime(2026, 3, 2, tzinfo=UTC), affected_total=10),
        actor="cli:p",
    )
    with database.transaction() as session:
        before = session.scalar(select(func.count()).select_from(AuditEvent))
    with pytest.raises(ValidationError, match="more than the total"):
        update_facts(database, incident_id, FactsUpdate(affected_by_state={"TX": 11}), actor="cli:p")
    with pytest.raises(ValidationError, match="after discovery"):
        update_facts(database, incident_id, FactsUpdate(breach_start=date(2026, 3, 5)), actor="cli:p")
    with database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == before
    view = incident_view(database, incident_id)
    assert view["facts"]["affected_by_state"] == {} and view["facts"]["breach_start"] is None


def test_unchanged_facts_write_nothing(database: Database, incident_id: str) -> None:
    facts = FactsUpdate(discovered_at=datetime(2026, 3, 2, tzinfo=UTC), affected_total=10)
    update_facts(database, incident_id, facts, actor="cli:p")
    again = update_facts(database, incident_id, facts, actor="cli:p")
    assert again.changed == {} and again.deadline_changes == []
    assert len(_events(database, "incident.facts_changed")) == 1
    with database.transaction() as session:
        assert AuditChain().verify(session).ok


def _assessment(outcome: str) -> RiskAssessmentInput:
    return RiskAssessmentInput(
        nature_and_extent="names and claim numbers; no SSNs",
        unauthorized_person="an anonymous internet client",
        acquired_or_viewed="StorageBlobLogs show 3 GetBlob reads of the export",
        mitigation="keys rotated, account isolated within 2 hours",
        outcome=outcome,
    )


def test_risk_assessment_switches_obligations_off_and_on(database: Database, incident_id: str) -> None:
    update_facts(
        database,
        incident_id,
        FactsUpdate(discovered_at=datetime(2026, 3, 2, tzinfo=UTC), affected_total=40),
        actor="cli:p",
    )
    assert incident_view(database, incident_id)["deadlines"]
    low = record_risk_assessment(database, incident_id, _assessment("low_probability"), author="cli:privacy")
    assert low.deadlines == [] and all(c["new_due"] is None for c in low.deadline_changes)
    # later fact changes keep them off while the documented outcome stands
    update_facts(database, incident_id, FactsUpdate(affected_total=900), actor="cli:p")
    assert incident_view(database, incident_id)["deadlines"] == []
    notify = record_risk_assessment(database, incident_id, _assessment("notify"), author="cli:privacy")
    assert {d["kind"] for d in notify.deadlines} >= {"individuals", "hhs"}
    decisions = _events(database, "risk_assessment.decided")
    assert [d["outcome"] for d in decisions] == ["low_probability", "notify"]
    assert all("claim numbers" not in json.dumps(d) for d in decisions)  # the factors stay out of the audit
    view = incident_view(database, incident_id)
    assert view["risk_outcome"] == "notify"
    with database.transaction() as session:
        assert AuditChain().verify(session).ok


def test_risk_assessment_needs_every_factor() -> None:
    with pytest.raises(ValidationError, match="mitigation"):
        RiskAssessmentInput(
            nature_and_extent="x",
            unauthorized_person="y",
            acquired_or_viewed="z",
            mitigation=" ",
            outcome="notify",
        )
    with pytest.raises(ValidationError, match="outcome"):
        RiskAssessmentInput(
            nature_and_extent="x",
            unauthorized_person="y",
            acquired_or_viewed="z",
            mitigation="m",
            outcome="maybe",
        )
