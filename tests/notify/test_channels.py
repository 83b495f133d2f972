"""Channels against real peers on loopback: an SMTP server (aiosmtpd) and a local HTTP server."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from conftest import HttpServer, Received, SmtpServer, free_port

from irflow import clock
from irflow.notify.channels import (
    SIGNATURE_HEADER,
    Channel,
    DeliveryError,
    Message,
    SlackChannel,
    SmtpChannel,
    TeamsChannel,
    WebhookChannel,
    sign,
    signature,
    verify,
)

RECIPIENT = "pat.placeholder@example.org"
SECRET = "s3cret-webhook-key"


def _message(**changes: object) -> Message:
    data: dict[str, object] = {
        "recipient": RECIPIENT,
        "subject": "Notice of a data breach",
        "body": "WHAT HAPPENED\nA placeholder happened.\n",
        "notification_id": "00000000-0000-0000-0000-00000000000a",
        "incident_id": "inc-1",
        "template": "individual-notice.txt",
    }
    data.update(changes)
    return Message(**data)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# SMTP
# ------------------------------------------------------------------------------------------------


def test_smtp_delivers_to_a_real_server(smtp_server: SmtpServer, frozen: clock.FrozenClock) -> None:
    channel = SmtpChannel(smtp_server.host, smtp_server.port, sender="irflow@example.net", timeout=5)
    assert isinstance(channel, Channel)
    channel.send(_message())
    (mail,) = smtp_server.sink.messages
    assert smtp_server.sink.envelopes == [("irflow@example.net", [RECIPIENT])]
    assert mail["To"] == RECIPIENT and mail["From"] == "irflow@example.net"
    assert mail["Subject"] == "Notice of a data breach"
    assert mail["X-IRFlow-Notification-Id"] == "00000000-0000-0000-0000-00000000000a"
    assert "Sat, 01 Mar 2025 09:00:00" in mail["Date"]
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content().replace("\r\n", "\n") == "WHAT HAPPENED\nA placeholder happened.\n"


def test_smtp_sends_html_as_html(smtp_server: SmtpServer) -> None:
    channel = SmtpChannel(smtp_server.host, smtp_server.port, sender="irflow@example.net", timeout=5)
    channel.send(_message(body="<p>Dear Patient &amp; family</p>\n", content_type="text/html"))
    (mail,) = smtp_server.sink.messages
    assert mail.get_content_type() == "text/html"
    assert "<p>Dear Patient &amp; family</p>" in mail.get_content()


@pytest.mark.parametrize(
    ("reply", "retryable"), [("451 4.3.0 try again later", True), ("550 5.1.1 mailbox unavailable", False)]
)
def test_smtp_refused_recipient(smtp_server: SmtpServer, reply: str, retryable: bool) -> None:
    smtp_server.sink.refuse[RECIPIENT] = reply
    channel = SmtpChannel(smtp_server.host, smtp_server.port, sender="irflow@example.net", timeout=5)
    with pytest.raises(DeliveryError) as caught:
        channel.send(_message())
    assert caught.value.retryable is retryable
    assert RECIPIENT not in str(caught.value) and "refused the recipient" in str(caught.value)
    assert not smtp_server.sink.messages


def test_smtp_connection_refused_is_retryable() -> None:
    channel = SmtpChannel("127.0.0.1", free_port(), sender="irflow@example.net", timeout=5)
    with pytest.raises(DeliveryError) as caught:
        channel.send(_message())
    assert caught.value.retryable and RECIPIENT not in str(caught.value)


def test_smtp_starttls_not_offered_is_permanent(smtp_server: SmtpServer) -> None:
    channel = SmtpChannel(
        smtp_server.host, smtp_server.port, sender="irflow@example.net", starttls=True, timeout=5
    )
    with pytest.raises(DeliveryError) as caught:
        channel.send(_message())
    assert not caught.value.retryable
    assert not smtp_server.sink.messages


def test_smtp_credentials_go_together() -> None:
    with pytest.raises(ValueError):
        SmtpChannel("127.0.0.1", 25, sender="a@example.net", username="u")
    assert "hunter2" not in repr(
        SmtpChannel("h", 25, sender="a@example.net", username="u", password="hunter2")
    )


# ------------------------------------------------------------------------------------------------
# Generic webhook: signed, verified by the receiving server
# ------------------------------------------------------------------------------------------------


def _verifying(received: Received) -> tuple[int, dict[str, str], bytes]:
    ok = verify(SECRET, received.headers.get(SIGNATURE_HEADER.lower()), received.body, clock.now())
    return (204, {}, b"") if ok else (401, {}, b"bad signature")


def test_webhook_is_signed_and_the_receiver_verifies_it(
    http_server: HttpServer, frozen: clock.FrozenClock
) -> None:
    http_server.answer(_verifying)
    WebhookChannel(http_server.url + "/hook", SECRET, timeout=5).send(_message())
    (request,) = http_server.received
    header = request.headers[SIGNATURE_HEADER.lower()]
    assert header.startswith(f"t={int(frozen().timestamp())},v1=")
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert body["id"] == "00000000-0000-0000-0000-00000000000a"
    assert body["subject"] == "Notice of a data breach" and body["template"] == "individual-notice.txt"


def test_webhook_with_the_wrong_secret_is_refused_by_the_receiver(
    http_server: HttpServer, frozen: clock.FrozenClock
) -> None:
    http_server.answer(_verifying)
    with pytest.raises(DeliveryError) as caught:
        WebhookChannel(http_server.url, "another-secret", timeout=5).send(_message())
    assert "401" in str(caught.value) and not caught.value.retryable


def test_sign_and_verify() -> None:
    body = b'{"a":1}'
    t = 1_740_819_600
    header = sign(SECRET, body, t)
    assert header == f"t={t},v1={signature(SECRET, body, t)}"
    assert verify(SECRET, header, body, t)
    assert verify(SECRET.encode(), header, body.decode(), t + 300)
    assert verify(SECRET, header, body, t - 300)
    assert not verify(SECRET, header, body, t + 301)  # replay window
    assert not verify(SECRET, header, body, t - 301)
    assert not verify(SECRET, header, body + b" ", t)  # body changed
    assert not verify("other", header, body, t)
    assert verify(SECRET, f"t={t},v1={'0' * 64},v1={signature(SECRET, body, t)}", body, t)  # rotation
    for bad in (
        "",
        None,
        "garbage",
        f"t={t}",
        f"v1={signature(SECRET, body, t)}",
        "t=x,v1=ab",
        f"t={t},t={t},v1={signature(SECRET, body, t)}",
        f"t=-{t},v1=00",
        "t" * 5000,
    ):
        assert not verify(SECRET, bad, body, t)
    assert not verify("", header, body, t)


def test_verify_takes_a_datetime(frozen: clock.FrozenClock) -> None:
    t = int(frozen().timestamp())
    header = sign(SECRET, b"x", t)
    assert verify(SECRET, header, b"x", frozen())
    frozen.advance(timedelta(seconds=301))
    assert not verify(SECRET, header, b"x", clock.now())


# ------------------------------------------------------------------------------------------------
# Slack and Teams: documented payloads, status handling
# ------------------------------------------------------------------------------------------------


def test_slack_payload_shape(http_server: HttpServer) -> None:
    SlackChannel(http_server.url + "/services/T000/B000/XXXX", timeout=5).send(
        _message(recipient="#ir-oncall")
    )
    (request,) = http_server.received
    assert request.path == "/services/T000/B000/XXXX"
    payload = request.json()
    assert payload["text"].startswith("Notice of a data breach")
    header, section = payload["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "Notice of a data breach"}}
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert "A placeholder happened." in section["text"]["text"]


def test_slack_recipient_url_overrides_and_long_text_is_clipped(http_server: HttpServer) -> None:
    SlackChannel(timeout=5).send(
        _message(recipient=http_server.url + "/other", body="x" * 5000, subject="s" * 300)
    )
    payload = http_server.received[0].json()
    assert http_server.received[0].path == "/other"
    assert len(payload["blocks"][0]["text"]["text"]) == 150
    assert len(payload["blocks"][1]["text"]["text"]) == 3000 and len(payload["text"]) <= 3000


def test_teams_adaptive_card_shape(http_server: HttpServer) -> None:
    http_server.answer(lambda r: (202, {}, b""))
    TeamsChannel(http_server.url + "/workflows/abc", timeout=5).send(_message(recipient="IR channel"))
    payload = http_server.received[0].json()
    assert payload["type"] == "message"
    (attachment,) = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    title, text = card["body"]
    assert title["type"] == "TextBlock" and title["text"] == "Notice of a data breach"
    assert text["type"] == "TextBlock" and text["wrap"] is True and "A placeholder happened." in text["text"]


@pytest.mark.parametrize(
    ("status", "headers", "retryable", "retry_after"),
    [
        (429, {"Retry-After": "120"}, True, 120.0),
        (503, {}, True, None),
        (500, {}, True, None),
        (400, {}, False, None),
        (404, {}, False, None),
        (410, {}, False, None),
    ],
)
@pytest.mark.parametrize("kind", ["slack", "teams"])
def test_chat_status_handling(
    http_server: HttpServer,
    kind: str,
    status: int,
    headers: dict[str, str],
    retryable: bool,
    retry_after: float | None,
) -> None:
    url = http_server.url + "/services/T000/B000/SECRETPART"
    http_server.answer(lambda r: (status, headers, f"error for {url}".encode()))
    channel = SlackChannel(url, timeout=5) if kind == "slack" else TeamsChannel(url, timeout=5)
    with pytest.raises(DeliveryError) as caught:
        channel.send(_message(recipient="#ir"))
    assert caught.value.retryable is retryable and caught.value.retry_after == retry_after
    assert str(status) in str(caught.value)
    assert "SECRETPART" not in str(caught.value)  # the webhook URL is a secret


def test_chat_connection_refused_is_retryable_and_hides_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/services/T000/B000/SECRETPART"
    with pytest.raises(DeliveryError) as caught:
        SlackChannel(url, timeout=5).send(_message(recipient="#ir"))
    assert caught.value.retryable and "SECRETPART" not in str(caught.value)
    assert "SECRETPART" not in repr(SlackChannel(url))


def test_chat_without_url_is_a_permanent_error() -> None:
    with pytest.raises(DeliveryError) as caught:
        TeamsChannel().send(_message(recipient="IR channel"))
    assert not caught.value.retryable
    with pytest.raises(ValueError):
        SlackChannel("ftp://example.net/x")


def test_webhook_body_is_compact_json(http_server: HttpServer) -> None:
    WebhookChannel(http_server.url, SECRET, timeout=5).send(_message())
    raw = http_server.received[0].body
    assert raw == json.dumps(json.loads(raw), separators=(",", ":")).encode()
