"""Stripe webhooks in: verify the signature, store each event once by id, queue it.

Nothing a signed delivery carries gives a 500: an event we cannot read (``created`` not a
Unix time, nesting past 64 levels) is a 400 counted with the forged ones, with its event
id; text PostgreSQL cannot hold (NUL, lone surrogates) is stored repaired and marked
failed with an ops task.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from typing import Any

import stripe
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from billing.stripe.models import StripeWebhookEvent, WebhookEventStatus, WebhookRejection
from core.json_input import MAX_INT, MAX_JSON_DEPTH, json_problem, json_text_repaired, json_too_deep
from core.queue import enqueue
from core.tenant_scope import ops_scope
from ops.services import ops_task_open

logger = logging.getLogger(__name__)


class WebhookRejected(Exception):
    """``event_id``: the id a correctly signed but unusable event carried (for ops to replay it)."""

    def __init__(self, reason: str, message: str, *, event_id: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.event_id = event_id


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
    except RecursionError:
        raise WebhookRejected("malformed", "Body nests too deeply.")
    except ValueError:
        raise WebhookRejected("malformed", "Body is not JSON.")
    if not isinstance(event, dict):
        raise WebhookRejected("malformed", "Not a Stripe event (id, type, created).")
    event_id = event.get("id")
    shown_id = json_text_repaired(event_id)[0][:100] if isinstance(event_id, str) else ""
    created = event.get("created")
    if not (
        isinstance(event_id, str)
        and event_id
        and json_problem(event_id) is None
        and isinstance(event.get("type"), str)
        and json_problem(event["type"]) is None
        # bool is an int to Python; Stripe's created is Unix seconds, a bigint.
        and type(created) is int
        and 0 <= created <= MAX_INT
    ):
        raise WebhookRejected("malformed", "Not a Stripe event (id, type, created).", event_id=shown_id)
    if json_too_deep(event):
        raise WebhookRejected(
            "malformed", f"Body nests deeper than {MAX_JSON_DEPTH} levels.", event_id=shown_id
        )
    return event


def webhook_rejection_count(*, reason: str, event_id: str = "") -> None:
    """One counter per reason; nothing of the rejected delivery itself is kept, except the
    id of a correctly signed event we could not read (so ops can replay it from Stripe)."""
    table = connection.ops.quote_name(WebhookRejection._meta.db_table)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (reason, count, last_at, last_event_id) VALUES (%s, 1, %s, %s) "  # noqa: S608
            f"ON CONFLICT (reason) DO UPDATE SET count = {table}.count + 1, last_at = EXCLUDED.last_at, "
            f"last_event_id = CASE WHEN EXCLUDED.last_event_id = '' THEN {table}.last_event_id "
            "ELSE EXCLUDED.last_event_id END",
            [reason, now, event_id[:100]],
        )


def webhook_event_store(
    *, event: dict[str, Any], status: str = WebhookEventStatus.RECEIVED, error: str = ""
) -> tuple[int, bool]:
    """Store a verified event once by its Stripe id (``INSERT ... ON CONFLICT DO
    NOTHING``). Returns (row id, stored now); a repeat delivery only bumps a counter."""
    table = connection.ops.quote_name(StripeWebhookEvent._meta.db_table)
    payload_field = StripeWebhookEvent._meta.get_field("payload")
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (stripe_id, type, created, livemode, payload, status, attempts, "  # noqa: S608
            "deliveries, error, outcome, received_at, last_delivery_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, 0, 1, %s, '', %s, %s) "
            "ON CONFLICT (stripe_id) DO NOTHING RETURNING id",
            [
                event["id"][:100],
                event["type"][:100],
                event["created"],
                bool(event.get("livemode")),
                payload_field.get_db_prep_value(event, connection),
                status,
                error,
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
        webhook_rejection_count(reason=exc.reason, event_id=exc.event_id)
        raise
    # Stripe may carry NUL or broken Unicode in customer-supplied text, which PostgreSQL
    # cannot store. Refusing it would fail every redelivery: store it with U+FFFD in their
    # place, unprocessed, and ask ops to look (admin's "process again" then applies it).
    stored, repaired = json_text_repaired(event)
    # Signed by Stripe: it may touch any company's rows (row-level security's ops scope).
    with ops_scope("stripe-webhook"), transaction.atomic():
        if not repaired:
            pk, created = webhook_event_store(event=event)
            if created:
                transaction.on_commit(partial(webhook_event_enqueue, pk))
            return pk, created
        error = (
            f"The payload carried NUL characters or broken Unicode at {', '.join(repaired[:5])}; "
            "stored with U+FFFD in their place and not processed automatically."
        )
        pk, created = webhook_event_store(event=stored, status=WebhookEventStatus.FAILED, error=error)
        if created:
            ops_task_open(
                kind="billing.webhook_failed",
                title=f"Stripe event not processed: {stored['type']} {stored['id']}"[:300],
                details=(
                    f"{error}\nCheck those fields in the event (admin, or the Stripe dashboard); if the "
                    "replacement characters do no harm, use 'Process again' on the webhook event."
                ),
                severity="high",
                target=StripeWebhookEvent.objects.get(pk=pk),
                dedup_key=f"billing.webhook_failed:{stored['id'][:100]}",
            )
    return pk, created


def webhook_event_enqueue(pk: int) -> None:
    try:
        enqueue("billing.tasks.process_stripe_event", pk)
    except Exception:  # broker down: the row is stored; "process again" or the sweep picks it up
        logger.warning("could not queue Stripe event #%s", pk, exc_info=True)
