"""Stripe webhook events processed: each handler applies its effects under a row lock on
the stored event and its status, so a duplicate delivery or a second worker never
applies them twice.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import Company
from accounts.selectors import company_owner_emails
from audit.services import Actor, Target, audit_record
from billing.stripe.gateway import StripeClient, StripeGatewayError, stripe_client
from billing.stripe.models import (
    BillingEvent,
    BillingEventKind,
    BillingEventStatus,
    CompanyStripe,
    StripeWebhookEvent,
    WebhookEventStatus,
)
from billing.stripe.subscriptions import (
    billing_effect_record,
    company_from_object,
    company_status_apply,
    event_order_key,
    invoice_outcome_record,
    locked_mapping,
    subscription_apply,
)
from billing.stripe.webhook_intake import webhook_event_enqueue
from core.money import format_money
from ops.services import notify, ops_task_open

logger = logging.getLogger(__name__)

STRIPE = Actor.external("stripe")


@dataclass
class _Prepared:
    """What a handler needed from Stripe, fetched before any lock is taken."""

    subscription: dict[str, Any] | None = None


def _prepare(event: StripeWebhookEvent, client: StripeClient | None) -> _Prepared:
    obj = event.payload.get("data", {}).get("object") or {}
    if (
        event.type == "checkout.session.completed"
        and obj.get("mode") == "subscription"
        and obj.get("subscription")
    ):
        sub_id = (
            obj["subscription"] if isinstance(obj["subscription"], str) else obj["subscription"].get("id")
        )
        return _Prepared(subscription=(client or stripe_client()).subscription_retrieve(sub_id))
    return _Prepared()


def _on_checkout_completed(event: StripeWebhookEvent, obj: dict[str, Any], prepared: _Prepared) -> str:
    company = company_from_object(obj)
    if company is None:
        return "no company for this session"
    if obj.get("payment_status") not in ("paid", "no_payment_required") or prepared.subscription is None:
        return f"not paid yet ({obj.get('payment_status')})"
    mapping = locked_mapping(company)
    if obj.get("customer") and not mapping.customer_id:
        CompanyStripe.objects.filter(pk=mapping.pk).update(customer_id=obj["customer"])
    new_sub = prepared.subscription.get("id")
    if (
        mapping.subscription_id
        and mapping.subscription_id != new_sub
        and mapping.subscription_status not in ("", "canceled", "incomplete_expired")
    ):
        # Two checkouts paid (two tabs, two people): the company now pays twice.
        ops_task_open(
            kind="billing.duplicate_subscription",
            title=f"Two live Stripe subscriptions: {company}",
            details=(
                f"Checkout session {obj.get('id')} created subscription {new_sub} while {company} already "
                f"has the live subscription {mapping.subscription_id} ({mapping.subscription_status}). "
                "The company follows the newest one. Cancel and refund the one it should not pay for "
                "in the Stripe dashboard."
            ),
            severity="high",
            company=company,
            dedup_key=f"billing.duplicate_subscription:{company.pk}:{new_sub}",
        )
    before_tier = company.tier
    effects = subscription_apply(
        company=company,
        sub=prepared.subscription,
        key=event_order_key(event),
        event=event,
        effect_kind=BillingEventKind.TIER_CHANGE,
    )
    requested = BillingEvent.objects.filter(
        kind__in=[BillingEventKind.UPGRADE, BillingEventKind.DOWNGRADE],
        company=company,
        stripe_object_id=obj.get("id"),
        status=BillingEventStatus.PENDING,
    ).first()
    details = {"session": obj.get("id"), "subscription": prepared.subscription.get("id"), "effects": effects}
    if requested is not None:
        BillingEvent.objects.filter(pk=requested.pk).update(
            status=BillingEventStatus.SENT,
            sent_at=timezone.now(),
            stripe_event_id=event.stripe_id,
            details={**requested.details, "completed": details},
        )
        audit_record(
            action="billing.upgrade.completed",
            actor=STRIPE,
            target=requested,
            company=company,
            details={"stripe_event": event.stripe_id, "from": before_tier.code, **details},
        )
    else:
        billing_effect_record(
            kind=BillingEventKind.UPGRADE,
            company=company,
            event=event,
            object_id=str(obj.get("id") or ""),
            action="billing.upgrade.completed",
            details=details,
        )
    return "; ".join(effects)


def _on_subscription(event: StripeWebhookEvent, obj: dict[str, Any], prepared: _Prepared) -> str:
    company = company_from_object(obj)
    if company is None:
        return "no company for this subscription"
    effects = subscription_apply(
        company=company,
        sub=obj,
        key=event_order_key(event),
        event=event,
        deleted=event.type == "customer.subscription.deleted",
    )
    return "; ".join(effects)


def _invoice_company(obj: dict[str, Any]) -> Company | None:
    company = company_from_object({"customer": obj.get("customer")})
    if company is None:
        details = ((obj.get("parent") or {}).get("subscription_details") or {}).get("metadata") or {}
        company = company_from_object({"metadata": details})
    return company


def _invoice_subscription(obj: dict[str, Any]) -> str | None:
    """The subscription an invoice belongs to (``parent.subscription_details`` since
    2025-03-31.basil, ``subscription`` before), or None for a one-off invoice."""
    details = (obj.get("parent") or {}).get("subscription_details") or {}
    sub = details.get("subscription") or obj.get("subscription")
    if isinstance(sub, dict):
        sub = sub.get("id")
    return str(sub) if sub else None


def _for_current_subscription(mapping: CompanyStripe, obj: dict[str, Any]) -> bool:
    """An invoice of another (older) subscription never changes the company's status."""
    sub = _invoice_subscription(obj)
    return sub is None or not mapping.subscription_id or sub == mapping.subscription_id


