"""The outbox's channels, built from settings: only those configured exist."""

from __future__ import annotations

from irflow.notify.channels import Channel, SlackChannel, SmtpChannel, TeamsChannel, WebhookChannel
from irflow.settings import Settings

SUBMISSIONS_PORT = 465


def channels_from_settings(settings: Settings) -> dict[str, Channel]:
    channels: dict[str, Channel] = {}
    if settings.smtp_host:
        if not settings.smtp_from:
            raise ValueError("IRFLOW_SMTP_HOST is set but IRFLOW_SMTP_FROM (the sender address) is not")
        # Port 465 is submission over implicit TLS (RFC 8314 section 7.3); elsewhere STARTTLS when enabled.
        implicit_tls = settings.smtp_port == SUBMISSIONS_PORT
        channels["email"] = SmtpChannel(
            settings.smtp_host,
            settings.smtp_port,
            sender=settings.smtp_from,
            starttls=settings.smtp_starttls and not implicit_tls,
            implicit_tls=implicit_tls,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        )
    if settings.slack_webhook_url:
        channels["slack"] = SlackChannel(settings.slack_webhook_url.get_secret_value())
    if settings.teams_webhook_url:
        channels["teams"] = TeamsChannel(settings.teams_webhook_url.get_secret_value())
    if settings.notify_webhook_url:
        if not settings.notify_webhook_secret:
            raise ValueError("IRFLOW_NOTIFY_WEBHOOK_URL needs IRFLOW_NOTIFY_WEBHOOK_SECRET to sign its calls")
        channels["webhook"] = WebhookChannel(
            settings.notify_webhook_url.get_secret_value(), settings.notify_webhook_secret.get_secret_value()
        )
    return channels
