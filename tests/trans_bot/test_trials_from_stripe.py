"""Trial→paid from what Stripe says: the subscription's trial_end arrives with the
subscription webhooks, a paid invoice after it makes the company paying, and a trial
canceled early ends when the subscription ended."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from accounts.models import Company, CompanyStatus
from billing.stripe.models import CompanyStripe, StripeWebhookEvent
from billing.stripe.webhook_processing import webhook_event_process
from tests.billing.stripe_fixtures import *  # noqa: F401,F403
from tests.billing.stripe_fixtures import METERED_PRICES, TIER_PRICES, WEBHOOK_SECRET, with_customer
from tests.fakes.stripe_server import make_event, signed_webhook
from trans_bot.targets import business_targets

pytestmark = pytest.mark.django_db
TRIAL_END = datetime(2026, 11, 10, 9, tzinfo=UTC)
T = int(TRIAL_END.timestamp())


def _deliver(client, event: dict) -> None:
    """Delivered and processed a few seconds after Stripe sent it."""
    body, header = signed_webhook(event, WEBHOOK_SECRET)
    with time_machine.travel(datetime.fromtimestamp(event["created"] + 5, tz=UTC), tick=False):
        response = client.post(
            "/api/v1/billing/stripe/webhook/", data=body, content_type="application/json",
            HTTP_STRIPE_SIGNATURE=header,
        )
        assert response.status_code == 200
        stored = StripeWebhookEvent.objects.get(stripe_id=event["id"])
        assert webhook_event_process(webhook_event_id=stored.pk) == "processed"


def _trialing(fake, company: Company) -> dict:
    customer = with_customer(fake, company)
    sub = fake.add_subscription(
        customer, [TIER_PRICES["starter"], METERED_PRICES[("starter", "quotes")]],
        metadata={"company_id": str(company.pk)},
    )
    return {**sub, "status": "trialing", "trial_start": T - 14 * 86400, "trial_end": T}


def _paid(sub: dict, *, created: int, amount: int) -> dict:
    invoice = {
        "id": f"in_{created}_{amount}",
        "object": "invoice",
        "customer": sub["customer"],
        "amount_paid": amount,
        "currency": "usd",
        "parent": {"type": "subscription_details", "subscription_details": {"subscription": sub["id"]}},
    }
    return make_event("invoice.paid", invoice, created=created)


def _trial_figure(now: datetime):
    return next(f for f in business_targets(now=now) if f.name == "Trial → paid (30 days)")


def test_a_trial_that_ends_and_is_paid_counts_as_converted(client, fake_stripe, stripe_company):
    acme = stripe_company("starter")
    sub = _trialing(fake_stripe, acme)
    _deliver(client, make_event("customer.subscription.created", sub, created=T - 14 * 86400))
    _deliver(client, _paid(sub, created=T - 14 * 86400 + 1, amount=0))  # the trial's zero invoice
    assert CompanyStripe.objects.get(company=acme).trial_end == TRIAL_END
    assert _trial_figure(TRIAL_END - timedelta(hours=1)).value is None  # not ended yet

    _deliver(client, make_event("customer.subscription.updated", {**sub, "status": "active"}, created=T))
    assert _trial_figure(TRIAL_END + timedelta(minutes=30)).detail.startswith("0 of 1 ")  # not paid yet

    _deliver(client, _paid(sub, created=T + 3600, amount=4900))
    acme.refresh_from_db()
    figure = _trial_figure(TRIAL_END + timedelta(days=1))
    assert acme.status == CompanyStatus.ACTIVE
    assert (figure.value, figure.detail[:7]) == (1.0, "1 of 1 ")


def test_a_trial_canceled_early_ends_when_the_subscription_ended(client, fake_stripe, stripe_company):
    globex = stripe_company("starter")
    sub = _trialing(fake_stripe, globex)
    _deliver(client, make_event("customer.subscription.created", sub, created=T - 14 * 86400))
    ended = T - 5 * 86400
    gone = {**sub, "status": "canceled", "canceled_at": ended, "ended_at": ended}
    _deliver(client, make_event("customer.subscription.deleted", gone, created=ended))

    assert CompanyStripe.objects.get(company=globex).trial_end == datetime.fromtimestamp(ended, tz=UTC)
    # Counted as a trial that ended (unpaid) from the day it was canceled, not from the planned end.
    figure = _trial_figure(TRIAL_END - timedelta(days=1))
    assert (figure.value, figure.detail[:7]) == (0.0, "0 of 1 ")
