"""A company's subscription as Stripe's events tell it. State that depends on time is
last-writer-wins on Stripe's ``created`` (plus a rank for same-second events), never on
delivery order; the company's status is a pure function of two registers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.utils import timezone

from accounts.models import Company, CompanyStatus
from accounts.services import company_set_tier
from audit.services import Actor, audit_record
from billing.plans.models import Tier
from billing.stripe.customers import company_stripe_mapping
from billing.stripe.models import (
    BillingEvent,
    BillingEventKind,
    BillingEventStatus,
    CompanyStripe,
    StripeWebhookEvent,
    TierPrice,
)
from growth.services import conversion_record

STRIPE = Actor.external("stripe")


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


def event_order_key(event: StripeWebhookEvent) -> int:
    return event.created * 10 + EVENT_RANK.get(event.type, 0)


def company_from_object(obj: dict[str, Any]) -> Company | None:
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


def subscription_tier(sub: dict[str, Any]) -> tuple[Tier | None, str, str]:
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


def trial_end(sub: dict[str, Any]) -> datetime | None:
    """When the subscription's trial ends or ended: Stripe's ``trial_end``, or the moment the
    subscription ended if that came first (canceled during its trial). None: no trial."""
    stamps = [sub.get("trial_end")]
    if stamps[0] and sub.get("ended_at"):
        stamps.append(sub["ended_at"])
    ends = [s for s in stamps if isinstance(s, int)]
    return datetime.fromtimestamp(min(ends), tz=UTC) if ends else None


def billing_effect_record(
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


def company_status_apply(*, company: Company, mapping: CompanyStripe, actor: Actor) -> str | None:
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


def invoice_outcome_record(*, mapping: CompanyStripe, outcome: str, key: int) -> bool:
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


def locked_mapping(company: Company) -> CompanyStripe:
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
    mapping = locked_mapping(company)
    effects: list[str] = []
    same_subscription = mapping.subscription_id == sub.get("id")
    if mapping.subscription_id and not same_subscription and deleted:
        return ["old subscription deleted: ignored"]
    if same_subscription and mapping.subscription_status == "canceled" and not deleted:
        return ["subscription already deleted: ignored"]
    if key is not None and key <= mapping.subscription_state_key and not deleted:
        return ["older than applied state: ignored"]
    tier, item_id, price_id = subscription_tier(sub)
    customer = sub.get("customer")
    updates: dict[str, Any] = {
        "subscription_id": sub.get("id"),
        "subscription_item_id": item_id,
        "subscription_price_id": price_id,
    }
    if key is not None:
        updates["subscription_state_key"] = max(key, mapping.subscription_state_key)
        updates["subscription_status"] = "canceled" if deleted else (sub.get("status") or "")
        # The latest trial is kept when a later subscription has none (trial→paid counts it).
        if (ends := trial_end(sub)) is not None:
            updates["trial_end"] = ends
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
        billing_effect_record(
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
        if not deleted:
            # Stripe applied a dearer tier: a completed upgrade, which may convert an experiment.
            conversion_record(company=company, from_tier=current_tier, to_tier=tier)
    if key is not None:
        before = company_status_apply(company=company, mapping=mapping, actor=actor)
        status = company.status
        if before is not None:
            billing_effect_record(
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
