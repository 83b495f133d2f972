"""The engine services the dashboard added, on SQLite and PostgreSQL: title search, evidence items, the
re-check of a session's API token, the risk assessment, and the tolling periods of the deadline chart."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime

import pytest

from irflow.engine.evidence import capture
from irflow.engine.incidents import FactsUpdate, RiskAssessmentInput, update_facts
from irflow.engine.services import deadlines, evidence, incidents
from irflow.engine.services.errors import NotFound
from irflow.engine.services.principals import Principal
from irflow.engine.services.tokens import TokenCreate, TokenRefused, create_token, revoke_token, still_valid
from irflow.engine.state import StateStore
from irflow.store.db import Database

OFFICER = Principal(kind="token", id="t", name="officer", roles=frozenset({"compliance"}))


def test_title_search_is_case_insensitive_and_takes_wildcards_literally(database: Database) -> None:
    state = StateStore(database)
    state.open_incident(title="SAS leak on 100% of PHI_exports", severity="high", source="cli", actor="t")
    state.open_incident(title="SAS leak on 10 blobs", severity="low", source="cli", actor="t")
    state.open_incident(title="Key Vault access", severity="low", source="api", actor="t")

    def titles(**query: object) -> list[str]:
        page = incidents.list_incidents(database, incidents.IncidentFilter.model_validate(query))
        return sorted(i.title for i in page.items)

    assert titles(q="sas LEAK") == ["SAS leak on 10 blobs", "SAS leak on 100% of PHI_exports"]
    assert titles(q="100%") == ["SAS leak on 100% of PHI_exports"]
    assert titles(q="phi_e") == ["SAS leak on 100% of PHI_exports"]
    assert titles(q="1_") == []  # "_" is a character, not LIKE's wildcard
    assert titles(q="leak", severity="low") == ["SAS leak on 10 blobs"]


def test_evidence_items_risk_assessment_and_tolling(database: Database) -> None:
    incident_id = StateStore(database).open_incident(title="t", severity="high", source="cli", actor="t")
    with database.transaction() as session:
        capture(
            session,
            incident_id=incident_id,
            kind="resource_state",
            source="/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/a",
            location="database",
            data=b'{"a": 1}',
            sha256=hashlib.sha256(b'{"a": 1}').hexdigest(),
            size=8,
            dedupe_key="ui-test-1",
            metadata={},
            actor="t",
        )
    [item] = evidence.evidence_items(database, incident_id)
    assert item.sha256 == hashlib.sha256(b'{"a": 1}').hexdigest() and item.location == "database"
    assert item.size == 8
    with pytest.raises(NotFound):
        evidence.evidence_items(database, "00000000-0000-0000-0000-000000000000")

    update_facts(
        database,
        incident_id,
        FactsUpdate(
            discovered_at=datetime(2026, 3, 1, 15, tzinfo=UTC),
            affected_total=800,
            affected_by_state={"CA": 800},
            law_enforcement_delay={"written": {"given_on": "2026-03-10", "until": "2026-04-20"}},
        ),
        actor="t",
    )
    shown = incidents.show_incident(database, incident_id)
    [period] = deadlines.tolling(shown.facts)
    assert (period.start, period.end, period.source) == (date(2026, 3, 10), date(2026, 4, 20), "written")
    assert shown.deadlines and shown.risk_outcome is None
    low = RiskAssessmentInput(
        nature_and_extent="n",
        unauthorized_person="u",
        acquired_or_viewed="a",
        mitigation="m",
        outcome="low_probability",
    )
    result = incidents.assess_risk(database, incident_id, low, by=OFFICER)
    assert incidents.show_incident(database, incident_id).risk_outcome == "low_probability"
    assert result.deadline_changes  # the outcome switches the obligations
    with pytest.raises(NotFound):
        incidents.assess_risk(database, "00000000-0000-0000-0000-000000000000", low, by=OFFICER)


def test_a_sessions_token_is_re_checked(database: Database) -> None:
    token = create_token(database, TokenCreate(name="s", role="approver"), actor="t")
    assert still_valid(database, token.id).roles == {"approver"}
    revoke_token(database, token.id, actor="t")
    with pytest.raises(TokenRefused, match="revoked"):
        still_valid(database, token.id)
    with pytest.raises(TokenRefused, match="unknown"):
        still_valid(database, "nope")