def _on_invoice_paid(event: StripeWebhookEvent, obj: dict[str, Any], prepared: _Prepared) -> str:
    company = _invoice_company(obj)
    if company is None:
        return "no company for this invoice"
    mapping = locked_mapping(company)
    before = None
    # Paid never revives a canceled company nor ends a trial (see derived_status).
    if _for_current_subscription(mapping, obj) and invoice_outcome_record(
        mapping=mapping, outcome="paid", key=event_order_key(event)
    ):
        before = company_status_apply(company=company, mapping=mapping, actor=STRIPE)
    billing_effect_record(
        kind=BillingEventKind.INVOICE_PAID,
        company=company,
        event=event,
        object_id=str(obj.get("id") or ""),
        action="billing.invoice.paid",
        details={"status_before": before, "amount_paid": obj.get("amount_paid")},
        amount=int(obj.get("amount_paid") or 0),
        currency=str(obj.get("currency") or "usd").upper()[:3],
    )
    return "invoice paid" + (f"; status {before} → active" if before else "")


def _on_payment_failed(event: StripeWebhookEvent, obj: dict[str, Any], prepared: _Prepared) -> str:
    company = _invoice_company(obj)
    if company is None:
        return "no company for this invoice"
    invoice_id = str(obj.get("id") or event.stripe_id)
    mapping = locked_mapping(company)
    before = None
    newest = _for_current_subscription(mapping, obj) and invoice_outcome_record(
        mapping=mapping, outcome="failed", key=event_order_key(event)
    )
    if newest:
        before = company_status_apply(company=company, mapping=mapping, actor=STRIPE)
    amount = int(obj.get("amount_due") or 0)
    currency = str(obj.get("currency") or "usd")
    billing_event = billing_effect_record(
        kind=BillingEventKind.PAYMENT_FAILED,
        company=company,
        event=event,
        object_id=invoice_id,
        action="billing.invoice.payment_failed",
        details={"status_before": before, "attempt_count": obj.get("attempt_count")},
        amount=amount,
        currency=currency.upper()[:3],
    )
    # A late failure of an invoice that Stripe has since seen paid tells nobody anything:
    # no task, no e-mail; the BillingEvent above keeps the fact. "Since" by Stripe's
    # created, not by arrival. (A late failure of another invoice is still worth a look.)
    paid_by = BillingEvent.objects.filter(
        kind=BillingEventKind.INVOICE_PAID, company=company, stripe_object_id=invoice_id
    ).values("stripe_event_id")
    paid_since = StripeWebhookEvent.objects.filter(stripe_id__in=paid_by, created__gt=event.created).exists()
    if paid_since and not newest:
        return "payment failed after the invoice was paid: recorded only"
    next_attempt = obj.get("next_payment_attempt")
    when = (
        f"Stripe tries again on {datetime.fromtimestamp(next_attempt, tz=UTC):%Y-%m-%d %H:%M} UTC."
        if isinstance(next_attempt, int)
        else "Stripe will not retry automatically."
    )
    ops_task_open(
        kind="billing.payment_failed",
        title=f"Payment failed: {company} ({format_money(amount, currency)})",
        details=(
            f"Invoice {invoice_id} of {company} for {format_money(amount, currency)} could not be charged. "
            f"The company is now past due. {when} Contact the owners if the next attempt fails too."
        ),
        severity="high",
        company=company,
        target=billing_event,
        dedup_key=f"billing.payment_failed:{invoice_id}",
    )
    owners = company_owner_emails(company)
    if owners:
        link = obj.get("hosted_invoice_url") or settings.BILLING_RETURN_URL
        notify(
            kind="billing.payment_failed",
            title=f"Your Trans Bot payment of {format_money(amount, currency)} failed",
            text=(
                f"We could not charge the payment method on file for invoice {invoice_id} "
                f"({format_money(amount, currency)}). {when} Please update your payment method: {link}"
            ),
            severity="warning",
            link=link,
            company=company,
            dedup_key=f"billing.payment_failed.owners:{invoice_id}",
            slack=False,
            email_to=owners,
        )
    return "payment failed; past due" if before else "payment failed"


