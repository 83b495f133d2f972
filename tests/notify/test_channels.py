"""Channels against real peers on loopback: an SMTP server (aiosmtpd) and a local HTTP server."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from conftest import HttpServer, Received, SmtpServer, SmtpSink, free_port

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
        SmtpChannel("h", 25, sender="a@example.net", starttls=True, username="u", password="hunter2")
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


# ------------------------------------------------------------------------------------------------
# Transport: credentials only inside TLS, webhooks over HTTPS, signatures that never raise
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def tls_files(tmp_path):  # type: ignore[no-untyped-def]
    from irflow.sim.ca import generate

    return generate(tmp_path)


def _tls_smtp(tls_files, *, implicit: bool):  # type: ignore[no-untyped-def]
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tls_files.cert_file, tls_files.key_file)
    logins: list[tuple[str, bool]] = []

    def authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        encrypted = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        logins.append((auth_data.login.decode(), encrypted))
        return AuthResult(success=auth_data.password == b"app-password-1")

    sink = SmtpSink()
    tls = (
        {"ssl_context": server_context}
        if implicit
        else {"tls_context": server_context, "require_starttls": True}
    )
    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=authenticator,
        auth_require_tls=not implicit,
        **tls,
    )
    controller.start()
    return controller, sink, logins


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "implicit-tls"])
def test_smtp_credentials_travel_inside_tls(tls_files, implicit: bool) -> None:  # type: ignore[no-untyped-def]
    import ssl

    controller, sink, logins = _tls_smtp(tls_files, implicit=implicit)
    try:
        channel = SmtpChannel(
            "127.0.0.1",
            controller.port,
            sender="irflow@example.net",
            starttls=not implicit,
            implicit_tls=implicit,
            username="irflow",
            password="app-password-1",
            ssl_context=ssl.create_default_context(cafile=str(tls_files.ca_file)),
            timeout=60,  # generous: a loaded CI machine is slow to finish a TLS handshake
        )
        channel.send(_message())
    finally:
        controller.stop()
    assert logins == [("irflow", True)]
    assert len(sink.messages) == 1


def test_smtp_credentials_without_tls_are_refused_before_any_connection(smtp_server: SmtpServer) -> None:
    with pytest.raises(ValueError, match="SMTP credentials are sent only over TLS"):
        SmtpChannel(smtp_server.host, smtp_server.port, sender="a@example.net", username="u", password="p")
    assert not smtp_server.sink.messages


def test_smtp_settings_refuse_cleartext_credentials_and_use_implicit_tls_on_465() -> None:
    from pydantic import SecretStr

    from irflow.notify.config import channels_from_settings
    from irflow.settings import Settings

    base = {"smtp_host": "smtp.example.net", "smtp_from": "irflow@example.net", "smtp_username": "irflow"}
    cleartext = Settings(**base, smtp_password=SecretStr("pw"), smtp_starttls=False, smtp_port=587)
    with pytest.raises(ValueError, match="IRFLOW_SMTP_STARTTLS=true, or use port 465"):
        channels_from_settings(cleartext)
    implicit = channels_from_settings(Settings(**base, smtp_password=SecretStr("pw"), smtp_port=465))["email"]
    assert implicit.implicit_tls and not implicit.starttls  # type: ignore[attr-defined]
    starttls = channels_from_settings(Settings(**base, smtp_password=SecretStr("pw"), smtp_port=587))["email"]
    assert starttls.starttls and not starttls.implicit_tls  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",
        "http://10.0.0.5/hook",
        "ftp://example.com/x",
        "https:///no-host",
        "hooks.example.com",
    ],
)
def test_webhook_urls_must_be_https(url: str) -> None:
    for build in (lambda: WebhookChannel(url, SECRET), lambda: SlackChannel(url), lambda: TeamsChannel(url)):
        with pytest.raises(ValueError, match="must be https://"):
            build()


def test_plain_http_only_to_loopback(http_server: HttpServer) -> None:
    for url in (
        "http://127.0.0.1:9/x",
        "http://localhost:9/x",
        "http://[::1]:9/x",
        "https://hooks.example.com/x",
    ):
        SlackChannel(url)
    with pytest.raises(DeliveryError, match="must be https://") as caught:
        SlackChannel(http_server.url).send(_message(recipient="http://hooks.example.com/elsewhere"))
    assert not caught.value.retryable and not http_server.received


@pytest.mark.parametrize(
    "header",
    [
        "t=\u00b2,v1=00",
        "t=\u0661\u0662\u0663,v1=00",
        "t=,v1=00",
        "t=1e9,v1=00",
        "t=-5,v1=00",
        "v1=00",
        "t=1,t=2,v1=00",
        "t=1",
        ",,,",
        "=",
        "t=99999999999999999999,v1=00",
        "t=1,v1=\u00e9\u00e9",
    ],
)
def test_malformed_signatures_fail_verification_without_raising(
    header: str, frozen: clock.FrozenClock
) -> None:
    assert verify(SECRET, header, b"{}", clock.now()) is False


def test_verify_never_raises_on_any_header_or_body() -> None:
    from hypothesis import given
    from hypothesis import strategies as st

    @given(header=st.text(max_size=80), body=st.text(max_size=40) | st.binary(max_size=40))
    def check(header: str, body: str | bytes) -> None:
        assert verify(SECRET, header, body, 1_700_000_000) in (True, False)

    check()
    assert verify(SECRET, "t=1,v1=00", "\ud800", 1) is False  # a lone surrogate cannot be signed
