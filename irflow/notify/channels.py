"""Delivery channels: SMTP e-mail, Slack and Microsoft Teams incoming webhooks, a generic signed webhook.

A channel delivers one :class:`Message` or raises :class:`DeliveryError`, whose ``retryable`` tells the
outbox whether to try again. Error messages never carry the recipient address, a webhook URL (Slack and
Teams URLs are secrets) or the message body, and are redacted.

Generic webhook signature (the scheme of the Sentinel webhook, ``docs/notifications.md``)::

    X-IRFlow-Signature: t=<unix seconds>,v1=<hex hmac-sha256(secret, "<t>.<raw body>")>
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import httpx

from irflow import clock
from irflow.redaction import redact_text

SIGNATURE_HEADER = "X-IRFlow-Signature"
DEFAULT_TOLERANCE = 300
USER_AGENT = "irflow-notify/1"
# Slack: a section's text holds at most 3000 characters, a header's 150; Teams cards are capped near 28 KB.
_SLACK_SECTION_MAX = 3000
_SLACK_HEADER_MAX = 150
_TEAMS_TEXT_MAX = 20000


@dataclass(frozen=True)
class Message:
    """What a channel delivers. ``recipient`` is an e-mail address for SMTP; for Slack and Teams an optional
    webhook URL that overrides the channel's own; informational for the generic webhook."""

    recipient: str
    subject: str
    body: str
    content_type: str = "text/plain"
    notification_id: str | None = None
    incident_id: str | None = None
    template: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


class DeliveryError(Exception):
    """Delivery did not happen. ``retryable``: a later attempt may succeed (timeouts, 4xx SMTP replies,
    HTTP 429 and 5xx); ``retry_after``: seconds the peer asked us to wait, when it said so."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(redact_text(message))
        self.retryable = retryable
        self.retry_after = retry_after


@runtime_checkable
class Channel(Protocol):
    def send(self, message: Message) -> None: ...


# ------------------------------------------------------------------------------------------------
# SMTP
# ------------------------------------------------------------------------------------------------


class SmtpChannel:
    """E-mail through an SMTP relay (smtplib). ``starttls`` upgrades the connection before any login;
    ``implicit_tls`` speaks TLS from the first byte (submissions port 465, RFC 8314 section 3.3);
    ``ssl_context`` defaults to the system trust store. Credentials travel only inside TLS: a channel with
    a username and neither is refused when it is built (RFC 8314 section 3 asks clients to use TLS for
    submission; AUTH PLAIN over cleartext hands the password to anyone on the path)."""

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        sender: str,
        starttls: bool = False,
        implicit_tls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        if (username is None) != (password is None):
            raise ValueError("SMTP username and password go together")
        if starttls and implicit_tls:
            raise ValueError("SMTP: choose STARTTLS or implicit TLS, not both")
        if username is not None and not (starttls or implicit_tls):
            raise ValueError(
                "SMTP credentials are sent only over TLS: set IRFLOW_SMTP_STARTTLS=true, or use port 465 "
                "(implicit TLS), or remove IRFLOW_SMTP_USERNAME and IRFLOW_SMTP_PASSWORD"
            )
        self.host, self.port, self.sender = host, port, sender
        self.starttls, self.implicit_tls, self.timeout = starttls, implicit_tls, timeout
        self._username, self._password = username, password
        self._ssl_context = ssl_context
        self._local_hostname = local_hostname

    def __repr__(self) -> str:  # never the password
        return (
            f"SmtpChannel(host={self.host!r}, port={self.port}, starttls={self.starttls}, "
            f"implicit_tls={self.implicit_tls})"
        )

    def build(self, message: Message) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.recipient
        mail["Subject"] = message.subject
        mail["Date"] = clock.now()
        domain = self.sender.rpartition("@")[2] or None
        mail["Message-ID"] = make_msgid(idstring=message.notification_id, domain=domain)
        if message.notification_id:
            mail["X-IRFlow-Notification-Id"] = message.notification_id
        for name, value in message.headers.items():
            mail[name] = value
        subtype = "html" if message.content_type == "text/html" else "plain"
        mail.set_content(message.body, subtype=subtype, charset="utf-8")
        return mail

    def send(self, message: Message) -> None:
        mail = self.build(message)
        try:
            with self._connect() as smtp:
                smtp.ehlo()
                if self.starttls:
                    smtp.starttls(context=self._ssl_context or ssl.create_default_context())
                    smtp.ehlo()
                if self._username is not None and self._password is not None:
                    if not isinstance(smtp.sock, ssl.SSLSocket):  # the constructor's rule, checked again
                        raise DeliveryError("SMTP: refusing to send credentials without TLS", retryable=False)
                    smtp.login(self._username, self._password)
                refused = smtp.send_message(mail, from_addr=self.sender, to_addrs=[message.recipient])
                if refused:  # only possible with several recipients; kept for safety
                    code = next(iter(refused.values()))[0]
                    raise DeliveryError(
                        f"SMTP server refused the recipient ({code})", retryable=_smtp_4xx(code)
                    )
        except DeliveryError:
            raise
        except smtplib.SMTPRecipientsRefused as exc:
            code = next(iter(exc.recipients.values()))[0] if exc.recipients else 550
            raise DeliveryError(
                f"SMTP server refused the recipient ({code})", retryable=_smtp_4xx(code)
            ) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"SMTP authentication failed ({exc.smtp_code})", retryable=False) from None
        except smtplib.SMTPSenderRefused as exc:
            raise DeliveryError(
                f"SMTP server refused the sender ({exc.smtp_code})", retryable=_smtp_4xx(exc.smtp_code)
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"SMTP server answered {exc.smtp_code}: {_smtp_text(exc.smtp_error, message.recipient)}",
                retryable=_smtp_4xx(exc.smtp_code),
            ) from None
        except smtplib.SMTPNotSupportedError as exc:  # e.g. STARTTLS or AUTH not offered
            raise DeliveryError(
                f"SMTP server does not support a required extension: {exc}", retryable=False
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(
                f"SMTP connection to {self.host}:{self.port} failed: {type(exc).__name__}", retryable=True
            ) from None

    def _connect(self) -> smtplib.SMTP:
        if self.implicit_tls:
            return smtplib.SMTP_SSL(
                self.host,
                self.port,
                timeout=self.timeout,
                local_hostname=self._local_hostname,
                context=self._ssl_context or ssl.create_default_context(),
            )
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout, local_hostname=self._local_hostname)


def _smtp_4xx(code: int) -> bool:
    return 400 <= code < 500


def _smtp_text(raw: bytes | str, recipient: str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return scrub(text[:200], recipient)


def scrub(text: str, *secrets: str) -> str:
    """Remove the given values (recipient addresses, webhook URLs), then redact what is left."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[recipient]")
    return redact_text(text)