def _on_meter_error(event: StripeWebhookEvent, obj: dict[str, Any], prepared: _Prepared) -> str:
    data = event.payload.get("data") or {}
    summary = (
        data.get("developer_message_summary")
        or obj.get("developer_message_summary")
        or json.dumps(data.get("reason") or obj.get("reason") or data, default=str)[:1000]
    )
    company = company_from_object(obj) if obj else None
    with transaction.atomic():
        ops_task_open(
            kind="billing.meter_error",
            title="Stripe rejected meter events",
            details=(
                f"Stripe reported errors on meter events (event {event.stripe_id}): {summary}\n"
                "Usage in these events is not billed. Check the meter mappings and customer ids, "
                "then compare with `manage.py billing_reconcile`."
            ),
            severity="high",
            company=company,
            dedup_key=f"billing.meter_error:{event.stripe_id}",
        )
        if company is not None:
            billing_effect_record(
                kind=BillingEventKind.METER_ERROR,
                company=company,
                event=event,
                action="billing.meter.error_report",
                details={"summary": str(summary)[:1000]},
            )
        else:
            audit_record(
                action="billing.meter.error_report",
                actor=STRIPE,
                target=Target("stripe.event", event.stripe_id, event.type),
                details={"summary": str(summary)[:1000]},
            )
    return "meter error report: ops task"


HANDLERS = {
    "checkout.session.completed": _on_checkout_completed,
    "customer.subscription.created": _on_subscription,
    "customer.subscription.updated": _on_subscription,
    "customer.subscription.deleted": _on_subscription,
    "invoice.paid": _on_invoice_paid,
    "invoice.payment_failed": _on_payment_failed,
    "billing.meter.error_report_triggered": _on_meter_error,
    "v1.billing.meter.error_report_triggered": _on_meter_error,
}

DONE = (WebhookEventStatus.PROCESSED, WebhookEventStatus.IGNORED)


# Tries before an event is handed to ops (the first and eight retries: 10 s, 20 s, ...
# about 40 min in all), and the backoff before the try after ``attempts`` failures.
WEBHOOK_MAX_ATTEMPTS = 9
WEBHOOK_RETRY_BASE = timedelta(seconds=10)


def webhook_retry_delay(attempts: int) -> timedelta:
    return WEBHOOK_RETRY_BASE * 2 ** max(attempts - 1, 0)


class WebhookProcessingError(Exception):
    """Processing failed and was recorded on the event. ``retry_in``: seconds until the
    next try is due (its task should be queued with that countdown), or None when that was
    the last try and an ops task now says so."""

    def __init__(self, message: str, *, retry_in: float | None) -> None:
        super().__init__(message)
        self.retry_in = retry_in


