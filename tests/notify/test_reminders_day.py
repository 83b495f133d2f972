"""Without a day given, reminders act as today in the organisation's time zone, as the scheduled ones do."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from irflow import clock
from irflow.engine.runtime import open_database
from irflow.engine.services.errors import Invalid
from irflow.engine.services.outbox import organisation_today, queue_reminders
from irflow.settings import Settings


def test_the_default_day_is_the_organisations_calendar_day(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'irflow.db'}",
        timezone="America/New_York",
        compliance_recipients="privacy@example.org",
    )
    db = open_database(settings)
    previous = clock.install(lambda: datetime(2026, 3, 1, 3, 0, tzinfo=UTC))  # 22:00 on Feb 28 in New York
    try:
        assert organisation_today(settings) == date(2026, 2, 28)
        assert queue_reminders(db, settings, deliver=False).day == date(2026, 2, 28)
        assert queue_reminders(db, settings, day=date(2026, 3, 1), deliver=False).day == date(2026, 3, 1)
        nobody = settings.model_copy(update={"compliance_recipients": ""})
        with pytest.raises(Invalid, match="IRFLOW_COMPLIANCE_RECIPIENTS"):
            queue_reminders(db, nobody, deliver=False)
    finally:
        clock.install(previous)
        db.dispose()