# ------------------------------------------------------------------------------------------------
# HTTP channels
# ------------------------------------------------------------------------------------------------


class _HttpChannel:
    kind = "http"

    def __init__(self, url: str | None, *, timeout: float = 10.0, client: httpx.Client | None = None) -> None:
        if url is not None:
            _check_url(url)
        self._url = url
        self._timeout = timeout
        self._client = client

    def __repr__(self) -> str:  # never the URL: chat webhook URLs are bearer secrets
        return f"{type(self).__name__}()"

    def _target(self, message: Message) -> str:
        if message.recipient.startswith(("https://", "http://")):
            try:
                _check_url(message.recipient)
            except ValueError as exc:
                raise DeliveryError(f"{self.kind}: {exc}", retryable=False) from None
            return message.recipient
        if self._url is None:
            raise DeliveryError(f"{self.kind}: no webhook URL configured", retryable=False)
        return self._url

    def _post(self, url: str, content: bytes, headers: Mapping[str, str], message: Message) -> httpx.Response:
        all_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers}
        try:
            if self._client is not None:
                response = self._client.post(url, content=content, headers=all_headers, timeout=self._timeout)
            else:
                with httpx.Client(timeout=self._timeout, follow_redirects=False) as client:
                    response = client.post(url, content=content, headers=all_headers)
        except httpx.TimeoutException:
            raise DeliveryError(f"{self.kind}: timed out", retryable=True) from None
        except httpx.TransportError as exc:
            raise DeliveryError(
                f"{self.kind}: connection failed ({type(exc).__name__})", retryable=True
            ) from None
        if response.is_success:
            return response
        detail = scrub(response.text[:200], url, message.recipient) if response.text else ""
        text = f"{self.kind}: webhook answered {response.status_code}" + (f": {detail}" if detail else "")
        status = response.status_code
        retryable = status in (408, 425, 429) or status >= 500
        raise DeliveryError(text, retryable=retryable, retry_after=_retry_after(response))


