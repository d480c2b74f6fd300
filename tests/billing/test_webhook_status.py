"""The company's status after invoice and subscription events: a paid invoice only ends
"past due", a deleted subscription is final, whatever order Stripe delivers them in."""

from __future__ import annotations

import pytest

from accounts.models import Company, CompanyStatus
from audit.models import AuditLog
from billing.stripe.models import CompanyStripe, StripeWebhookEvent
from billing.stripe.webhook_processing import webhook_event_process
from tests.billing.stripe_fixtures import METERED_PRICES, TIER_PRICES, WEBHOOK_SECRET, with_customer
from tests.fakes.stripe_server import make_event, signed_webhook

URL = "/api/v1/billing/stripe/webhook/"
T0 = 1_790_000_000


def _deliver_and_process(client, event: dict) -> str:
    body, header = signed_webhook(event, WEBHOOK_SECRET)
    response = client.post(URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)
    assert response.status_code == 200
    return webhook_event_process(webhook_event_id=StripeWebhookEvent.objects.get(stripe_id=event["id"]).pk)


def _subscribed(fake, company: Company, tier: str, *, status: str = CompanyStatus.ACTIVE) -> dict:
    customer = with_customer(fake, company)
    sub = fake.add_subscription(
        customer,
        [TIER_PRICES[tier], METERED_PRICES[(tier, "quotes")]],
        metadata={"company_id": str(company.pk)},
    )
    # Our copy as earlier events left it: the subscription's status matches the company's.
    CompanyStripe.objects.filter(company=company).update(
        subscription_id=sub["id"], subscription_item_id=sub["items"]["data"][0]["id"], subscription_status=status
    )
    Company.objects.filter(pk=company.pk).update(status=status)
    return sub


def _invoice(kind: str, sub: dict, created: int, invoice_id: str = "in_1Status") -> dict:
    return make_event(
        kind,
        {
            "id": invoice_id,
            "object": "invoice",
            "customer": sub["customer"],
            "amount_paid": 19_900,
            "amount_due": 19_900,
            "currency": "usd",
            "parent": {"type": "subscription_details", "subscription_details": {"subscription": sub["id"]}},
        },
        created=created,
    )


@pytest.mark.django_db
@pytest.mark.parametrize("order", ["deleted_first", "paid_first"])
def test_a_deleted_subscription_stays_canceled_whatever_invoice_paid_says(
    client, fake_stripe, stripe_company, order
):
    globex = stripe_company("pro")
    sub = _subscribed(fake_stripe, globex, "pro", status=CompanyStatus.PAST_DUE)
    deleted = make_event(
        "customer.subscription.deleted", fake_stripe.set_subscription_status(sub["id"], "canceled"), created=T0
    )
    paid = _invoice("invoice.paid", sub, created=T0 + 10)  # the last invoice, paid after the end
    events = [deleted, paid] if order == "deleted_first" else [paid, deleted]

    for event in events:
        assert _deliver_and_process(client, event) == "processed"

    globex.refresh_from_db()
    assert globex.status == CompanyStatus.CANCELED
    # Policy: the canceled company drops to the cheapest tier at once (audited, by Stripe).
    assert globex.tier.code == "starter"
    assert AuditLog.objects.filter(
        action="billing.company.tier_change", actor_label="stripe", company_id=globex.pk
    ).exists()


@pytest.mark.django_db
def test_invoice_paid_never_ends_a_trial_or_revives_a_canceled_company(client, fake_stripe, stripe_company):
    trial = stripe_company("starter")
    trial_sub = _subscribed(fake_stripe, trial, "starter", status=CompanyStatus.TRIALING)
    gone = stripe_company("starter")
    gone_sub = _subscribed(fake_stripe, gone, "starter", status=CompanyStatus.CANCELED)

    _deliver_and_process(client, _invoice("invoice.paid", trial_sub, created=T0, invoice_id="in_trial"))
    _deliver_and_process(client, _invoice("invoice.paid", gone_sub, created=T0, invoice_id="in_gone"))

    trial.refresh_from_db()
    gone.refresh_from_db()
    assert (trial.status, gone.status) == (CompanyStatus.TRIALING, CompanyStatus.CANCELED)


@pytest.mark.django_db
def test_invoice_paid_ends_past_due_only_for_the_current_subscription(client, fake_stripe, stripe_company):
    acme = stripe_company("starter")
    sub = _subscribed(fake_stripe, acme, "starter", status=CompanyStatus.PAST_DUE)
    old = {"id": "sub_old_one", "customer": sub["customer"]}

    _deliver_and_process(client, _invoice("invoice.paid", old, created=T0, invoice_id="in_old"))
    acme.refresh_from_db()
    assert acme.status == CompanyStatus.PAST_DUE

    _deliver_and_process(client, _invoice("invoice.paid", sub, created=T0 + 1, invoice_id="in_current"))
    acme.refresh_from_db()
    assert acme.status == CompanyStatus.ACTIVE


@pytest.mark.django_db
def test_payment_failed_does_not_make_a_canceled_company_past_due(client, fake_stripe, stripe_company):
    gone = stripe_company("starter")
    sub = _subscribed(fake_stripe, gone, "starter", status=CompanyStatus.CANCELED)

    _deliver_and_process(client, _invoice("invoice.payment_failed", sub, created=T0))

    gone.refresh_from_db()
    assert gone.status == CompanyStatus.CANCELED
