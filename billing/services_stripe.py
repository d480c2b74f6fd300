"""Everything billing writes that involves Stripe: customers, overage reports (Billing
Meter events), reconciliation, webhook events and their effects, upgrades.

Rules this module keeps:

- A ``BillingEvent`` row exists (pending) *before* Stripe is called, and the Stripe call
  happens outside any database transaction. Its identifier is derived from (company,
  feature, period, sequence), so whatever happens between Stripe's answer and our commit
  (a crash, a lost answer, a second worker) the next attempt sends the same identifier,
  and Stripe's "already exists" answer counts as delivered. A double charge would need two
  rows with the same sequence, which the unique constraint forbids.
- Rows are claimed with a conditional UPDATE (pending -> sending) and the row count: only
  one worker sends a given report at a time.
- Webhook effects are applied under a row lock on the stored event and its status, so a
  duplicate delivery or a second worker never applies them twice; state that depends on
  time is last-writer-wins on Stripe's ``created`` (plus a rank for same-second events),
  never on delivery order.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Max, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from audit.services import Actor, Target, audit_record
from billing.gateways import StripeClient, StripeGatewayError, stripe_client
from billing.models import (
    BillingEvent,
    BillingEventKind,
    BillingEventStatus,
    Company,
    CompanyStatus,
    CompanyStripe,
    Feature,
    FeatureMeter,
    StripeWebhookEvent,
    Tier,
    TierFeaturePrice,
    TierLimit,
    TierPrice,
    WebhookEventStatus,
    WebhookRejection,
)
from billing.periods import previous_period_bounds
from billing.selectors import company_owner_emails, company_period
from billing.services import company_set_tier
from ops.services import admin_url, notify, ops_task_open
from trans_bot.money import format_money

logger = logging.getLogger(__name__)

STRIPE = Actor.external("stripe")
REPORTER = Actor.system("billing-overage")


# --- Customers -------------------------------------------------------------------------


def company_stripe_mapping(*, company: Company) -> CompanyStripe:
    mapping, _ = CompanyStripe.objects.get_or_create(company=company)
    return mapping


def stripe_customer_ensure(*, company: Company, client: StripeClient | None = None) -> str:
    """The company's Stripe customer id, creating the customer on first need. The
    idempotency key is per company, so two workers racing here create one customer."""
    mapping = company_stripe_mapping(company=company)
    if mapping.customer_id:
        return mapping.customer_id
    owners = company_owner_emails(company)
    customer = (client or stripe_client()).customer_create(
        name=company.name,
        email=owners[0] if owners else None,
        metadata={"company_id": str(company.pk), "company_slug": company.slug},
        idempotency_key=f"tb-customer-{company.pk}",
    )
    with transaction.atomic():
        if CompanyStripe.objects.filter(pk=mapping.pk, customer_id__isnull=True).update(
            customer_id=customer["id"]
        ):
            audit_record(
                action="billing.stripe.customer_create",
                actor=REPORTER,
                target=company,
                company=company,
                details={"customer_id": customer["id"]},
            )
    mapping.refresh_from_db()
    return mapping.customer_id


# --- Overage reporting -----------------------------------------------------------------


def overage_identifier(*, company_id: int, feature_code: str, period_start: datetime, sequence: int) -> str:
    """Deterministic: the same report always carries the same identifier to Stripe."""
    return f"tb-{company_id}-{feature_code}-{period_start:%Y%m%d}-{sequence}"


@dataclass
class OverageRunResult:
    planned: int = 0
    sent: int = 0
    duplicates: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: int = 0
    disabled: bool = False
    new_events: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "new_events"}


def overage_candidates(*, now: datetime) -> list[dict[str, Any]]:
    """Counters over their tier's limit in current periods and in periods closed within
    the lookback, for features mapped to a Stripe meter. Aggregate query: its cost grows
    with over-limit counters, not with events."""
    from usage.models import UsageCounter

    since = now - timedelta(days=settings.BILLING_CLOSED_PERIOD_LOOKBACK_DAYS)
    limits = TierLimit.objects.filter(tier_id=OuterRef("company__tier_id"), feature_id=OuterRef("feature_id"))
    rows = (
        UsageCounter.objects.filter(period_start__lte=now, period_end__gt=since)
        .filter(feature__stripe_meter__isnull=False)
        .annotate(
            included=Subquery(limits.values("included")[:1]),
            unit_price=Subquery(limits.values("overage_unit_price")[:1]),
            currency=F("company__tier__currency"),
            feature_code=F("feature__code"),
        )
        .filter(included__isnull=False, used__gt=F("included"))
        .values(
            "company_id",
            "feature_id",
            "feature_code",
            "period_start",
            "period_end",
            "used",
            "included",
            "unit_price",
            "currency",
        )
        .order_by("company_id", "feature_id", "period_start")
    )
    return list(rows)


def overage_plan(*, row: dict[str, Any], now: datetime) -> BillingEvent | None:
    """Create the pending report of the new overage units of one company, feature and
    period (current overage minus what earlier reports carried), or None if nothing is
    new. Two workers computing the same next sequence collide on the unique constraint;
    the loser reads again and finds nothing new."""
    overage = row["used"] - row["included"]
    for _ in range(10):
        done = BillingEvent.objects.filter(
            kind=BillingEventKind.OVERAGE,
            company_id=row["company_id"],
            feature_id=row["feature_id"],
            period_start=row["period_start"],
        ).aggregate(units=Coalesce(Sum("units"), 0), seq=Coalesce(Max("sequence"), 0))
        new_units = overage - done["units"]
        if new_units <= 0:
            return None
        sequence = done["seq"] + 1
        event = BillingEvent(
            kind=BillingEventKind.OVERAGE,
            status=BillingEventStatus.PENDING,
            company_id=row["company_id"],
            feature_id=row["feature_id"],
            period_start=row["period_start"],
            period_end=row["period_end"],
            sequence=sequence,
            units=new_units,
            amount=new_units * (row["unit_price"] or 0),
            currency=row["currency"],
            identifier=overage_identifier(
                company_id=row["company_id"],
                feature_code=row["feature_code"],
                period_start=row["period_start"],
                sequence=sequence,
            ),
            # Dated inside the period it belongs to, so Stripe bills it on that invoice.
            meter_timestamp=min(now, row["period_end"] - timedelta(seconds=1)),
            details={"used": row["used"], "included": row["included"], "reported_before": done["units"]},
            next_attempt_at=now,
            created_at=now,
        )
        try:
            with transaction.atomic():
                event.save(force_insert=True)
                audit_record(
                    action="billing.overage.plan",
                    actor=REPORTER,
                    target=event,
                    company=Company.objects.get(pk=row["company_id"]),
                    details={"identifier": event.identifier, "units": new_units, "amount": event.amount},
                )
                transaction.on_commit(lambda pk=event.pk: _enqueue_send(pk))
        except IntegrityError:
            continue  # another worker planned this sequence first: look again
        return event
    return None


# Stripe dedups meter event identifiers for at least 24 h: past that, a resend of a report
# Stripe may already have would count twice. Automatic resends stop there.
AUTOMATIC_RESEND_WINDOW = timedelta(hours=24)


def _enqueue_send(pk: int, countdown: float | None = None) -> None:
    """Queue ``send_billing_event``; if the broker is down the row stays due and the
    minute sweep picks it up."""
    from billing.tasks import send_billing_event

    try:
        send_billing_event.apply_async((pk,), countdown=countdown)
    except Exception:
        logger.warning("could not queue billing event #%s", pk, exc_info=True)


def _resend_window_closed(*, now: datetime, billing_event_id: int | None = None) -> int:
    """Mark failed every report still unsent 24 h after its first attempt (or just the
    given one), with an ops task: only ops, after reconciling, may send it again."""
    stale = now - timedelta(seconds=settings.BILLING_SENDING_TIMEOUT)
    rows = BillingEvent.objects.filter(
        kind=BillingEventKind.OVERAGE, first_attempt_at__lt=now - AUTOMATIC_RESEND_WINDOW
    ).filter(Q(status=BillingEventStatus.PENDING) | Q(status=BillingEventStatus.SENDING, claimed_at__lt=stale))
    if billing_event_id is not None:
        rows = rows.filter(pk=billing_event_id)
    closed = 0
    for pk in rows.values_list("pk", flat=True):
        with transaction.atomic():
            changed = (
                BillingEvent.objects.filter(pk=pk, first_attempt_at__lt=now - AUTOMATIC_RESEND_WINDOW)
                .filter(
                    Q(status=BillingEventStatus.PENDING)
                    | Q(status=BillingEventStatus.SENDING, claimed_at__lt=stale)
                )
                .update(status=BillingEventStatus.FAILED, next_attempt_at=None)
            )
            if not changed:
                continue
            closed += 1
            event = BillingEvent.objects.select_related("company", "feature").get(pk=pk)
            audit_record(
                action="billing.overage.resend_window_closed",
                actor=REPORTER,
                target=event,
                company=event.company,
                details={"identifier": event.identifier, "attempts": event.attempts, "error": event.error[:500]},
            )
            ops_task_open(
                kind="billing.overage_unconfirmed",
                title=f"Overage not confirmed after 24 h: {event.company} · {event.feature} ({event.units} units)",
                details=(
                    f"The overage report {event.identifier} was first sent {event.first_attempt_at:%Y-%m-%d %H:%M} "
                    f"UTC and not confirmed by Stripe after {event.attempts} attempt(s) (last error: "
                    f"{event.error or 'none'}). Stripe dedups identifiers for 24 h only, so automatic resends "
                    "stopped. Reconcile first (`manage.py billing_reconcile`, or the meter's events in the "
                    "Stripe dashboard): if Stripe already counted it, mark it handled; only if not, use "
                    "'Send again' -- a resend of a report Stripe has would bill it twice."
                ),
                severity="high",
                company=event.company,
                target=event,
                dedup_key=f"billing.overage_unconfirmed:{event.identifier}",
            )
    return closed


def overage_sweep(*, now: datetime | None = None) -> int:
    """Beat, every minute: close reports past the resend window, then queue every report
    that is due (a retry whose task was lost, one stuck in "sending")."""
    now = now or timezone.now()
    _resend_window_closed(now=now)
    due = overage_due_ids(now=now)
    for pk in due:
        _enqueue_send(pk)
    return len(due)


def _retry_delay(attempts: int) -> timedelta:
    seconds = settings.BILLING_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, settings.BILLING_RETRY_MAX_SECONDS))


def billing_event_send(*, billing_event_id: int, client: StripeClient | None = None) -> str:
    """Send one overage report to Stripe if it is due and nobody else is sending it.

    Returns the row's status afterwards, or "skipped". A report claimed by a worker that
    died is claimable again after ``BILLING_SENDING_TIMEOUT``; it goes out with the same
    identifier and idempotency key, so Stripe never counts it twice."""
    now = timezone.now()
    if _resend_window_closed(now=now, billing_event_id=billing_event_id):
        return BillingEventStatus.FAILED
    stale = now - timedelta(seconds=settings.BILLING_SENDING_TIMEOUT)
    claimed = (
        BillingEvent.objects.filter(pk=billing_event_id, kind=BillingEventKind.OVERAGE)
        .filter(
            Q(first_attempt_at__isnull=True) | Q(first_attempt_at__gte=now - AUTOMATIC_RESEND_WINDOW)
        )
        .filter(
            Q(status=BillingEventStatus.PENDING, next_attempt_at__lte=now)
            | Q(status=BillingEventStatus.PENDING, next_attempt_at__isnull=True)
            | Q(status=BillingEventStatus.SENDING, claimed_at__lt=stale)
        )
        .update(
            status=BillingEventStatus.SENDING,
            claimed_at=now,
            attempts=F("attempts") + 1,
            first_attempt_at=Coalesce(F("first_attempt_at"), now),
        )
    )
    if not claimed:
        return "skipped"
    event = BillingEvent.objects.select_related("company", "feature__stripe_meter").get(pk=billing_event_id)
    client = client or stripe_client()
    try:
        customer_id = stripe_customer_ensure(company=event.company, client=client)
        result = client.meter_event_create(
            event_name=event.feature.stripe_meter.event_name,
            customer_id=customer_id,
            value=event.units,
            identifier=event.identifier,
            timestamp=event.meter_timestamp,
        )
    except StripeGatewayError as exc:
        return _billing_event_failed(event=event, error=exc)
    except FeatureMeter.DoesNotExist:
        return _billing_event_failed(
            event=event, error=StripeGatewayError("the feature has no Stripe meter", retryable=False)
        )
    return _billing_event_sent(event=event, duplicate=result.duplicate, response=result.body)


def _billing_event_sent(*, event: BillingEvent, duplicate: bool, response: dict[str, Any]) -> str:
    with transaction.atomic():
        changed = BillingEvent.objects.filter(pk=event.pk, status=BillingEventStatus.SENDING).update(
            status=BillingEventStatus.SENT,
            sent_at=timezone.now(),
            stripe_response=response,
            error="",
            next_attempt_at=None,
            details={**event.details, "duplicate_answer": duplicate},
        )
        if changed:
            audit_record(
                action="billing.overage.sent",
                actor=REPORTER,
                target=event,
                company=event.company,
                details={"identifier": event.identifier, "units": event.units, "duplicate_answer": duplicate},
            )
    return BillingEventStatus.SENT


def _billing_event_failed(*, event: BillingEvent, error: StripeGatewayError) -> str:
    now = timezone.now()
    give_up = not error.retryable or event.attempts >= settings.BILLING_REPORT_MAX_ATTEMPTS
    with transaction.atomic():
        if not give_up:
            delay = _retry_delay(event.attempts)
            if BillingEvent.objects.filter(pk=event.pk, status=BillingEventStatus.SENDING).update(
                status=BillingEventStatus.PENDING,
                error=str(error)[:2000],
                stripe_response=error.body,
                next_attempt_at=now + delay,
            ):
                # The backoff is a queued task, not the next daily run.
                transaction.on_commit(lambda: _enqueue_send(event.pk, countdown=delay.total_seconds()))
            return BillingEventStatus.PENDING
        changed = BillingEvent.objects.filter(pk=event.pk, status=BillingEventStatus.SENDING).update(
            status=BillingEventStatus.FAILED,
            error=str(error)[:2000],
            stripe_response=error.body,
            next_attempt_at=None,
        )
        if changed:
            audit_record(
                action="billing.overage.failed",
                actor=REPORTER,
                target=event,
                company=event.company,
                details={
                    "identifier": event.identifier,
                    "error": str(error)[:500],
                    "attempts": event.attempts,
                },
            )
            title = f"Overage not billed: {event.company} · {event.feature} ({event.units} units)"
            text = (
                f"Stripe refused the overage report {event.identifier} after {event.attempts} attempt(s): "
                f"{error}\nNothing was billed for these units. Fix the cause (customer, meter mapping, "
                "API key) and use 'Send again' on the billing event."
            )
            ops_task_open(
                kind="billing.overage_failed",
                title=title,
                details=text,
                severity="high",
                company=event.company,
                target=event,
                dedup_key=f"billing.overage_failed:{event.identifier}",
            )
            notify(
                kind="billing.overage_failed",
                title=title,
                text=text,
                severity="critical",
                link=admin_url(event),
                company=event.company,
                dedup_key=f"billing.overage_failed:{event.identifier}:{event.attempts}",
            )
    return BillingEventStatus.FAILED


def overage_due_ids(*, now: datetime) -> list[int]:
    stale = now - timedelta(seconds=settings.BILLING_SENDING_TIMEOUT)
    return list(
        BillingEvent.objects.filter(kind=BillingEventKind.OVERAGE)
        .filter(
            Q(status=BillingEventStatus.PENDING, next_attempt_at__lte=now)
            | Q(status=BillingEventStatus.SENDING, claimed_at__lt=stale)
        )
        .order_by("id")
        .values_list("pk", flat=True)
    )


def overage_report_run(*, trigger: str = "manual", client: StripeClient | None = None) -> OverageRunResult:
    """Report every company's new overage units to Stripe, then send what is due
    (including earlier reports waiting for a retry). Safe to run any number of times, in
    any number of workers at once."""
    result = OverageRunResult()
    if not settings.STRIPE_LIVE_BILLING:
        result.disabled = True
        logger.info("overage report (%s) skipped: STRIPE_LIVE_BILLING is off", trigger)
        return result
    now = timezone.now()
    for row in overage_candidates(now=now):
        event = overage_plan(row=row, now=now)
        if event is not None:
            result.planned += 1
            result.new_events.append(event.pk)
    client = client or stripe_client()
    for pk in overage_due_ids(now=now):
        outcome = billing_event_send(billing_event_id=pk, client=client)
        if outcome == BillingEventStatus.SENT:
            result.sent += 1
        elif outcome == BillingEventStatus.PENDING:
            result.retrying += 1
        elif outcome == BillingEventStatus.FAILED:
            result.failed += 1
        else:
            result.skipped += 1
    logger.info("overage report (%s): %s", trigger, result.as_dict())
    return result


def billing_event_send_again(*, event: BillingEvent, actor: Actor) -> bool:
    """Ops, after fixing the cause of a failure: make a failed report due now. Same
    identifier, so it still cannot be billed twice."""
    with transaction.atomic():
        changed = BillingEvent.objects.filter(
            pk=event.pk, kind=BillingEventKind.OVERAGE, status=BillingEventStatus.FAILED
        ).update(
            status=BillingEventStatus.PENDING,
            next_attempt_at=timezone.now(),
            attempts=0,
            first_attempt_at=None,  # ops reconciled: a new 24 h window of automatic retries
        )
        if changed:
            audit_record(
                action="billing.overage.send_again",
                actor=actor,
                target=event,
                company=event.company,
                details={"identifier": event.identifier},
            )
            transaction.on_commit(lambda: _enqueue_send(event.pk))
    return bool(changed)


# --- Reconciliation --------------------------------------------------------------------


@dataclass
class ReconcileRow:
    company: Company
    feature: Feature
    period_start: datetime
    period_end: datetime
    ours: int
    theirs: int | None
    unsent: int
    error: str = ""

    @property
    def matches(self) -> bool:
        return self.theirs is not None and self.ours == self.theirs


def billing_reconcile(
    *, at: datetime, previous: bool = False, client: StripeClient | None = None, open_tasks: bool = True
) -> list[ReconcileRow]:
    """Compare, per company and metered feature, the units we reported as sent for the
    period containing ``at`` (or the one before it) with Stripe's meter event summary for
    the same window; open an ops task for each difference."""
    client = client or stripe_client()
    meters = list(FeatureMeter.objects.select_related("feature").exclude(meter_id=""))
    rows: list[ReconcileRow] = []
    mappings = (
        CompanyStripe.objects.select_related("company").exclude(customer_id=None).order_by("company_id")
    )
    for mapping in mappings:
        company = mapping.company
        if previous:
            start, end = previous_period_bounds(company.billing_anchor_day, at)
        else:
            start, end = company_period(company, at)
        sums = {
            (r["feature_id"], r["status"]): r["units"]
            for r in BillingEvent.objects.filter(
                kind=BillingEventKind.OVERAGE, company=company, period_start=start
            )
            .values("feature_id", "status")
            .annotate(units=Sum("units"))
        }
        for meter in meters:
            ours = sums.get((meter.feature_id, BillingEventStatus.SENT), 0)
            unsent = sum(
                v for (f, s), v in sums.items() if f == meter.feature_id and s != BillingEventStatus.SENT
            )
            row = ReconcileRow(company, meter.feature, start, end, ours, None, unsent)
            try:
                row.theirs = client.meter_event_total(
                    meter_id=meter.meter_id, customer_id=mapping.customer_id, start=start, end=end
                )
            except StripeGatewayError as exc:
                row.error = str(exc)
            rows.append(row)
            if open_tasks and not row.matches and not row.error:
                with transaction.atomic():
                    ops_task_open(
                        kind="billing.reconcile_mismatch",
                        title=f"Billing mismatch: {company} · {meter.feature} ({start:%Y-%m-%d})",
                        details=(
                            f"For the period {start:%Y-%m-%d} – {end:%Y-%m-%d} we reported {ours} unit(s) of "
                            f"{meter.feature} as sent, Stripe's meter {meter.meter_id} shows {row.theirs}. "
                            f"Reports not (yet) sent: {unsent}. Compare the billing events with the meter's "
                            "events in the Stripe dashboard before correcting anything."
                        ),
                        severity="high",
                        company=company,
                        dedup_key=(
                            f"billing.reconcile:{company.pk}:{meter.feature.code}:{start:%Y%m%d}:{ours}:{row.theirs}"
                        ),
                    )
    return rows


# --- Webhooks: intake ------------------------------------------------------------------


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
            transaction.on_commit(lambda: _enqueue_processing(pk))
    return pk, created


def _enqueue_processing(pk: int) -> None:
    from billing.tasks import process_stripe_event

    try:
        process_stripe_event.delay(pk)
    except Exception:  # broker down: the row is stored; "process again" or the sweep picks it up
        logger.warning("could not queue Stripe event #%s", pk, exc_info=True)


# --- Webhooks: processing --------------------------------------------------------------

# Same-second tie-break for last-writer-wins: a later stage of a subscription's life wins.
EVENT_RANK = {
    "checkout.session.completed": 1,
    "customer.subscription.created": 1,
    "invoice.payment_failed": 2,
    "invoice.paid": 3,
    "customer.subscription.updated": 4,
    "customer.subscription.deleted": 5,
}

SUBSCRIPTION_STATUS_TO_COMPANY = {
    "active": CompanyStatus.ACTIVE,
    "trialing": CompanyStatus.TRIALING,
    "past_due": CompanyStatus.PAST_DUE,
    "unpaid": CompanyStatus.PAST_DUE,
    "canceled": CompanyStatus.CANCELED,
    "incomplete_expired": CompanyStatus.CANCELED,
    "paused": CompanyStatus.PAST_DUE,
}


def _order_key(event: StripeWebhookEvent) -> int:
    return event.created * 10 + EVENT_RANK.get(event.type, 0)


def _company_from(obj: dict[str, Any]) -> Company | None:
    metadata = obj.get("metadata") or {}
    company_id = metadata.get("company_id") or obj.get("client_reference_id")
    if company_id and str(company_id).isdigit():
        company = Company.objects.filter(pk=int(company_id)).first()
        if company is not None:
            return company
    customer = obj.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    if customer:
        mapping = CompanyStripe.objects.select_related("company").filter(customer_id=customer).first()
        if mapping is not None:
            return mapping.company
    return None


def _tier_of_subscription(sub: dict[str, Any]) -> tuple[Tier | None, str, str]:
    """The tier whose Stripe price is on the subscription, with that item and price id."""
    items = ((sub.get("items") or {}).get("data")) or []
    prices = {}
    for item in items:
        price = item.get("price") or {}
        price_id = price.get("id") if isinstance(price, dict) else price
        if price_id:
            prices[price_id] = item.get("id") or ""
    mapping = TierPrice.objects.select_related("tier").filter(price_id__in=list(prices)).first()
    if mapping is None:
        return None, "", ""
    return mapping.tier, prices[mapping.price_id], mapping.price_id


def _effect(
    *,
    kind: str,
    company: Company,
    event: StripeWebhookEvent | None,
    object_id: str = "",
    actor: Actor = STRIPE,
    action: str,
    details: dict[str, Any] | None = None,
    **fields: Any,
) -> BillingEvent:
    """Record one effect: a BillingEvent and its audit record, in the caller's transaction."""
    billing_event = BillingEvent.objects.create(
        kind=kind,
        status=BillingEventStatus.RECORDED,
        company=company,
        stripe_event_id=event.stripe_id if event else "",
        stripe_object_id=object_id,
        details=details or {},
        created_at=timezone.now(),
        **fields,
    )
    audit_record(
        action=action,
        actor=actor,
        target=billing_event,
        company=company,
        details={"stripe_event": event.stripe_id if event else "", "object": object_id, **(details or {})},
    )
    return billing_event


