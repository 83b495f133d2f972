"""notify.escalate inside a playbook run: queued through the outbox, delivered to a real SMTP server, once."""

from __future__ import annotations

from pathlib import Path

import pytest

from irflow.engine import runtime
from irflow.engine.runs import run_view, submit_run
from irflow.redaction import fingerprint
from irflow.settings import Settings

PLAYBOOK = """\
name: escalate-only
version: 1
description: Page the team.
steps:
  - id: escalate
    action: notify.escalate
    with:
      reason: "drill: containment finished"
      actions: ["Open the bridge"]
"""


@pytest.fixture
def engine(tmp_path: Path, smtp_server):  # type: ignore[no-untyped-def]
    (tmp_path / "escalate-only.yaml").write_text(PLAYBOOK)
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'irflow.db'}",
        playbooks_dir=tmp_path,
        queue_polling_interval=0.05,
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_from="irflow@example.org",
        smtp_starttls=False,
        oncall_recipients="soc-oncall@example.org, ir-lead@example.org",
    )
    services = runtime.launch(settings)
    yield services
    runtime.shutdown()


def test_escalation_is_delivered_once_per_incident(engine, smtp_server) -> None:  # type: ignore[no-untyped-def]
    dry = submit_run(engine, "escalate-only", {}, actor="cli:ic", dry_run=True)
    assert dry.handle.get_result() == "succeeded"
    [planned] = run_view(engine, dry.run_id)["steps"]
    # The plan names the template and each recipient's fingerprint, never the subject (it holds the title).
    assert sorted(c["after"] for c in planned["plan"]["changes"]) == sorted(
        f"internal-escalation to {fingerprint(address)}"
        for address in ("soc-oncall@example.org", "ir-lead@example.org")
    )
    assert smtp_server.sink.messages == []

    first = submit_run(
        engine, "escalate-only", {}, actor="cli:ic", auto_approve=True, incident_id=dry.incident_id
    )
    assert first.handle.get_result() == "succeeded"
    assert sorted(rcpt for _, rcpts in smtp_server.sink.envelopes for rcpt in rcpts) == [
        "ir-lead@example.org",
        "soc-oncall@example.org",
    ]
    message = smtp_server.sink.messages[0]
    assert "drill: containment finished" in message.get_content()

    again = submit_run(
        engine, "escalate-only", {}, actor="cli:ic", auto_approve=True, incident_id=dry.incident_id
    )
    assert again.handle.get_result() == "succeeded"
    assert len(smtp_server.sink.messages) == 2
    [step] = run_view(engine, again.run_id)["steps"]
    assert step["result"]["changed"] is False


def test_escalation_without_recipients_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "escalate-only.yaml").write_text(PLAYBOOK)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'irflow.db'}", playbooks_dir=tmp_path)
    services = runtime.launch(settings)
    try:
        run = submit_run(services, "escalate-only", {}, actor="cli:ic", auto_approve=True)
        assert run.handle.get_result() == "failed"
        [step] = run_view(services, run.run_id)["steps"]
        assert "IRFLOW_ONCALL_RECIPIENTS" in step["error"]
    finally:
        runtime.shutdown()


REMINDER_PLAYBOOK = """\
name: remind-only
version: 1
description: Remind the compliance team.
steps:
  - id: remind
    action: notify.reminder
    with: {recipients: [privacy-officer@example.org]}
"""


def test_reminder_step_sends_todays_stage_once(engine, smtp_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, time, timedelta

    from irflow import clock
    from irflow.engine.incidents import FactsUpdate, update_facts

    (tmp_path / "remind-only.yaml").write_text(REMINDER_PLAYBOOK)
    dry = submit_run(engine, "remind-only", {}, actor="cli:privacy", dry_run=True)
    dry.handle.get_result()
    today = clock.now().astimezone(UTC).date()
    discovered = datetime.combine(today - timedelta(days=57), time(12), tzinfo=UTC)  # due in 3 days
    update_facts(
        engine.db, dry.incident_id, FactsUpdate(discovered_at=discovered, affected_total=12), actor="t"
    )

    planned = submit_run(
        engine, "remind-only", {}, actor="cli:privacy", dry_run=True, incident_id=dry.incident_id
    )
    planned.handle.get_result()
    [step] = run_view(engine, planned.run_id)["steps"]
    assert [c["after"] for c in step["plan"]["changes"]] == ["individuals US T-3"]

    for _ in range(2):
        run = submit_run(
            engine, "remind-only", {}, actor="cli:privacy", auto_approve=True, incident_id=dry.incident_id
        )
        assert run.handle.get_result() == "succeeded"
    assert len(smtp_server.sink.messages) == 1
    assert "Due in 3 days: individuals" in str(smtp_server.sink.messages[0]["Subject"])


DRAFT_PLAYBOOK = """\
name: draft-only
version: 1
description: Draft the notices.
steps:
  - id: draft
    action: notify.draft_notices
    with:
      entity: {name: Example Health Clinic, toll_free_phone: 1-800-555-0100, email: privacy@example.org,
               postal_address: "100 Example Street, Springfield, ZZ 00000"}
      description: "A storage account holding appointment exports was readable from the internet."
      phi_types: [Names, Dates of service]
      protective_steps: ["Review the statements from your health insurer"]
      response: {investigation: "Forensic review under way", mitigation: "Access closed, keys rotated",
                 prevention: "Public access blocked by policy"}
"""


def test_draft_notices_follow_the_deadlines_and_are_never_sent(engine, smtp_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from sqlalchemy import select

    from irflow.engine.incidents import FactsUpdate, update_facts
    from irflow.store.models import Notification

    (tmp_path / "draft-only.yaml").write_text(DRAFT_PLAYBOOK)
    first = submit_run(engine, "draft-only", {}, actor="cli:privacy", auto_approve=True)
    assert first.handle.get_result() == "failed"  # no discovery date yet
    assert "discovery date" in run_view(engine, first.run_id)["steps"][0]["error"]

    facts = FactsUpdate(
        discovered_at=datetime(2026, 3, 3, 2, tzinfo=UTC),  # 21:00 on 2 March in New York: day 0 is 2 March
        affected_total=1200,
        affected_by_state={"TX": 600, "CO": 20},
    )
    update_facts(engine.db, first.incident_id, facts, actor="cli:privacy")
    for _ in range(2):
        run = submit_run(
            engine, "draft-only", {}, actor="cli:privacy", auto_approve=True, incident_id=first.incident_id
        )
        assert run.handle.get_result() == "succeeded"
    with engine.db.transaction() as session:
        drafts = list(session.execute(select(Notification).where(Notification.status == "draft")).scalars())
    assert sorted((d.template, d.recipient) for d in drafts) == [
        ("individual-notice", "individuals"),
        ("media-notice", "media TX"),
    ]
    individual = next(d for d in drafts if d.template == "individual-notice")
    for heading in (
        "WHAT HAPPENED",
        "WHAT INFORMATION WAS INVOLVED",
        "WHAT YOU CAN DO",
        "WHAT WE ARE DOING",
        "FOR MORE INFORMATION",
    ):
        assert heading in individual.body
    assert "March 2, 2026" in individual.body and "1-800-555-0100" in individual.body
    assert smtp_server.sink.messages == []  # drafts are for review, never delivered
