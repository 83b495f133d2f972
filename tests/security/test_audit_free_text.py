"""The audit trail records what happened without free text that may hold PHI: an incident's title is kept in
the incidents row, and the trail holds only its keyed fingerprint."""

from __future__ import annotations

import json

from sqlalchemy import select

from irflow.engine.state import StateStore
from irflow.redaction import fingerprint
from irflow.store.db import Database
from irflow.store.models import AuditEvent, Incident


def test_incident_title_enters_the_trail_as_a_fingerprint(database: Database) -> None:
    title = "Mass download by jane.doe@contoso.example of Maria Gonzalez's chart"
    incident_id = StateStore(database).open_incident(
        title=title, severity="high", source="cli", actor="cli:t"
    )
    with database.transaction() as session:
        (event,) = session.execute(select(AuditEvent).where(AuditEvent.type == "incident.opened")).scalars()
        stored = session.get(Incident, incident_id)
        assert stored is not None and stored.title == title
        payload = json.loads(event.payload)
    assert payload["title_fingerprint"] == fingerprint(title)
    assert "jane.doe" not in event.payload and "Gonzalez" not in event.payload and "title" not in payload