def derived_status(mapping: CompanyStripe) -> str | None:
    """The company's status from the two registers: a deleted subscription is final; an
    invoice event newer than the subscription's state decides paid (active, or still
    trialing) or failed (past due); otherwise the subscription's own status does. None
    when Stripe has told us nothing that maps to a status."""
    if mapping.subscription_status == "canceled":
        return CompanyStatus.CANCELED
    from_subscription = SUBSCRIPTION_STATUS_TO_COMPANY.get(mapping.subscription_status)
    if mapping.invoice_outcome and mapping.invoice_key > mapping.subscription_state_key:
        if mapping.invoice_outcome == "failed":
            return CompanyStatus.PAST_DUE
        return CompanyStatus.TRIALING if from_subscription == CompanyStatus.TRIALING else CompanyStatus.ACTIVE
    return from_subscription


def _apply_status(*, company: Company, mapping: CompanyStripe, actor: Actor) -> str | None:
    """Set the company's status to what the registers say; returns the previous status
    if it changed (audited), else None."""
    status = derived_status(mapping)
    if status is None:
        return None
    before = Company.objects.filter(pk=company.pk).values_list("status", flat=True).get()
    if before == status:
        return None
    Company.objects.filter(pk=company.pk).update(status=status)
    company.status = status
    audit_record(
        action="billing.company.status_change",
        actor=actor,
        target=company,
        company=company,
        details={"from": before, "to": status},
    )
    return before