def webhook_event_process(*, webhook_event_id: int, client: StripeClient | None = None) -> str:
    """Apply a stored event's effects exactly once. The event row is locked for the
    duration and its status checked under the lock, so concurrent workers and repeat
    deliveries do nothing the second time. Raises ``WebhookProcessingError`` (after
    recording the error) when a retry may help."""
    event = StripeWebhookEvent.objects.filter(pk=webhook_event_id).first()
    if event is None or event.status in DONE:
        return "skipped"
    handler = HANDLERS.get(event.type)
    if handler is None:
        StripeWebhookEvent.objects.filter(pk=event.pk, status__in=[WebhookEventStatus.RECEIVED]).update(
            status=WebhookEventStatus.IGNORED, processed_at=timezone.now(), outcome="type not handled"
        )
        return WebhookEventStatus.IGNORED
    try:
        prepared = _prepare(event, client)
    except StripeGatewayError as exc:
        with transaction.atomic():
            locked = StripeWebhookEvent.objects.select_for_update().get(pk=event.pk)
            if locked.status in DONE:
                return "skipped"
            retry_in = _record_failure(locked, f"fetching from Stripe: {exc}")
        raise WebhookProcessingError(str(exc), retry_in=retry_in) from exc

    error: str | None = None
    with transaction.atomic():
        locked = StripeWebhookEvent.objects.select_for_update().get(pk=event.pk)
        if locked.status in DONE:
            return "skipped"
        obj = (locked.payload.get("data") or {}).get("object") or {}
        try:
            with transaction.atomic():
                outcome = handler(locked, obj, prepared)
        except Exception as exc:  # recorded on the event; the task retries
            logger.exception("Stripe event %s (%s) failed", locked.stripe_id, locked.type)
            error = f"{exc.__class__.__name__}: {exc}"
        if error is None:
            StripeWebhookEvent.objects.filter(pk=locked.pk).update(
                status=WebhookEventStatus.PROCESSED,
                processed_at=timezone.now(),
                attempts=F("attempts") + 1,
                outcome=outcome[:200],
                error="",
                next_attempt_at=None,
            )
            return WebhookEventStatus.PROCESSED
        retry_in = _record_failure(locked, error)
    raise WebhookProcessingError(error, retry_in=retry_in)


def _record_failure(locked: StripeWebhookEvent, error: str) -> float | None:
    """Record a failed try on the locked event: when the next one is due, or, after the
    last, no next try and an ops task. Returns the seconds until the next try, or None."""
    attempts = locked.attempts + 1
    last = attempts >= WEBHOOK_MAX_ATTEMPTS
    delay = webhook_retry_delay(attempts)
    StripeWebhookEvent.objects.filter(pk=locked.pk).update(
        status=WebhookEventStatus.FAILED,
        attempts=attempts,
        error=error[:2000],
        next_attempt_at=None if last else timezone.now() + delay,
    )
    if not last:
        return delay.total_seconds()
    ops_task_open(
        kind="billing.webhook_failed",
        title=f"Stripe event not processed: {locked.type} {locked.stripe_id}",
        details=(
            f"Processing failed {attempts} time(s); no more automatic tries. Last error: {error[:2000]}\n"
            "Fix the cause, then use 'Process again' on the webhook event."
        ),
        severity="high",
        target=locked,
        dedup_key=f"billing.webhook_failed:{locked.stripe_id}",
    )
    return None


def webhook_events_sweep(*, now: datetime | None = None, limit: int = 500) -> int:
    """Queue processing for stored events nobody is processing: never queued, or a retry
    whose message was lost. Safe to overlap with a live task: processing locks the event
    row and skips what is done. An event past its last try is not here: an ops task has it."""
    now = now or timezone.now()
    # Still "received" this long after it arrived, or still "failed" this long after its
    # next try was due: its task was lost (the broker was down or restarted).
    lost = now - timedelta(seconds=settings.STRIPE_WEBHOOK_SWEEP_AFTER_SECONDS)
    stuck = list(
        StripeWebhookEvent.objects.filter(
            Q(status=WebhookEventStatus.RECEIVED, received_at__lte=lost)
            | Q(status=WebhookEventStatus.FAILED, next_attempt_at__lte=lost)
        )
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in stuck:
        webhook_event_enqueue(pk)
    return len(stuck)


def webhook_event_reprocess(
    *, event: StripeWebhookEvent, actor: Actor, client: StripeClient | None = None
) -> str:
    """Admin's 'process again': for an event that failed (or was never processed).
    Processed events are not applied twice."""
    with transaction.atomic():
        audit_record(
            action="billing.webhook.reprocess",
            actor=actor,
            target=event,
            details={"stripe_id": event.stripe_id, "status": event.status},
        )
    try:
        return webhook_event_process(webhook_event_id=event.pk, client=client)
    except WebhookProcessingError as exc:
        return f"failed: {exc}"
