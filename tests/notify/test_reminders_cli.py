"""``irflow deadlines remind`` end to end: deadlines in the database, a real SMTP server, exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from irflow.engine.incidents import FactsUpdate, update_facts
from irflow.engine.state import StateStore
from irflow.store.db import Database, upgrade


def _remind(env: dict[str, str], today: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "irflow", "deadlines", "remind", "--today", today],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_remind_delivers_each_stage_once_by_email(tmp_path: Path, smtp_server) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'irflow.db'}"
    db = Database(url)
    upgrade(db.engine)
    created = StateStore(db).open_incident(
        title="PHI export exposed", severity="high", source="cli", actor="cli:ic"
    )
    update_facts(
        db,
        created,
        FactsUpdate(
            discovered_at=datetime(2026, 3, 2, 12, tzinfo=UTC),
            affected_total=40,
            affected_by_state={"CO": 40},
        ),
        actor="cli:privacy",
    )
    db.dispose()
    env = {
        "IRFLOW_DATABASE_URL": url,
        "IRFLOW_SMTP_HOST": smtp_server.host,
        "IRFLOW_SMTP_PORT": str(smtp_server.port),
        "IRFLOW_SMTP_FROM": "irflow@example.org",
        "IRFLOW_SMTP_STARTTLS": "false",
        "IRFLOW_COMPLIANCE_RECIPIENTS": "privacy-officer@example.org",
    }
    first = _remind(env, "2026-04-28", tmp_path)
    assert first.returncode == 0, first.stderr
    assert "2 reminder(s) queued" in first.stdout and "delivered 2" in first.stdout
    subjects = sorted(str(m["Subject"]) for m in smtp_server.sink.messages)
    assert any("Due in 3 days: individuals" in s for s in subjects)
    assert any("OVERDUE by 27 days: state_residents notice (CO)" in s for s in subjects)
    assert "privacy-officer@example.org" not in first.stdout + first.stderr

    again = _remind(env, "2026-04-28", tmp_path)
    assert again.returncode == 0 and "0 reminder(s) queued, 2 already sent earlier" in again.stdout
    assert len(smtp_server.sink.messages) == 2

    unconfigured = _remind({**env, "IRFLOW_COMPLIANCE_RECIPIENTS": ""}, "2026-04-28", tmp_path)
    assert unconfigured.returncode == 2 and "IRFLOW_COMPLIANCE_RECIPIENTS" in unconfigured.stderr