def _record_invoice(*, mapping: CompanyStripe, outcome: str, key: int) -> bool:
    """Advance the invoice register if this event is the newest invoice event."""
    if key <= mapping.invoice_key:
        return False
    mapping.invoice_outcome, mapping.invoice_key = outcome, key
    CompanyStripe.objects.filter(pk=mapping.pk).update(invoice_outcome=outcome, invoice_key=key)
    return True


def _fallback_tier() -> Tier | None:
    """Where a company whose subscription ended goes: the free tier if there is one,
    otherwise the cheapest public tier."""
    return Tier.objects.filter(is_public=True).order_by("monthly_price", "order", "id").first()


def _locked_mapping(company: Company) -> CompanyStripe:
    company_stripe_mapping(company=company)
    return CompanyStripe.objects.select_for_update().get(company=company)


def subscription_apply(
    *,
    company: Company,
    sub: dict[str, Any],
    key: int | None,
    event: StripeWebhookEvent | None,
    actor: Actor = STRIPE,
    deleted: bool = False,
    effect_kind: str = BillingEventKind.TIER_CHANGE,
) -> list[str]:
    """Make our copy of a subscription follow Stripe's, unless newer state was already
    applied. Tier follows the subscription's price, status follows its status.

    ``key=None`` is Stripe's answer to our own plan change: it has no Stripe ``created``
    to order it by, so only the tier and items are applied; no ordering key advances and
    the status is left to the webhooks (a same-second ``invoice.payment_failed`` or
    ``subscription.updated(past_due)`` must not be hidden by our clock)."""
    mapping = _locked_mapping(company)
    effects: list[str] = []
    same_subscription = mapping.subscription_id == sub.get("id")
    if mapping.subscription_id and not same_subscription and deleted:
        return ["old subscription deleted: ignored"]
    if same_subscription and mapping.subscription_status == "canceled" and not deleted:
        return ["subscription already deleted: ignored"]
    if key is not None and key <= mapping.subscription_state_key and not deleted:
        return ["older than applied state: ignored"]
    tier, item_id, price_id = _tier_of_subscription(sub)
    customer = sub.get("customer")
    updates: dict[str, Any] = {
        "subscription_id": sub.get("id"),
        "subscription_item_id": item_id,
        "subscription_price_id": price_id,
    }
    if key is not None:
        updates["subscription_state_key"] = max(key, mapping.subscription_state_key)
        updates["subscription_status"] = "canceled" if deleted else (sub.get("status") or "")
    if customer and not mapping.customer_id:
        updates["customer_id"] = customer
    CompanyStripe.objects.filter(pk=mapping.pk).update(**updates)
    for name, value in updates.items():
        setattr(mapping, name, value)

    current_tier = Tier.objects.get(pk=Company.objects.values_list("tier_id", flat=True).get(pk=company.pk))
    if deleted:
        # Policy: a company whose subscription ended drops to the cheapest (free, if one
        # exists) tier at once; it is canceled, so it is not billed for that tier.
        tier = _fallback_tier()
    if tier is not None and tier.pk != current_tier.pk:
        company_set_tier(company=company, tier=tier, actor=actor, reason=f"Stripe subscription {sub.get('id')}")
        _effect(
            kind=effect_kind,
            company=company,
            event=event,
            object_id=str(sub.get("id") or ""),
            actor=actor,
            action="billing.tier_change",
            details={"from": current_tier.code, "to": tier.code},
            from_tier=current_tier,
            to_tier=tier,
        )
        effects.append(f"tier {current_tier.code} → {tier.code}")
    if key is not None:
        before = _apply_status(company=company, mapping=mapping, actor=actor)
        status = company.status
        if before is not None:
            _effect(
                kind=BillingEventKind.SUBSCRIPTION,
                company=company,
                event=event,
                object_id=str(sub.get("id") or ""),
                actor=actor,
                action="billing.subscription.status",
                details={"from": before, "to": status, "subscription_status": sub.get("status")},
            )
            effects.append(f"status {before} → {status}")
    return effects or ["no change"]


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
    company = _company_from(obj)
    if company is None:
        return "no company for this session"
    if obj.get("payment_status") not in ("paid", "no_payment_required") or prepared.subscription is None:
        return f"not paid yet ({obj.get('payment_status')})"
    mapping = _locked_mapping(company)
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
        key=_order_key(event),
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
        _effect(
            kind=BillingEventKind.UPGRADE,
            company=company,
            event=event,
            object_id=str(obj.get("id") or ""),
            action="billing.upgrade.completed",
            details=details,
        )
    return "; ".join(effects)


