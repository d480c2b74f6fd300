"""The only place that talks to Slack and the mail server.

Every failure comes out as ``DeliveryError``, which says whether trying again later can
help (Slack down, rate-limited, connection refused, no answer in time) or not (the webhook
is revoked, the address is refused), so the outbox knows whether to back off or give up.
Every call has a deadline (``SLACK_TIMEOUT_SECONDS``, ``EMAIL_TIMEOUT``): a server that
accepts and never answers costs a worker that long, not for ever.
"""

from __future__ import annotations

import smtplib
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from slack_sdk.webhook import WebhookClient


class DeliveryError(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def slack_post(*, url: str, text: str, blocks: list[dict[str, Any]]) -> None:
    """Post one Block Kit message to an incoming webhook; ``text`` is the fallback shown
    in notifications and by clients that cannot render blocks."""
    client = WebhookClient(url, timeout=settings.SLACK_TIMEOUT_SECONDS)
    try:
        response = client.send(text=text, blocks=blocks)
    except Exception as exc:  # connection refused, DNS, timeout: the network, not us
        raise DeliveryError(f"Slack unreachable: {exc.__class__.__name__}: {exc}", retryable=True)
    if response.status_code == 200:
        return
    body = (response.body or "")[:300]
    retryable = response.status_code >= 500 or response.status_code == 429
    raise DeliveryError(f"Slack answered HTTP {response.status_code}: {body}", retryable=retryable)


def email_send(*, subject: str, body: str, to: list[str]) -> None:
    """Through Django's mail backend; ``EMAIL_TIMEOUT`` bounds every SMTP connect and answer."""
    message = EmailMessage(subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=to)
    try:
        message.send(fail_silently=False)
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryError(f"mail server refused the recipients: {exc}", retryable=False)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"mail server error: {exc.__class__.__name__}: {exc}", retryable=True)