def _check_url(url: str) -> None:
    """HTTPS only: a webhook carries a bearer URL or a signed body. Plain http is allowed to a loopback
    address alone (tests and a local relay), where nothing crosses a network."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and _is_loopback(parts.hostname):
        return
    raise ValueError("a webhook URL must be https:// (plain http:// only to a loopback address)")


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: the outbox's own backoff applies


class SlackChannel(_HttpChannel):
    """Slack incoming webhook: ``{"text": …, "blocks": [header, section]}`` (``text`` is the notification
    fallback). Slack answers 200 ``ok``; 429 and 5xx are retried, other 4xx are not."""

    kind = "slack"

    def __init__(
        self, webhook_url: str | None = None, *, timeout: float = 10.0, client: httpx.Client | None = None
    ):
        super().__init__(webhook_url, timeout=timeout, client=client)

    @staticmethod
    def payload(message: Message) -> dict[str, Any]:
        return {
            "text": f"{message.subject}\n{message.body}"[:_SLACK_SECTION_MAX],
            "blocks": [
                {
                    "type": "header",
                    "text": {"type": "plain_text", "text": _clip(message.subject, _SLACK_HEADER_MAX)},
                },
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": _clip(message.body, _SLACK_SECTION_MAX)},
                },
            ],
        }

    def send(self, message: Message) -> None:
        url = self._target(message)
        self._post(url, json.dumps(self.payload(message)).encode("utf-8"), {}, message)


class TeamsChannel(_HttpChannel):
    """Microsoft Teams incoming webhook (a Workflows "when a Teams webhook request is received" URL):
    a ``message`` with one Adaptive Card attachment (title and body TextBlocks). Teams answers 200 or 202."""

    kind = "teams"

    def __init__(
        self, webhook_url: str | None = None, *, timeout: float = 10.0, client: httpx.Client | None = None
    ):
        super().__init__(webhook_url, timeout=timeout, client=client)

    @staticmethod
    def payload(message: Message) -> dict[str, Any]:
        return {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": None,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            {
                                "type": "TextBlock",
                                "text": message.subject,
                                "weight": "Bolder",
                                "size": "Medium",
                                "wrap": True,
                            },
                            {"type": "TextBlock", "text": _clip(message.body, _TEAMS_TEXT_MAX), "wrap": True},
                        ],
                    },
                }
            ],
        }

    def send(self, message: Message) -> None:
        url = self._target(message)
        self._post(url, json.dumps(self.payload(message)).encode("utf-8"), {}, message)


class WebhookChannel(_HttpChannel):
    """A generic JSON POST, signed: ``X-IRFlow-Signature: t=<unix seconds>,v1=<hex hmac-sha256>``.
    Body: ``{"id", "incident_id", "template", "recipient", "subject", "body", "content_type"}``."""

    kind = "webhook"

    def __init__(
        self, url: str, secret: str | bytes, *, timeout: float = 10.0, client: httpx.Client | None = None
    ) -> None:
        super().__init__(url, timeout=timeout, client=client)
        if not secret:
            raise ValueError("a webhook secret is required")
        self._secret = secret

    def _target(self, message: Message) -> str:
        assert self._url is not None
        return self._url

    @staticmethod
    def payload(message: Message) -> dict[str, Any]:
        return {
            "id": message.notification_id,
            "incident_id": message.incident_id,
            "template": message.template,
            "recipient": message.recipient,
            "subject": message.subject,
            "body": message.body,
            "content_type": message.content_type,
        }

    def send(self, message: Message) -> None:
        body = json.dumps(self.payload(message), separators=(",", ":")).encode("utf-8")
        t = int(clock.now().timestamp())
        headers = {SIGNATURE_HEADER: sign(self._secret, body, t)}
        if message.notification_id:
            headers["X-IRFlow-Notification-Id"] = message.notification_id
        self._post(self._target(message), body, headers, message)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------------------------------------
# Signatures
# ------------------------------------------------------------------------------------------------


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def signature(secret: str | bytes, body: str | bytes, t: int) -> str:
    """The ``v1`` value: hex HMAC-SHA256 of ``"<t>.<raw body>"`` under *secret*."""
    return hmac.new(
        _bytes(secret), str(int(t)).encode("ascii") + b"." + _bytes(body), hashlib.sha256
    ).hexdigest()


def sign(secret: str | bytes, body: str | bytes, t: int) -> str:
    """The ``X-IRFlow-Signature`` header value for *body* sent at unix time *t*."""
    return f"t={int(t)},v1={signature(secret, body, t)}"


def verify(
    secret: str | bytes,
    header: str | None,
    body: str | bytes,
    now: datetime | float | int,
    tolerance: int = DEFAULT_TOLERANCE,
) -> bool:
    """True when *header* signs *body* under *secret* with a timestamp within *tolerance* seconds of *now*
    (either side, against replay and skewed clocks). Several ``v1=`` values (secret rotation) are allowed;
    each is compared in constant time. Malformed headers are simply not valid."""
    try:
        return _verify(secret, header, body, now, tolerance)
    except (ValueError, TypeError, OverflowError, UnicodeError):
        return False  # a header or body that cannot even be read is not a valid signature


def _verify(
    secret: str | bytes, header: str | None, body: str | bytes, now: datetime | float | int, tolerance: int
) -> bool:
    if not header or not secret or not isinstance(header, str) or len(header) > 2048:
        return False
    t: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            # isdigit() alone admits "²" and other digits int() refuses: ASCII digits only
            if t is not None or not (value.isascii() and value.isdigit()) or len(value) > 12:
                return False
            t = int(value)
        elif key == "v1":
            candidates.append(value)
    if t is None or not candidates:
        return False
    current = now.timestamp() if isinstance(now, datetime) else float(now)
    if abs(current - t) > tolerance:
        return False
    expected = signature(secret, body, t).encode("ascii")
    ok = False
    for candidate in candidates:
        ok |= hmac.compare_digest(expected, candidate.encode("ascii", "replace"))
    return ok