def _on_subscription(event: StripeWebhookEvent, obj: dict[str, Any], prepared: _Prepared) -> str:
    company = _company_from(obj)
    if company is None:
        return "no company for this subscription"
    effects = subscription_apply(
        company=company,
        sub=obj,
        key=_order_key(event),
        event=event,
        deleted=event.type == "customer.subscription.deleted",
    )
    return "; ".join(effects)


def _invoice_company(obj: dict[str, Any]) -> Company | None:
    company = _company_from({"customer": obj.get("customer")})
    if company is None:
        details = ((obj.get("parent") or {}).get("subscription_details") or {}).get("metadata") or {}
        company = _company_from({"metadata": details})
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
    mapping = _locked_mapping(company)
    before = None
    # Paid never revives a canceled company nor ends a trial (see derived_status).
    if _for_current_subscription(mapping, obj) and _record_invoice(
        mapping=mapping, outcome="paid", key=_order_key(event)
    ):
        before = _apply_status(company=company, mapping=mapping, actor=STRIPE)
    _effect(
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
    mapping = _locked_mapping(company)
    before = None
    newest = _for_current_subscription(mapping, obj) and _record_invoice(
        mapping=mapping, outcome="failed", key=_order_key(event)
    )
    if newest:
        before = _apply_status(company=company, mapping=mapping, actor=STRIPE)
    amount = int(obj.get("amount_due") or 0)
    currency = str(obj.get("currency") or "usd")
    billing_event = _effect(
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
    company = _company_from(obj) if obj else None
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
            _effect(
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


class WebhookProcessingError(Exception):
    """Processing failed and was recorded on the event; retrying may help."""


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
        _record_failure(event.pk, f"fetching from Stripe: {exc}")
        raise WebhookProcessingError(str(exc)) from exc

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
            )
            return WebhookEventStatus.PROCESSED
        StripeWebhookEvent.objects.filter(pk=locked.pk).update(
            status=WebhookEventStatus.FAILED, attempts=F("attempts") + 1, error=error[:2000]
        )
    raise WebhookProcessingError(error)


def _record_failure(pk: int, error: str) -> None:
    StripeWebhookEvent.objects.filter(pk=pk).exclude(status__in=DONE).update(
        status=WebhookEventStatus.FAILED, attempts=F("attempts") + 1, error=error[:2000]
    )


# A stored event still "received" after this long was never queued (the broker was down
# when it arrived) or its task was lost: the sweep queues it again.
WEBHOOK_SWEEP_AFTER = timedelta(minutes=5)


def webhook_events_sweep(*, now: datetime | None = None, limit: int = 500) -> int:
    """Queue processing for stored events nobody is processing. Safe to overlap with a
    live task: processing locks the event row and skips what is done."""
    now = now or timezone.now()
    stuck = list(
        StripeWebhookEvent.objects.filter(
            status=WebhookEventStatus.RECEIVED, received_at__lte=now - WEBHOOK_SWEEP_AFTER
        )
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in stuck:
        _enqueue_processing(pk)
    return len(stuck)


def webhook_event_give_up(*, webhook_event_id: int) -> None:
    """Retries are exhausted: ops must look (the event stays 'failed', ready for 'process again')."""
    event = StripeWebhookEvent.objects.filter(pk=webhook_event_id).first()
    if event is None or event.status in DONE:
        return
    with transaction.atomic():
        ops_task_open(
            kind="billing.webhook_failed",
            title=f"Stripe event not processed: {event.type} {event.stripe_id}",
            details=(
                f"Processing failed {event.attempts} time(s). Last error: {event.error}\n"
                "Fix the cause, then use 'Process again' on the webhook event."
            ),
            severity="high",
            target=event,
            dedup_key=f"billing.webhook_failed:{event.stripe_id}",
        )


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


# --- Upgrades and the portal -----------------------------------------------------------


class UpgradeRefused(Exception):
    """The change cannot be made; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, *, status: int = 409, field: str = "tier") -> None:
        super().__init__(message)
        self.status = status
        self.field = field


def downgrade_blockers(*, company: Company, tier: Tier, at: datetime | None = None) -> list[str]:
    """Features whose usage this period is already above what ``tier`` includes."""
    from usage.models import UsageCounter

    start, _ = company_period(company, at)
    used = dict(
        UsageCounter.objects.filter(company=company, period_start=start).values_list("feature__code", "used")
    )
    blockers = []
    for limit in TierLimit.objects.filter(tier=tier).select_related("feature"):
        current = used.get(limit.feature.code, 0)
        if limit.included is not None and current > limit.included:
            blockers.append(f"{limit.feature.name}: {current} used, {tier.name} includes {limit.included}")
    return blockers


def billing_change_tier(
    *, company: Company, tier: Tier, actor: Actor, client: StripeClient | None = None
) -> dict[str, Any]:
    """Start an upgrade or downgrade.

    Without a live subscription: a Stripe Checkout Session (subscription mode) whose URL
    the user is sent to; the tier changes when ``checkout.session.completed`` arrives.
    With one: the subscription's price is changed at Stripe (upgrades invoice the
    prorated difference now, downgrades credit it on the next invoice) and the new state
    is applied at once. A downgrade below this period's usage is refused."""
    company = Company.objects.select_related("tier").get(pk=company.pk)
    current = company.tier
    if tier.pk == current.pk:
        raise UpgradeRefused(f"The company is already on {tier.name}.")
    price = TierPrice.objects.filter(tier=tier).first()
    if price is None:
        raise UpgradeRefused(f"{tier.name} cannot be bought online; contact sales.", status=400)
    upgrading = (tier.order, tier.monthly_price) > (current.order, current.monthly_price)
    if not upgrading:
        blockers = downgrade_blockers(company=company, tier=tier)
        if blockers:
            raise UpgradeRefused(
                f"This period's usage is above what {tier.name} includes ({'; '.join(blockers)}). "
                "Downgrade once usage fits, or from the next period."
            )
    kind = BillingEventKind.UPGRADE if upgrading else BillingEventKind.DOWNGRADE
    client = client or stripe_client()
    mapping = company_stripe_mapping(company=company)
    live_subscription = bool(mapping.subscription_id) and mapping.subscription_status not in (
        "canceled",
        "incomplete_expired",
    )
    now = timezone.now()
    with transaction.atomic():
        # Lookup and creation under the company's mapping row lock: of two clicks at once,
        # the second finds the first's pending checkout.
        reused = (
            None
            if live_subscription
            else _pending_checkout(company=company, mapping=mapping, kind=kind, tier=tier, now=now)
        )
        if reused is None:
            request = BillingEvent.objects.create(
                kind=kind,
                status=BillingEventStatus.PENDING,
                company=company,
                from_tier=current,
                to_tier=tier,
                amount=tier.monthly_price,
                currency=tier.currency,
                details={"via": "subscription_update" if live_subscription else "checkout"},
                created_at=now,
            )
            audit_record(
                action=f"billing.{kind}.request",
                actor=actor,
                target=request,
                company=company,
                details={"from": current.code, "to": tier.code, "via": request.details["via"]},
            )
    if reused is not None:
        if reused.details.get("checkout_url"):
            return _checkout_answer(reused, reused.details["checkout_url"])
        # The first click may still be talking to Stripe: the same request (same
        # idempotency key) gets the same session back.
        request = reused
    try:
        if live_subscription:
            return _change_subscription(
                company=company, mapping=mapping, request=request, price=price, actor=actor, client=client
            )
        return _start_checkout(company=company, request=request, price=price, client=client)
    except StripeGatewayError as exc:
        BillingEvent.objects.filter(pk=request.pk).update(
            status=BillingEventStatus.FAILED, error=str(exc)[:2000], stripe_response=exc.body
        )
        raise


def metered_price_ids(*, tier: Tier) -> list[str]:
    """The tier's metered prices (one per billed feature), in a stable order."""
    return list(
        TierFeaturePrice.objects.filter(tier=tier).order_by("feature__order", "feature_id").values_list(
            "price_id", flat=True
        )
    )


def plan_change_items(*, subscription: dict[str, Any], tier: Tier, price: TierPrice) -> list[dict[str, Any]]:
    """The ``items`` of a plan change: the flat item gets the new tier's price, metered
    items of other tiers are deleted, and the new tier's metered prices not yet on the
    subscription are added (without quantity)."""
    _, flat_item_id, _ = _tier_of_subscription(subscription)
    if not flat_item_id:
        raise StripeGatewayError("the subscription carries no known tier price", retryable=False)
    wanted = metered_price_ids(tier=tier)
    known_metered = set(TierFeaturePrice.objects.values_list("price_id", flat=True))
    items: list[dict[str, Any]] = [{"id": flat_item_id, "price": price.price_id}]
    present: set[str] = set()
    for item in ((subscription.get("items") or {}).get("data")) or []:
        item_price = item.get("price") or {}
        price_id = item_price.get("id") if isinstance(item_price, dict) else item_price
        if item.get("id") == flat_item_id:
            continue
        if price_id in wanted:
            present.add(price_id)
        elif price_id in known_metered:
            items.append({"id": item["id"], "deleted": True})
    items.extend({"price": p} for p in wanted if p not in present)
    return items


CHECKOUT_REUSE_WINDOW = timedelta(hours=24)  # Checkout Sessions expire after 24 h by default


def _pending_checkout(
    *, company: Company, mapping: CompanyStripe, kind: str, tier: Tier, now: datetime
) -> BillingEvent | None:
    """A checkout for the same change started less than 24 h ago and not completed: a
    second click gets its session instead of a second one (which could end in two paid
    subscriptions). Call inside the transaction that creates the new request: the
    company's mapping row is locked until it commits, so two clicks cannot both miss."""
    CompanyStripe.objects.select_for_update().get(pk=mapping.pk)
    return (
        BillingEvent.objects.filter(
            kind=kind,
            company=company,
            to_tier=tier,
            status=BillingEventStatus.PENDING,
            details__via="checkout",
            created_at__gte=now - CHECKOUT_REUSE_WINDOW,
        )
        .order_by("-created_at", "-id")
        .first()
    )


def _checkout_answer(request: BillingEvent, url: str | None) -> dict[str, Any]:
    return {"action": "checkout", "url": url, "tier": request.to_tier.code, "billing_event": request.pk}


def _start_checkout(
    *, company: Company, request: BillingEvent, price: TierPrice, client: StripeClient
) -> dict[str, Any]:
    customer_id = stripe_customer_ensure(company=company, client=client)
    return_url = settings.BILLING_RETURN_URL
    session = client.checkout_session_create(
        customer_id=customer_id,
        price_id=price.price_id,
        metered_price_ids=metered_price_ids(tier=request.to_tier),
        success_url=return_url + ("&" if "?" in return_url else "?") + "checkout=success",
        cancel_url=return_url + ("&" if "?" in return_url else "?") + "checkout=cancel",
        metadata={
            "company_id": str(company.pk),
            "tier": request.to_tier.code,
            "billing_event": str(request.pk),
        },
        client_reference_id=str(company.pk),
        idempotency_key=f"tb-checkout-{request.pk}",
        # Stripe's invoices then close when our usage periods do (the next anchor day):
        # the first, partial period is prorated, and overage is never split across invoices.
        billing_cycle_anchor=int(company_period(company)[1].timestamp()),
    )
    BillingEvent.objects.filter(pk=request.pk).update(
        stripe_object_id=session["id"], details={**request.details, "checkout_url": session.get("url")}
    )
    return _checkout_answer(request, session.get("url"))


def _change_subscription(
    *,
    company: Company,
    mapping: CompanyStripe,
    request: BillingEvent,
    price: TierPrice,
    actor: Actor,
    client: StripeClient,
) -> dict[str, Any]:
    current = client.subscription_retrieve(mapping.subscription_id)
    sub = client.subscription_update_items(
        subscription_id=mapping.subscription_id,
        items=plan_change_items(subscription=current, tier=request.to_tier, price=price),
        proration_behavior="always_invoice"
        if request.kind == BillingEventKind.UPGRADE
        else "create_prorations",
        idempotency_key=f"tb-subchange-{request.pk}",
    )
    with transaction.atomic():
        effects = subscription_apply(
            company=company,
            sub=sub,
            key=None,  # our clock orders nothing: status stays with the webhooks
            event=None,
            actor=actor,
        )
        BillingEvent.objects.filter(pk=request.pk).update(
            status=BillingEventStatus.SENT,
            sent_at=timezone.now(),
            stripe_object_id=sub.get("id", ""),
            details={**request.details, "effects": effects},
        )
    company.refresh_from_db()
    return {
        "action": "changed",
        "tier": company.tier.code,
        "status": company.status,
        "billing_event": request.pk,
    }


def billing_portal_session(*, company: Company, actor: Actor, client: StripeClient | None = None) -> str:
    """A Stripe Billing Portal URL for the company (payment methods, invoices)."""
    client = client or stripe_client()
    customer_id = stripe_customer_ensure(company=company, client=client)
    session = client.portal_session_create(
        customer_id=customer_id,
        return_url=settings.BILLING_RETURN_URL,
        idempotency_key=f"tb-portal-{company.pk}-{uuid.uuid4().hex}",
    )
    with transaction.atomic():
        audit_record(
            action="billing.portal.open",
            actor=actor,
            target=company,
            company=company,
            details={"portal_session": session.get("id")},
        )
    return str(session.get("url"))
