"""Ops see what billing did and what Stripe said, and can retry what failed."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditLog
from billing.stripe.models import (
    BillingEvent,
    BillingEventStatus,
    CompanyStripe,
    StripeWebhookEvent,
    TierPrice,
    WebhookEventStatus,
)
from billing.stripe.overage import overage_report_run
from billing.stripe.webhook_processing import webhook_event_process
from tests.billing.stripe_fixtures import WEBHOOK_SECRET, with_customer
from tests.fakes.stripe_server import make_event, signed_webhook


@pytest.mark.django_db
def test_a_failed_event_is_processed_again_from_admin(client, ops_client, fake_stripe, stripe_company):
    acme = stripe_company("starter")
    event = make_event(
        "invoice.payment_failed",
        {
            "id": "in_adm",
            "object": "invoice",
            "customer": "cus_admin",
            "amount_due": 4_900,
            "currency": "usd",
        },
    )
    body, header = signed_webhook(event, WEBHOOK_SECRET)
    client.post(
        "/api/v1/billing/stripe/webhook/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=header,
    )
    stored = StripeWebhookEvent.objects.get()
    assert webhook_event_process(webhook_event_id=stored.pk) == "processed"  # unknown customer: nothing to do
    StripeWebhookEvent.objects.filter(pk=stored.pk).update(status=WebhookEventStatus.FAILED, error="boom")
    CompanyStripe.objects.create(company=acme, customer_id="cus_admin")

    listing = ops_client.get(reverse("admin:billing_stripewebhookevent_changelist"))
    assert listing.status_code == 200 and b"invoice.payment_failed" in listing.content
    response = ops_client.post(
        reverse("admin:billing_stripewebhookevent_changelist"),
        {"action": "process_again", "_selected_action": [stored.pk]},
        follow=True,
    )

    assert response.status_code == 200
    stored.refresh_from_db()
    acme.refresh_from_db()
    assert stored.status == WebhookEventStatus.PROCESSED and acme.status == "past_due"
    assert AuditLog.objects.filter(action="billing.webhook.reprocess", actor_label="olivia").exists()


@pytest.mark.django_db
def test_a_failed_overage_report_is_sent_again_from_admin(
    ops_client, fake_stripe, stripe_company, set_usage, settings
):
    acme = stripe_company("starter")
    set_usage(acme, "quotes", 1_100)
    with_customer(fake_stripe, acme)
    key = settings.STRIPE_SECRET_KEY
    settings.STRIPE_SECRET_KEY = "sk_test_wrong"
    overage_report_run()
    report = BillingEvent.objects.get()
    assert report.status == BillingEventStatus.FAILED

    assert ops_client.get(reverse("admin:billing_billingevent_changelist")).status_code == 200
    assert ops_client.get(reverse("admin:billing_billingevent_change", args=[report.pk])).status_code == 200
    ops_client.post(
        reverse("admin:billing_billingevent_changelist"),
        {"action": "send_again", "_selected_action": [report.pk]},
    )
    settings.STRIPE_SECRET_KEY = key
    overage_report_run()

    report.refresh_from_db()
    assert report.status == BillingEventStatus.SENT
    assert [e["identifier"] for e in fake_stripe.meter_events] == [report.identifier]


@pytest.mark.django_db
def test_mapping_edits_in_admin_are_audited(ops_client, stripe_catalogue):
    price = TierPrice.objects.get(tier__code="pro")

    response = ops_client.post(
        reverse("admin:billing_tierprice_change", args=[price.pk]),
        {"tier": price.tier_id, "price_id": "price_pro_2027"},
    )

    assert response.status_code == 302
    log = AuditLog.objects.get(action="admin.billing.tierprice.change")
    assert log.details["changes"]["price_id"] == {"before": "price_pro_month", "after": "price_pro_2027"}
