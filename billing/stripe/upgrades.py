"""Upgrades, downgrades and the customer portal: Checkout for a first subscription, a prorated change for a live one.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Company
from accounts.selectors import company_period
from audit.services import Actor, audit_record
from billing.plans.models import Tier, TierLimit
from billing.stripe.customers import company_stripe_mapping, stripe_customer_ensure
from billing.stripe.gateway import StripeClient, StripeGatewayError, stripe_client, stripe_errors_for_caller
from billing.stripe.models import (
    BillingEvent,
    BillingEventKind,
    BillingEventStatus,
    CompanyStripe,
    TierFeaturePrice,
    TierPrice,
)
from billing.stripe.subscriptions import subscription_apply, subscription_tier
from core.errors import ApplicationError, ErrorKind
from ops.services import ops_task_open
from usage.models import UsageCounter


class UpgradeRefused(ApplicationError):
    """The change cannot be made as things stand (a conflict unless said otherwise)."""

    kind = ErrorKind.CONFLICT

    def __init__(self, message: str, *, kind: ErrorKind | None = None) -> None:
        super().__init__(message, kind=kind, field="tier")


def downgrade_blockers(*, company: Company, tier: Tier, at: datetime | None = None) -> list[str]:
    """Features whose usage this period is already above what ``tier`` includes."""
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


@stripe_errors_for_caller()
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
        raise UpgradeRefused(f"{tier.name} cannot be bought online; contact sales.", kind=ErrorKind.INVALID)
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
    now = timezone.now()
    with transaction.atomic():
        # The company's plan-change lock (its Stripe mapping row), for checkout and price
        # changes alike: of clicks at once, one goes on; the others, once it has written
        # its request, find its checkout to reuse or its change in flight (409).
        mapping = CompanyStripe.objects.select_for_update().get(pk=mapping.pk)
        if Company.objects.filter(pk=company.pk, tier=tier).exists():
            raise UpgradeRefused(f"The company is already on {tier.name}.")
        live_subscription = bool(mapping.subscription_id) and mapping.subscription_status not in (
            "canceled",
            "incomplete_expired",
        )
        if live_subscription:
            _refuse_while_a_change_is_in_flight(company=company, actor=actor, now=now)
            reused = None
        else:
            reused = _pending_checkout(company=company, kind=kind, tier=tier, now=now)
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
    _, flat_item_id, _ = subscription_tier(subscription)
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
# A price change still pending after this long lost its process between Stripe and our
# record: it no longer blocks the next one (the subscription webhooks carry what Stripe did).
PLAN_CHANGE_IN_FLIGHT = timedelta(minutes=10)


def _refuse_while_a_change_is_in_flight(*, company: Company, actor: Actor, now: datetime) -> None:
    """Refuse (409) a price change while another one of the company is talking to Stripe,
    so concurrent clicks make one Stripe call. Call holding the company's mapping lock."""
    in_flight = BillingEvent.objects.filter(
        kind__in=[BillingEventKind.UPGRADE, BillingEventKind.DOWNGRADE],
        company=company,
        status=BillingEventStatus.PENDING,
        details__via="subscription_update",
    )
    for stale in in_flight.filter(created_at__lt=now - PLAN_CHANGE_IN_FLIGHT):
        BillingEvent.objects.filter(pk=stale.pk, status=BillingEventStatus.PENDING).update(
            status=BillingEventStatus.FAILED,
            error="Abandoned: the process making this change stopped before recording Stripe's answer; "
            "the subscription's webhooks carry whatever Stripe did.",
        )
        audit_record(
            action=f"billing.{stale.kind}.abandoned",
            actor=actor,
            target=stale,
            company=company,
            details={"created_at": stale.created_at.isoformat()},
        )
    current = in_flight.filter(created_at__gte=now - PLAN_CHANGE_IN_FLIGHT).select_related("to_tier").first()
    if current is not None:
        to = current.to_tier.name if current.to_tier else "another plan"
        raise UpgradeRefused(f"A change to {to} is already in progress; try again in a moment.")


def _pending_checkout(*, company: Company, kind: str, tier: Tier, now: datetime) -> BillingEvent | None:
    """A checkout for the same change started less than 24 h ago and not completed: a
    second click gets its session instead of a second one (which could end in two paid
    subscriptions). Call holding the company's mapping lock, in the transaction that
    creates the new request, so two clicks cannot both miss."""
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
    assert request.to_tier is not None  # a plan change always names its tier
    return {"action": "checkout", "url": url, "tier": request.to_tier.code, "billing_event": request.pk}


def _start_checkout(
    *, company: Company, request: BillingEvent, price: TierPrice, client: StripeClient
) -> dict[str, Any]:
    assert request.to_tier is not None  # a plan change always names its tier
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
    # Called only with a live subscription, for a plan change (which always names its tier).
    assert mapping.subscription_id is not None and request.to_tier is not None
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


def stripe_failure_task(*, company: Company, doing: str, error: StripeGatewayError) -> None:
    """The ops task for a Stripe failure that no billing event records. Stripe being
    unreachable is one task a day, whoever hit it; a refusal is one task per company,
    action and day (the person who asked was told only that ops has the details)."""
    today = f"{timezone.now():%Y-%m-%d}"
    where = f"Find request {error.request_id} in Stripe's dashboard (Developers → Logs). " if error.request_id else ""
    with transaction.atomic():
        if error.retryable:
            ops_task_open(
                kind="billing.stripe_unavailable",
                title=f"Stripe unreachable: could not {doing} for {company}",
                details=(
                    f"{error}\n{where}Customers were told to try again in a minute. Check status.stripe.com "
                    "and the network to Stripe; resolve once calls go through again. One task a day."
                ),
                severity="medium",
                dedup_key=f"billing.stripe_unavailable:{today}",
            )
        else:
            ops_task_open(
                kind="billing.stripe_refused",
                title=f"Stripe refused to {doing} for {company}",
                details=(
                    f"{error}\n{where}The customer was told the ops team has the details. Fix the cause "
                    "(API key, the company's Stripe customer, Stripe settings) and tell the customer."
                ),
                severity="high",
                company=company,
                target=company,
                dedup_key=f"billing.stripe_refused:{company.pk}:{doing}:{today}",
            )


@stripe_errors_for_caller()
def billing_portal_session(*, company: Company, actor: Actor, client: StripeClient | None = None) -> str:
    """A Stripe Billing Portal URL for the company (payment methods, invoices). A Stripe
    failure leaves an ops task behind (a portal session has no billing event to fail)."""
    client = client or stripe_client()
    try:
        customer_id = stripe_customer_ensure(company=company, client=client)
        session = client.portal_session_create(
            customer_id=customer_id,
            return_url=settings.BILLING_RETURN_URL,
            idempotency_key=f"tb-portal-{company.pk}-{uuid.uuid4().hex}",
        )
    except StripeGatewayError as exc:
        stripe_failure_task(company=company, doing="open the billing portal", error=exc)
        raise
    with transaction.atomic():
        audit_record(
            action="billing.portal.open",
            actor=actor,
            target=company,
            company=company,
            details={"portal_session": session.get("id")},
        )
    return str(session.get("url"))
