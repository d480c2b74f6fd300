"""Stripe webhooks in: verify the signature, store each event once by id, queue it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import stripe
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from billing.stripe.models import StripeWebhookEvent, WebhookEventStatus, WebhookRejection
from core.queue import enqueue

logger = logging.getLogger(__name__)


class WebhookRejected(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def webhook_verify(*, body: bytes, signature: str | None) -> dict[str, Any]:
    """The verified event, or ``WebhookRejected``: no secret configured, no header, a
    wrong or stale signature (tolerance ``STRIPE_WEBHOOK_TOLERANCE``), or not an event."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise WebhookRejected("not_configured", "Webhook secret is not configured.")
    if not signature:
        raise WebhookRejected("missing_signature", "Missing Stripe-Signature header.")
    try:
        text = body.decode("utf-8")
        stripe.WebhookSignature.verify_header(text, signature, secret, settings.STRIPE_WEBHOOK_TOLERANCE)
    except UnicodeDecodeError:
        raise WebhookRejected("bad_signature", "Body is not UTF-8.")
    except stripe.SignatureVerificationError as exc:
        reason = "stale_signature" if "tolerance" in str(exc).lower() else "bad_signature"
        raise WebhookRejected(reason, "Invalid Stripe-Signature.")
    try:
        event = json.loads(text)
    except ValueError:
        raise WebhookRejected("malformed", "Body is not JSON.")
    if not (
        isinstance(event, dict)
        and isinstance(event.get("id"), str)
        and event["id"]
        and isinstance(event.get("type"), str)
        and isinstance(event.get("created"), int)
    ):
        raise WebhookRejected("malformed", "Not a Stripe event (id, type, created).")
    return event


def webhook_rejection_count(*, reason: str) -> None:
    """One counter per reason; nothing of the rejected delivery itself is kept."""
    table = connection.ops.quote_name(WebhookRejection._meta.db_table)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (reason, count, last_at) VALUES (%s, 1, %s) "  # noqa: S608
            f"ON CONFLICT (reason) DO UPDATE SET count = {table}.count + 1, last_at = EXCLUDED.last_at",
            [reason, now],
        )


def webhook_event_store(*, event: dict[str, Any]) -> tuple[int, bool]:
    """Store a verified event once by its Stripe id (``INSERT ... ON CONFLICT DO
    NOTHING``). Returns (row id, stored now); a repeat delivery only bumps a counter."""
    table = connection.ops.quote_name(StripeWebhookEvent._meta.db_table)
    payload_field = StripeWebhookEvent._meta.get_field("payload")
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (stripe_id, type, created, livemode, payload, status, attempts, "  # noqa: S608
            "deliveries, error, outcome, received_at, last_delivery_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, 0, 1, '', '', %s, %s) "
            "ON CONFLICT (stripe_id) DO NOTHING RETURNING id",
            [
                event["id"][:100],
                event["type"][:100],
                event["created"],
                bool(event.get("livemode")),
                payload_field.get_db_prep_value(event, connection),
                WebhookEventStatus.RECEIVED,
                now,
                now,
            ],
        )
        row = cursor.fetchone()
        if row is not None:
            return row[0], True
        cursor.execute(
            f"UPDATE {table} SET deliveries = deliveries + 1, last_delivery_at = %s "  # noqa: S608
            "WHERE stripe_id = %s RETURNING id",
            [now, event["id"][:100]],
        )
        return cursor.fetchone()[0], False


def webhook_event_receive(*, body: bytes, signature: str | None) -> tuple[int, bool]:
    """Verify, store once, and queue processing after commit. Raises ``WebhookRejected``
    (after counting it) for anything not signed by Stripe."""
    try:
        event = webhook_verify(body=body, signature=signature)
    except WebhookRejected as exc:
        webhook_rejection_count(reason=exc.reason)
        raise
    with transaction.atomic():
        pk, created = webhook_event_store(event=event)
        if created:
            transaction.on_commit(lambda: webhook_event_enqueue(pk))
    return pk, created


def webhook_event_enqueue(pk: int) -> None:
    try:
        enqueue("billing.tasks.process_stripe_event", pk)
    except Exception:  # broker down: the row is stored; "process again" or the sweep picks it up
        logger.warning("could not queue Stripe event #%s", pk, exc_info=True)
