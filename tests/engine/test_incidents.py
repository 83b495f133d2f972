"""Incident facts drive the deadlines; every change is audited with old and new due dates."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from irflow.audit import AuditChain
from irflow.engine.incidents import (
    FactsUpdate,
    NoticeCopy,
    NoticeSentInput,
    RiskAssessmentInput,
    incident_view,
    record_notice_sent,
    record_risk_assessment,
    update_facts,
)
from irflow.engine.state import StateStore
from irflow.store.db import Database
from irflow.store.models import AuditEvent, Evidence

ET = ZoneInfo("America/New_York")


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
        discovered_at=datetime(2026, 3, 2, 9, tzinfo=ET),
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
        FactsUpdate(discovered_at=datetime(2026, 3, 2, 9, tzinfo=ET), affected_total=700),
        actor="cli:privacy",
    )
    update_facts(
        database, incident_id, FactsUpdate(discovered_at=datetime(2026, 2, 20, 9, tzinfo=ET)), actor="cli:p"
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
        discovered_at=datetime(2026, 3, 2, 9, tzinfo=ET), affected_total=600, affected_by_state={"TX": 501}
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
        FactsUpdate(discovered_at=datetime(2026, 3, 2, 9, tzinfo=ET), affected_total=10),
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
    facts = FactsUpdate(discovered_at=datetime(2026, 3, 2, 9, tzinfo=ET), affected_total=10)
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
        FactsUpdate(discovered_at=datetime(2026, 3, 2, 9, tzinfo=ET), affected_total=40),
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


# --- time zone and discovery (45 CFR 164.404(a)(2): day 0 is the calendar day of discovery) -----------


def _deadline(view: dict, kind: str, where: str = "US") -> dict:  # type: ignore[type-arg]
    return next(d for d in view["deadlines"] if d["kind"] == kind and d["jurisdiction"] == where)


def test_discovery_date_is_the_organisations_calendar_day(database: Database, incident_id: str) -> None:
    # 20:00 Eastern on 1 January is 01:00 UTC on 2 January: day 0 is 1 January, not 2 January.
    evening = datetime(2026, 1, 1, 20, tzinfo=ET)
    update_facts(database, incident_id, FactsUpdate(discovered_at=evening, affected_total=10), actor="cli:p")
    view = incident_view(database, incident_id)
    assert view["facts"]["discovered_on"] == "2026-01-01"
    assert _due(view, "individuals") == "2026-03-02"  # 2026-01-01 + 60 days


def test_a_naive_time_is_read_in_the_incident_time_zone(database: Database, incident_id: str) -> None:
    naive = datetime(2026, 1, 1, 23, 30)
    update_facts(
        database,
        incident_id,
        FactsUpdate(discovered_at=naive, timezone="America/Los_Angeles", affected_total=10),
        actor="cli:p",
    )
    view = incident_view(database, incident_id)
    assert view["facts"]["discovered_at"] == "2026-01-02T07:30:00+00:00"
    assert view["facts"]["discovered_on"] == "2026-01-01"
    # the same instant for an organisation in Tokyo is already 2 January
    update_facts(database, incident_id, FactsUpdate(timezone="Asia/Tokyo"), actor="cli:p")
    assert incident_view(database, incident_id)["facts"]["discovered_on"] == "2026-01-02"


def test_the_organisation_setting_decides_without_an_incident_zone(
    database: Database, incident_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from irflow.settings import reset_settings_cache

    monkeypatch.setenv("IRFLOW_TIMEZONE", "Pacific/Honolulu")
    reset_settings_cache()
    at = datetime(2026, 6, 1, 8, tzinfo=UTC)  # 22:00 on 31 May in Honolulu
    update_facts(database, incident_id, FactsUpdate(discovered_at=at, affected_total=10), actor="cli:p")
    assert incident_view(database, incident_id)["facts"]["discovered_on"] == "2026-05-31"


def test_discovery_after_detection_needs_a_reason(database: Database, incident_id: str) -> None:
    detected = datetime.fromisoformat(incident_view(database, incident_id)["detected_at"])
    later = detected + timedelta(days=3)
    with pytest.raises(ValueError, match="later than the first detection"):
        update_facts(database, incident_id, FactsUpdate(discovered_at=later, affected_total=5), actor="cli:p")
    assert incident_view(database, incident_id)["facts"]["discovered_at"] is None
    change = update_facts(
        database,
        incident_id,
        FactsUpdate(
            discovered_at=later,
            affected_total=5,
            discovery_reason="alert closed as benign; PHI exposure confirmed by the log review",
        ),
        actor="cli:p",
    )
    assert change.changed["discovery_reason"] == {"old": None, "new": "recorded"}
    [event] = _events(database, "incident.facts_changed")
    assert "benign" not in json.dumps(event)  # the free text stays out of the audit chain


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"affected_by_state": {"zz": -5}}, "unknown state code"),
        ({"affected_by_state": {"TX": -5}}, "greater than or equal to 0"),
        ({"affected_by_state": {"tx": 1, "TX": 2}}, "given twice"),
        ({"affected_total": -1}, "greater than or equal to 0"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"role": "vendor"}, "covered_entity"),
        ({"hipaa": None}, "cannot be cleared"),
        ({"law_enforcement_delay": {"oral": {"given_on": "2026-03-05"}, "spoken": True}}, "Extra inputs"),
        ({"out_of_date_addresses": -3}, "greater than or equal to 0"),
        ({"colour": "red"}, "Extra inputs"),
    ],
)
def test_facts_update_is_typed(payload: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError, match=message):
        FactsUpdate.model_validate(payload)


# --- notices recorded as sent (164.414(b)) --------------------------------------------------------------


def _with_facts(database: Database, incident_id: str, **extra: object) -> None:
    update_facts(
        database,
        incident_id,
        FactsUpdate.model_validate(
            {"discovered_at": datetime(2026, 3, 2, 9, tzinfo=ET), "affected_total": 700, **extra}
        ),
        actor="cli:p",
    )


def test_recording_the_individual_notice_meets_it_and_moves_hhs(
    database: Database, incident_id: str, tmp_path: Path
) -> None:
    _with_facts(database, incident_id)
    copy = tmp_path / "letter.pdf"
    copy.write_bytes(b"%PDF-1.7 the notice as mailed")
    recorded = record_notice_sent(
        database,
        incident_id,
        NoticeSentInput(kind="individuals", sent_on=date(2026, 3, 20), method="first_class_mail", count=700),
        author="cli:privacy",
        copy=NoticeCopy.read(copy),
    )
    view = incident_view(database, incident_id)
    individuals = _deadline(view, "individuals")
    assert individuals["status"] == "met" and individuals["sent_on"] == "2026-03-20"
    # 164.408(b): contemporaneously with the individual notice: due the day it went
    assert _due(view, "hhs") == "2026-03-20"
    assert {"kind": "hhs", "jurisdiction": "US", "old_due": "2026-05-01", "new_due": "2026-03-20"} in (
        recorded.deadline_changes
    )
    [notice] = view["notices_sent"]
    assert notice["copy_sha256"] == hashlib.sha256(copy.read_bytes()).hexdigest()
    assert notice["author"] == "cli:privacy" and notice["count"] == 700
    [event] = _events(database, "notice.sent_recorded")
    assert event["kind"] == "individuals" and event["copy_sha256"] == notice["copy_sha256"]
    with database.transaction() as session:
        evidence = session.get(Evidence, notice["evidence_id"])
        assert evidence is not None and evidence.kind == "notice_copy" and evidence.content is None
        assert evidence.size == len(copy.read_bytes())
        assert AuditChain().verify(session).ok
    # neither the copy's bytes nor its file name (often a patient's name) are kept
    assert all("letter.pdf" not in json.dumps(e) for e in _events(database, "evidence.captured"))


def test_a_notice_sent_after_its_due_date_is_late(database: Database, incident_id: str) -> None:
    _with_facts(database, incident_id)
    record_notice_sent(
        database,
        incident_id,
        NoticeSentInput(kind="hhs", sent_on=date(2026, 5, 4), method="hhs_portal", count=1),
        author="cli:privacy",
    )
    hhs = _deadline(incident_view(database, incident_id), "hhs")
    assert hhs["status"] == "late" and "3 days after the due date" in hhs["notes"]


@pytest.mark.parametrize(
    ("notice", "error", "message"),
    [
        ({"kind": "media", "jurisdiction": "TX"}, LookupError, "no media TX obligation"),
        ({"kind": "individuals", "sent_on": date(2099, 1, 1)}, ValueError, "in the future"),
        (
            {"kind": "individuals", "sent_on": date(2026, 3, 1)},
            ValueError,
            "before the breach was discovered",
        ),
        ({"kind": "individuals", "count": 701}, ValueError, "more than the 700 affected"),
    ],
)
def test_bad_notice_recordings_write_nothing(
    database: Database,
    incident_id: str,
    notice: dict,
    error: type[Exception],
    message: str,  # type: ignore[type-arg]
) -> None:
    _with_facts(database, incident_id)
    with database.transaction() as session:
        before = session.scalar(select(func.count()).select_from(AuditEvent))
    payload = {"sent_on": date(2026, 3, 20), "method": "first_class_mail", "count": 1, **notice}
    with pytest.raises(error, match=message):
        record_notice_sent(database, incident_id, NoticeSentInput.model_validate(payload), author="cli:p")
    with database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == before
    assert incident_view(database, incident_id)["notices_sent"] == []


def test_a_notice_is_recorded_once(database: Database, incident_id: str) -> None:
    _with_facts(database, incident_id)
    notice = NoticeSentInput(kind="hhs", sent_on=date(2026, 3, 20), method="hhs_portal", count=1)
    record_notice_sent(database, incident_id, notice, author="cli:p")
    with pytest.raises(ValueError, match="already recorded as sent on 2026-03-20"):
        record_notice_sent(database, incident_id, notice, author="cli:p")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"kind": "postcard"}, "kind"),
        ({"method": "pigeon"}, "method"),
        ({"count": 0}, "greater than or equal to 1"),
        ({"jurisdiction": "ZZ"}, "unknown state code"),
    ],
)
def test_notice_sent_input_is_typed(payload: dict, message: str) -> None:  # type: ignore[type-arg]
    base = {"kind": "hhs", "sent_on": "2026-03-20", "method": "hhs_portal", "count": 1}
    with pytest.raises(ValidationError, match=message):
        NoticeSentInput.model_validate({**base, **payload})


def test_substitute_and_urgent_notices_are_obligations(database: Database, incident_id: str) -> None:
    _with_facts(database, incident_id, out_of_date_addresses=12, urgent=True)
    view = incident_view(database, incident_id)
    substitute = _deadline(view, "substitute_notice")
    assert substitute["due"] == "2026-05-01" and "164.404(d)(2)(ii)" in substitute["basis"]
    assert "164.404(d)(3)" in _deadline(view, "urgent_notice")["basis"]


def test_a_notice_can_be_recorded_by_obligation_id(database: Database, incident_id: str) -> None:
    from irflow.engine.incidents import ObligationSent, record_obligation_sent

    _with_facts(database, incident_id)
    hhs = _deadline(incident_view(database, incident_id), "hhs")
    body = ObligationSent.model_validate({"on": "2026-04-01", "method": "hhs_portal", "count": 1})
    record_obligation_sent(database, incident_id, hhs["id"], body, author="api:privacy")
    assert _deadline(incident_view(database, incident_id), "hhs")["status"] == "met"
    with pytest.raises(LookupError, match="no obligation"):
        record_obligation_sent(database, incident_id, "not-an-id", body, author="api:privacy")
    with pytest.raises(ValidationError, match="method"):
        ObligationSent.model_validate({"on": "2026-04-01", "method": "carrier pigeon", "count": 1})
