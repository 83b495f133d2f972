"""The outbox on SQLite and PostgreSQL: enqueue, dedupe, delivery to real peers, retries with backoff on
the injected clock, failure surfaced, every step audited, no address or PHI in logs or audit payloads."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from conftest import HttpServer, Received, SmtpServer, free_port
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from irflow import clock
from irflow.audit import AuditChain
from irflow.notify.channels import (
    SIGNATURE_HEADER,
    DeliveryError,
    Message,
    SmtpChannel,
    WebhookChannel,
    verify,
)
from irflow.notify.outbox import (
    DeliveryReport,
    _claim,
    _record,
    backoff,
    deliver_due,
    enqueue,
    failed_notifications,
    requeue,
)
from irflow.notify.render import RenderError
from irflow.notify.samples import sample_context
from irflow.redaction import fingerprint
from irflow.store.db import Database
from irflow.store.models import AuditEvent, Incident, Notification

RECIPIENT = "pat.placeholder@example.org"
PATIENT_NAME = "Pat Placeholder"
SECRET = "outbox-webhook-secret"
ACTOR = "user:privacy-officer"


def _incident(db: Database) -> str:
    now = clock.now()
    with db.transaction() as session:
        incident = Incident(
            title="SAS exfiltration",
            severity="high",
            source="cli",
            status="open",
            detected_at=now,
            created_at=now,
            updated_at=now,
        )
        session.add(incident)
        session.flush()
        return incident.id


def _enqueue(db: Database, channel: str = "email", **kwargs: object) -> Notification:
    params: dict[str, object] = {
        "channel": channel,
        "template": "individual-notice",
        "recipient": RECIPIENT,
        "context": sample_context("individual-notice"),
        "actor": ACTOR,
    }
    params.update(kwargs)
    with db.transaction() as session:
        return enqueue(session, **params)  # type: ignore[arg-type]


def _events(db: Database) -> list[AuditEvent]:
    with db.transaction() as session:
        return list(AuditChain().events(session))


def _types(db: Database) -> list[str]:
    return [e.type for e in _events(db)]


def _row(db: Database, notification_id: str) -> Notification:
    with db.transaction() as session:
        row = session.get(Notification, notification_id)
        assert row is not None
        return row


def _chain_ok(db: Database) -> None:
    with db.transaction() as session:
        report = AuditChain().verify(session)
    assert report.ok, report.describe()


class Recording:
    """An in-memory channel: records messages, or raises the errors it is given, one per send."""

    def __init__(self, *errors: DeliveryError | Exception) -> None:
        self.sent: list[Message] = []
        self.errors = list(errors)
        self.lock = threading.Lock()

    def send(self, message: Message) -> None:
        with self.lock:
            if self.errors:
                raise self.errors.pop(0)
            self.sent.append(message)


# ------------------------------------------------------------------------------------------------
# enqueue
# ------------------------------------------------------------------------------------------------


def test_enqueue_stores_renders_and_audits_the_fingerprint(
    database: Database, frozen: clock.FrozenClock
) -> None:
    incident_id = _incident(database)
    notification = _enqueue(database, incident_id=incident_id, dedupe_key=f"{incident_id}:individual:1")
    row = _row(database, notification.id)
    assert row.status == "pending" and row.attempts == 0 and row.max_attempts == 5
    assert row.recipient == RECIPIENT and row.recipient_fingerprint == fingerprint(RECIPIENT)
    assert row.template == "individual-notice.txt" and row.subject.startswith("Notice of a data breach")
    assert "WHAT HAPPENED" in row.body and row.next_attempt_at == frozen() and row.created_at == frozen()
    (event,) = _events(database)
    assert event.type == "notification.queued" and event.actor == ACTOR and event.incident_id == incident_id
    payload = json.loads(event.payload)
    assert payload == {
        "notification_id": notification.id,
        "channel": "email",
        "template": "individual-notice.txt",
        "recipient_fingerprint": fingerprint(RECIPIENT),
        "dedupe_key": f"{incident_id}:individual:1",
        "max_attempts": 5,
    }


def test_a_repeated_dedupe_key_returns_the_first_and_writes_nothing(database: Database) -> None:
    first = _enqueue(database, dedupe_key="inc-1:individual-notice")
    again = _enqueue(database, dedupe_key="inc-1:individual-notice", recipient="other@example.org")
    assert again.id == first.id and again.recipient == RECIPIENT
    with database.transaction() as session:
        assert session.execute(select(func.count()).select_from(Notification)).scalar_one() == 1
    assert _types(database) == ["notification.queued"]
    other = _enqueue(database, dedupe_key="inc-1:media-notice")
    assert other.id != first.id and _types(database) == ["notification.queued"] * 2


def test_a_new_key_is_written_with_the_transaction_and_a_taken_one_fails_it(database: Database) -> None:
    incident_id = _incident(database)
    with database.transaction() as session:
        added = enqueue(
            session,
            channel="email",
            template="individual-notice",
            recipient=RECIPIENT,
            context=sample_context("individual-notice"),
            actor=ACTOR,
            incident_id=incident_id,
            dedupe_key=f"{incident_id}:individual:1",
            new_key=True,
        )
        assert session.get(Notification, added.id) is added  # named before its flush, as the audit says
    row = _row(database, added.id)
    assert row.dedupe_key == f"{incident_id}:individual:1" and row.recipient == RECIPIENT
    (event,) = _events(database)
    assert json.loads(event.payload)["notification_id"] == added.id
    with pytest.raises(IntegrityError), database.transaction() as session:
        enqueue(
            session,
            channel="email",
            template="individual-notice",
            recipient="other@example.org",
            context=sample_context("individual-notice"),
            actor=ACTOR,
            dedupe_key=f"{incident_id}:individual:1",
            new_key=True,
        )  # the commit's flush meets the taken key
    with database.transaction() as session:
        assert session.execute(select(func.count()).select_from(Notification)).scalar_one() == 1
    assert _types(database) == ["notification.queued"]


def test_a_template_that_does_not_render_stores_nothing(database: Database) -> None:
    context = sample_context("individual-notice")
    del context["breach"]
    with pytest.raises(RenderError):
        _enqueue(database, context=context)
    with pytest.raises(ValueError):
        _enqueue(database, channel="x" * 25)
    with pytest.raises(ValueError):
        _enqueue(database, recipient="  ")
    with database.transaction() as session:
        assert session.execute(select(func.count()).select_from(Notification)).scalar_one() == 0
    assert _types(database) == []


# ------------------------------------------------------------------------------------------------
# delivery to real peers
# ------------------------------------------------------------------------------------------------


def test_deliver_by_email_to_a_real_smtp_server(
    database: Database, smtp_server: SmtpServer, frozen: clock.FrozenClock
) -> None:
    notification = _enqueue(database)
    channels = {
        "email": SmtpChannel(smtp_server.host, smtp_server.port, sender="irflow@example.net", timeout=5)
    }
    report = deliver_due(database, channels)
    assert report.sent == [notification.id] and report.ok and report.attempted == 1
    (mail,) = smtp_server.sink.messages
    assert mail["To"] == RECIPIENT and mail["Subject"].startswith("Notice of a data breach")
    assert mail["X-IRFlow-Notification-Id"] == notification.id
    content = mail.get_content()
    for heading in (
        "WHAT HAPPENED",
        "WHAT INFORMATION WAS INVOLVED",
        "WHAT YOU CAN DO",
        "WHAT WE ARE DOING",
        "FOR MORE INFORMATION",
        "1-800-555-0100",
    ):
        assert heading in content
    row = _row(database, notification.id)
    assert row.status == "sent" and row.attempts == 1 and row.sent_at == frozen() and row.last_error is None
    assert _types(database) == ["notification.queued", "notification.sent"]
    sent = json.loads(_events(database)[-1].payload)
    assert sent["attempt"] == 1 and sent["recipient_fingerprint"] == fingerprint(RECIPIENT)
    assert deliver_due(database, channels).attempted == 0  # nothing is sent twice
    assert len(smtp_server.sink.messages) == 1
    _chain_ok(database)


def test_deliver_html_notice_by_email(database: Database, smtp_server: SmtpServer) -> None:
    _enqueue(database, template="individual-notice.html")
    deliver_due(database, {"email": SmtpChannel(smtp_server.host, smtp_server.port, sender="i@example.net")})
    (mail,) = smtp_server.sink.messages
    assert mail.get_content_type() == "text/html" and '<h2 id="what-happened">' in mail.get_content()


def test_deliver_by_signed_webhook_verified_by_the_receiver(
    database: Database, http_server: HttpServer, frozen: clock.FrozenClock
) -> None:
    def verifying(received: Received) -> tuple[int, dict[str, str], bytes]:
        ok = verify(SECRET, received.headers.get(SIGNATURE_HEADER.lower()), received.body, clock.now())
        return (200, {}, b"") if ok else (401, {}, b"")

    http_server.answer(verifying)
    notification = _enqueue(
        database,
        channel="siem",
        template="internal-escalation",
        recipient="soc-queue",
        context=sample_context("internal-escalation"),
    )
    report = deliver_due(database, {"siem": WebhookChannel(http_server.url + "/irflow", SECRET, timeout=5)})
    assert report.sent == [notification.id]
    body = http_server.received[0].json()
    assert body["id"] == notification.id and body["subject"].startswith("[irflow][HIGH] Escalation")


# ------------------------------------------------------------------------------------------------
# retries, backoff, failure
# ------------------------------------------------------------------------------------------------


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert backoff(8) == timedelta(hours=1) and backoff(10_000) == timedelta(hours=1)


def test_a_failing_webhook_is_retried_with_backoff_then_failed_and_reported(
    database: Database, http_server: HttpServer, frozen: clock.FrozenClock
) -> None:
    http_server.answer(lambda r: (503, {}, b"service unavailable"))
    incident_id = _incident(database)
    notification = _enqueue(
        database,
        channel="siem",
        template="internal-escalation",
        recipient="soc-queue",
        context=sample_context("internal-escalation"),
        max_attempts=3,
        incident_id=incident_id,
    )
    channels = {"siem": WebhookChannel(http_server.url, SECRET, timeout=5)}

    first = deliver_due(database, channels)
    assert first.retry_scheduled == [notification.id] and not first.sent and not first.failed
    row = _row(database, notification.id)
    assert row.status == "pending" and row.attempts == 1
    assert row.next_attempt_at == frozen() + timedelta(seconds=30)
    assert row.last_error == "webhook: webhook answered 503: service unavailable"

    frozen.advance(timedelta(seconds=29))
    assert deliver_due(database, channels).attempted == 0  # not due yet
    assert len(http_server.received) == 1

    frozen.advance(timedelta(seconds=1))
    second = deliver_due(database, channels)
    assert second.retry_scheduled == [notification.id]
    assert _row(database, notification.id).next_attempt_at == frozen() + timedelta(seconds=60)

    frozen.advance(timedelta(seconds=60))
    third = deliver_due(database, channels)
    assert not third.sent and not third.retry_scheduled and not third.ok
    (failed,) = third.failed
    assert failed.id == notification.id and failed.attempts == 3 and "503" in failed.error
    assert failed.recipient_fingerprint == fingerprint("soc-queue") and failed.incident_id == incident_id
    row = _row(database, notification.id)
    assert row.status == "failed" and row.next_attempt_at is None and len(http_server.received) == 3

    frozen.advance(timedelta(days=1))
    assert deliver_due(database, channels).attempted == 0  # failed stays failed, and stays visible:
    with database.transaction() as session:
        assert [f.id for f in failed_notifications(session, incident_id=incident_id)] == [notification.id]

    assert _types(database) == [
        "notification.queued",
        "notification.retry_scheduled",
        "notification.retry_scheduled",
        "notification.failed",
    ]
    events = _events(database)
    assert all(e.incident_id == incident_id for e in events)
    retries = [json.loads(e.payload) for e in events[1:3]]
    assert [r["attempt"] for r in retries] == [1, 2]
    assert retries[0]["next_attempt_at"] == (datetime(2025, 3, 1, 9, 0, 30, tzinfo=UTC)).isoformat()
    final = json.loads(events[3].payload)
    assert final["attempts"] == 3 and final["retryable"] is True and "503" in final["error"]
    _chain_ok(database)

    # Re-queued by a person, it goes out once the peer recovers.
    http_server.answer(lambda r: (200, {}, b""))
    with database.transaction() as session:
        requeue(session, notification.id, actor=ACTOR, max_attempts=2)
    assert deliver_due(database, channels).sent == [notification.id]
    row = _row(database, notification.id)
    assert row.status == "sent" and row.attempts == 4 and row.max_attempts == 5
    assert _types(database)[-2:] == ["notification.requeued", "notification.sent"]
    _chain_ok(database)


def test_an_smtp_server_refusing_connections_is_retried_then_failed(
    database: Database, frozen: clock.FrozenClock
) -> None:
    notification = _enqueue(database, max_attempts=2)
    channels = {"email": SmtpChannel("127.0.0.1", free_port(), sender="irflow@example.net", timeout=5)}
    assert deliver_due(database, channels).retry_scheduled == [notification.id]
    frozen.advance(timedelta(seconds=30))
    report = deliver_due(database, channels)
    assert [f.id for f in report.failed] == [notification.id]
    assert "SMTP connection" in report.failed[0].error
    assert _types(database) == ["notification.queued", "notification.retry_scheduled", "notification.failed"]
    _chain_ok(database)


def test_a_permanent_error_fails_at_once(database: Database, http_server: HttpServer) -> None:
    http_server.answer(lambda r: (400, {}, b"invalid_payload"))
    notification = _enqueue(database, channel="siem", recipient="soc")
    report = deliver_due(database, {"siem": WebhookChannel(http_server.url, SECRET)})
    assert [f.id for f in report.failed] == [notification.id]
    assert _row(database, notification.id).attempts == 1
    assert json.loads(_events(database)[-1].payload)["retryable"] is False


def test_retry_after_is_honoured(database: Database, frozen: clock.FrozenClock) -> None:
    notification = _enqueue(database)
    channel = Recording(DeliveryError("slack: webhook answered 429", retryable=True, retry_after=600))
    deliver_due(database, {"email": channel})
    assert _row(database, notification.id).next_attempt_at == frozen() + timedelta(seconds=600)


def test_an_unexpected_channel_exception_is_a_retry_not_a_crash(database: Database) -> None:
    one = _enqueue(database, dedupe_key="one")
    two = _enqueue(database, dedupe_key="two")
    channel = Recording(RuntimeError(f"boom while sending to {RECIPIENT}"))
    report = deliver_due(database, {"email": channel})
    assert report.retry_scheduled == [one.id] and report.sent == [two.id]
    assert RECIPIENT not in (_row(database, one.id).last_error or "")


def test_due_notifications_on_an_unconfigured_channel_are_reported(database: Database) -> None:
    _enqueue(database, channel="teams", recipient="IR")
    report = deliver_due(database, {"email": Recording()})
    assert report.unroutable == {"teams": 1} and not report.ok and report.attempted == 0
    assert (
        _row(database, _enqueue(database, channel="teams", recipient="IR", dedupe_key="k").id).status
        == "pending"
    )


def test_a_worker_that_died_mid_send_leaves_the_row_to_be_sent_again(
    database: Database, frozen: clock.FrozenClock
) -> None:
    notification = _enqueue(database)
    # A worker claims the row, then dies before recording any outcome.
    claims = _claim(
        database,
        ["email"],
        now=clock.now(),
        limit=10,
        actor="system:notify",
        lease=timedelta(minutes=5),
        report=DeliveryReport(),
    )
    assert [c.id for c in claims] == [notification.id]
    assert _row(database, notification.id).status == "sending"
    channel = Recording()
    assert deliver_due(database, {"email": channel}).attempted == 0  # leased
    frozen.advance(timedelta(minutes=5))
    report = deliver_due(database, {"email": channel})
    assert report.sent == [notification.id] and len(channel.sent) == 1
    assert _row(database, notification.id).attempts == 2
    assert _types(database) == ["notification.queued", "notification.attempt_abandoned", "notification.sent"]
    _chain_ok(database)


def test_concurrent_workers_send_each_notification_once(database: Database) -> None:
    ids = {_enqueue(database, dedupe_key=f"n{i}").id for i in range(12)}
    channel = Recording()
    reports: list[DeliveryReport] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            reports.append(deliver_due(database, {"email": channel}, limit=3))
            reports.append(deliver_due(database, {"email": channel}, limit=3))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    sent = [m.notification_id for m in channel.sent]
    assert sorted(sent) == sorted(ids)  # every one, once
    assert sorted(i for r in reports for i in r.sent) == sorted(ids)
    _chain_ok(database)


# ------------------------------------------------------------------------------------------------
# no address, no PHI in logs or audit payloads
# ------------------------------------------------------------------------------------------------


def test_no_recipient_address_or_phi_in_logs_or_audit(
    database: Database,
    http_server: HttpServer,
    smtp_server: SmtpServer,
    captured_logs,
    frozen: clock.FrozenClock,
) -> None:
    # The peer echoes the address and PHI back in its error; none of it may be kept.
    http_server.answer(lambda r: (503, {}, f"cannot deliver to {RECIPIENT}, SSN 123-45-6789".encode()))
    smtp_server.sink.refuse[RECIPIENT] = f"550 5.1.1 <{RECIPIENT}>: no such mailbox"
    context = sample_context("individual-notice")
    _enqueue(database, channel="siem", recipient=RECIPIENT, context=context, max_attempts=2, dedupe_key="a")
    _enqueue(database, channel="email", recipient=RECIPIENT, context=context, max_attempts=2, dedupe_key="b")
    channels = {
        "siem": WebhookChannel(http_server.url, SECRET, timeout=5),
        "email": SmtpChannel(smtp_server.host, smtp_server.port, sender="irflow@example.net", timeout=5),
    }
    deliver_due(database, channels)
    frozen.advance(timedelta(seconds=30))
    report = deliver_due(database, channels)
    assert report.failed  # webhook: out of attempts; e-mail: refused for good on the first attempt

    forbidden = [RECIPIENT, "pat.placeholder", PATIENT_NAME, "123-45-6789", SECRET]
    logs = captured_logs.getvalue()
    assert "notification queued" in logs and "notification failed" in logs
    audit = "\n".join(e.payload for e in _events(database))
    with database.transaction() as session:
        errors = "\n".join(r.last_error or "" for r in session.execute(select(Notification)).scalars())
    assert "503" in errors and "550" in errors
    for text in (logs, audit, errors, "\n".join(f.error for f in report.failed)):
        for value in forbidden:
            assert value not in text
    assert fingerprint(RECIPIENT) in audit and fingerprint(RECIPIENT) in logs


def test_a_late_outcome_from_a_worker_whose_lease_ran_out_is_ignored(
    database: Database, frozen: clock.FrozenClock
) -> None:
    notification = _enqueue(database)
    (stale,) = _claim(
        database,
        ["email"],
        now=clock.now(),
        limit=1,
        actor="system:notify",
        lease=timedelta(minutes=5),
        report=DeliveryReport(),
    )
    frozen.advance(timedelta(minutes=5))
    assert deliver_due(database, {"email": Recording()}).sent == [notification.id]
    report = DeliveryReport()
    _record(
        database,
        stale,
        DeliveryError("late failure", retryable=False),
        actor="system:notify",
        report=report,
        backoff_base=timedelta(seconds=30),
        backoff_cap=timedelta(hours=1),
    )
    assert report.lost_lease == [notification.id] and not report.failed
    assert _row(database, notification.id).status == "sent"
    assert _types(database)[-1] == "notification.sent"
