"""Overage reported to Stripe as Billing Meter events, exactly once.

A ``BillingEvent`` row exists (pending) *before* Stripe is called, and the Stripe call
happens outside any database transaction. Its identifier is derived from (company,
feature, period, sequence), so whatever happens between Stripe's answer and our commit
(a crash, a lost answer, a second worker) the next attempt sends the same identifier,
and Stripe's "already exists" answer counts as delivered. A double charge would need two
rows with the same sequence, which the unique constraint forbids. Rows are claimed with a
conditional UPDATE (pending -> sending) and the row count: only one worker sends a given
report at a time.

Credits come first: each step pays what the company's credit grants can of its new units
(``billing.plans.credits``) and reports only the rest, in the same transaction, so a
re-run finds those units settled and spends nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, Max, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Company
from audit.services import Actor, audit_record
from billing.plans.credits import CreditsChanged, credit_step_done, credits_pay
from billing.plans.models import EntitlementOverride, Feature, TierLimit
from billing.plans.selectors import Entitlement, entitlements_effective
from billing.stripe.customers import stripe_customer_ensure
from billing.stripe.gateway import StripeClient, StripeGatewayError, stripe_client
from billing.stripe.models import BillingEvent, BillingEventKind, BillingEventStatus, FeatureMeter
from core.links import admin_url
from core.queue import enqueue
from ops.services import notify, ops_task_open
from usage.models import UsageCounter

logger = logging.getLogger(__name__)

REPORTER = Actor.system("billing-overage")


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
    credited_units: int = 0  # overage units paid from credits instead of reported
    disabled: bool = False
    new_events: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "new_events"}


def overage_candidates(*, now: datetime) -> list[Mapping[str, Any]]:
    """Counters over their effective limit in current periods and in periods closed within
    the lookback, for features mapped to a Stripe meter. Aggregate query: its cost grows
    with over-limit counters (and counters under a contract override), not with events.

    Each candidate is priced on the company's effective entitlement at the end of its
    period (or now): a contract override's included quantity and price replace the tier's,
    a hard limit bills nothing beyond, a capped one bills no more than its cap pays for
    (``billable_units``)."""
    since = now - timedelta(days=settings.BILLING_CLOSED_PERIOD_LOOKBACK_DAYS)
    limits = TierLimit.objects.filter(tier_id=OuterRef("company__tier_id"), feature_id=OuterRef("feature_id"))
    overrides = EntitlementOverride.objects.filter(
        company_id=OuterRef("company_id"), feature_id=OuterRef("feature_id"), starts_at__lt=OuterRef("period_end")
    ).filter(Q(ends_at__isnull=True) | Q(ends_at__gt=OuterRef("period_start")))
    rows = (
        UsageCounter.objects.filter(period_start__lte=now, period_end__gt=since)
        .filter(feature__stripe_meter__isnull=False)
        .annotate(
            included=Subquery(limits.values("included")[:1]),
            unit_price=Subquery(limits.values("overage_unit_price")[:1]),
            currency=F("company__tier__currency"),
            feature_code=F("feature__code"),
            tier_id=F("company__tier_id"),
        )
        .filter(Q(included__isnull=False, used__gt=F("included")) | Q(Exists(overrides), used__gt=0))
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
            "tier_id",
        )
        .order_by("company_id", "feature_id", "period_start")
    )
    seen: dict[tuple[int, int, datetime], dict[str, Entitlement]] = {}
    out: list[Mapping[str, Any]] = []
    for row in rows:
        at = min(now, row["period_end"] - timedelta(microseconds=1))
        slot = (row["company_id"], row["tier_id"], at)
        if slot not in seen:
            seen[slot] = entitlements_effective(company_id=row["company_id"], tier_id=row["tier_id"], at=at)
        entitlement = seen[slot][row["feature_code"]]
        if not entitlement.offered or entitlement.terms.included is None:
            continue
        billable = entitlement.terms.billable_overage(row["used"])
        if billable <= 0:
            continue
        out.append(
            {
                **row,
                "included": entitlement.terms.included,
                "unit_price": entitlement.terms.overage_unit_price,
                "billable_units": billable,
            }
        )
    return out


def overage_plan(*, row: Mapping[str, Any], now: datetime) -> BillingEvent | None:
    """Take the next step of one company, feature and period: its new overage units
    (current overage minus what earlier steps reported or paid from credits) are paid from
    the company's credits first, and the rest becomes a pending report. Returns that
    report, or None when nothing is new or credits paid it all."""
    return overage_step(row=row, now=now).event


@dataclass(frozen=True)
class OverageStep:
    event: BillingEvent | None = None
    credited_units: int = 0


def overage_step(*, row: Mapping[str, Any], now: datetime) -> OverageStep:
    """One step, in one transaction holding the company's row lock (FOR NO KEY UPDATE: it
    serialises steps of the same company, which share its credits, and blocks nobody
    else). A step's sequence is unique per company, feature and period among reports and
    among credit consumptions alike, so a step taken twice (a lock-free database, a second
    worker) fails whole and the loser reads again and finds nothing new."""
    overage = row.get("billable_units", row["used"] - row["included"])
    # Credits usable when the units were used: now, or the last moment of a closed period.
    at = min(now, row["period_end"] - timedelta(microseconds=1))
    for _ in range(10):
        try:
            with transaction.atomic():
                company = (
                    Company.objects.select_for_update(no_key=True, of=("self",))
                    .select_related("tier")
                    .get(pk=row["company_id"])
                )
                done = BillingEvent.objects.filter(
                    kind=BillingEventKind.OVERAGE,
                    company_id=row["company_id"],
                    feature_id=row["feature_id"],
                    period_start=row["period_start"],
                ).aggregate(units=Coalesce(Sum("units"), 0), seq=Coalesce(Max("sequence"), 0))
                credited = credit_step_done(
                    company_id=row["company_id"], feature_id=row["feature_id"], period_start=row["period_start"]
                )
                new_units = overage - done["units"] - credited.units
                if new_units <= 0:
                    return OverageStep()
                sequence = max(done["seq"], credited.last_sequence) + 1
                draws = credits_pay(
                    company=company,
                    feature=Feature.objects.get(pk=row["feature_id"]),
                    period_start=row["period_start"],
                    period_end=row["period_end"],
                    sequence=sequence,
                    units=new_units,
                    unit_price=row["unit_price"] or 0,
                    currency=row["currency"],
                    at=at,
                    actor=REPORTER,
                )
                paid = sum(d.units for d in draws)
                billed = new_units - paid
                if billed <= 0:
                    return OverageStep(credited_units=paid)
                event = BillingEvent(
                    kind=BillingEventKind.OVERAGE,
                    status=BillingEventStatus.PENDING,
                    company_id=row["company_id"],
                    feature_id=row["feature_id"],
                    period_start=row["period_start"],
                    period_end=row["period_end"],
                    sequence=sequence,
                    units=billed,
                    amount=billed * (row["unit_price"] or 0),
                    currency=row["currency"],
                    identifier=overage_identifier(
                        company_id=row["company_id"],
                        feature_code=row["feature_code"],
                        period_start=row["period_start"],
                        sequence=sequence,
                    ),
                    # Dated inside the period it belongs to, so Stripe bills it on that invoice.
                    meter_timestamp=min(now, row["period_end"] - timedelta(seconds=1)),
                    details={
                        "used": row["used"],
                        "included": row["included"],
                        "reported_before": done["units"],
                        "credited_before": credited.units,
                        "credited": paid,
                    },
                    next_attempt_at=now,
                    created_at=now,
                )
                event.save(force_insert=True)
                audit_record(
                    action="billing.overage.plan",
                    actor=REPORTER,
                    target=event,
                    company=company,
                    details={
                        "identifier": event.identifier,
                        "units": billed,
                        "amount": event.amount,
                        "credited_units": paid,
                    },
                )
                transaction.on_commit(partial(_enqueue_send, event.pk))
        except (IntegrityError, CreditsChanged):
            continue  # another worker took this step first, or a balance moved: look again
        return OverageStep(event=event, credited_units=paid)
    return OverageStep()


# Stripe dedups meter event identifiers for at least 24 h: past that, a resend of a report
# Stripe may already have would count twice. Automatic resends stop there.
AUTOMATIC_RESEND_WINDOW = timedelta(hours=24)


def _enqueue_send(pk: int, countdown: float | None = None) -> None:
    """Queue ``send_billing_event``; if the broker is down the row stays due and the
    minute sweep picks it up."""
    try:
        enqueue("billing.tasks.send_billing_event", pk, countdown=countdown)
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
    # overage_plan sets all three on every overage report.
    assert event.feature is not None and event.identifier is not None and event.meter_timestamp is not None
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
        step = overage_step(row=row, now=now)
        result.credited_units += step.credited_units
        if step.event is not None:
            result.planned += 1
            result.new_events.append(step.event.pk)
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
