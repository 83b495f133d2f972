"""Notifications: templates rendered from ``notifications/``, an audited outbox, delivery channels.

See ``docs/notifications.md``.
"""

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
    verify,
)
from irflow.notify.outbox import (
    DeliveryReport,
    FailedNotification,
    backoff,
    deliver_due,
    enqueue,
    failed_notifications,
    requeue,
)
from irflow.notify.render import Rendered, RenderError, list_templates, render

__all__ = [
    "SIGNATURE_HEADER",
    "Channel",
    "DeliveryError",
    "DeliveryReport",
    "FailedNotification",
    "Message",
    "RenderError",
    "Rendered",
    "SlackChannel",
    "SmtpChannel",
    "TeamsChannel",
    "WebhookChannel",
    "backoff",
    "deliver_due",
    "enqueue",
    "failed_notifications",
    "list_templates",
    "render",
    "requeue",
    "sign",
    "verify",
]
