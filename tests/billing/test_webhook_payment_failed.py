"""A failed payment: the company goes past due, ops get one task, owners one e-mail."""

from __future__ import annotations

import pytest

from accounts.models import CompanyStatus
from audit.models import AuditLog
from billing.stripe.models import BillingEvent, BillingEventKind, CompanyStripe, StripeWebhookEvent
from billing.stripe.webhook_processing import webhook_event_process
from ops.models import Notification, OpsTask
from tests.billing.stripe_fixtures import WEBHOOK_SECRET
from tests.fakes.stripe_server import make_event, signed_webhook

URL = "/api/v1/billing/stripe/webhook/"


def _deliver(client, event: dict) -> int:
    body, header = signed_webhook(event, WEBHOOK_SECRET)
    response = client.post(URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)
    assert response.status_code == 200
    return StripeWebhookEvent.objects.get(stripe_id=event["id"]).pk


def _failed_invoice(customer: str, created: int, attempt: int) -> dict:
    return make_event(
        "invoice.payment_failed",
        {
            "id": "in_1QfailedInvoice",
            "object": "invoice",
            "customer": customer,
            "amount_due": 4_900,
            "currency": "usd",
            "attempt_count": attempt,
            "next_payment_attempt": created + 3 * 86_400,
            "hosted_invoice_url": "https://invoice.stripe.com/i/test_in_1",
        },
        created=created,
    )


@pytest.mark.django_db
def test_payment_failed_makes_the_company_past_due_once_however_often_delivered(
    client, fake_stripe, stripe_company
):
    acme = stripe_company("starter", name="Acme Freight")
    CompanyStripe.objects.create(company=acme, customer_id="cus_acme")
    first = _failed_invoice("cus_acme", created=1_790_000_000, attempt=1)
    retry = _failed_invoice("cus_acme", created=1_790_090_000, attempt=2)  # Stripe's next attempt failed too

    for event in (first, first, retry, first, retry):
        assert webhook_event_process(webhook_event_id=_deliver(client, event)) in ("processed", "skipped")

    acme.refresh_from_db()
    assert acme.status == CompanyStatus.PAST_DUE
    task = OpsTask.objects.get(kind="billing.payment_failed")
    assert task.company == acme and "in_1QfailedInvoice" in task.details and "49.00 USD" in task.title
    email = Notification.objects.get(kind="billing.payment_failed")
    assert email.email_to == [acme.owner.email] and email.slack_status == "none"
    assert "https://invoice.stripe.com/i/test_in_1" in email.text
    assert StripeWebhookEvent.objects.count() == 2
    assert BillingEvent.objects.filter(kind=BillingEventKind.PAYMENT_FAILED, company=acme).count() == 2
    stripe_actions = AuditLog.objects.filter(actor_label="stripe", company_id=acme.pk)
    assert stripe_actions.filter(action="billing.invoice.payment_failed").count() == 2
    assert stripe_actions.filter(action="billing.company.status_change").count() == 1


@pytest.mark.django_db
def test_a_payment_failure_older_than_the_payment_does_not_undo_it(client, fake_stripe, stripe_company):
    acme = stripe_company("starter")
    CompanyStripe.objects.create(company=acme, customer_id="cus_acme2")
    paid = make_event(
        "invoice.paid",
        {"id": "in_2", "object": "invoice", "customer": "cus_acme2", "amount_paid": 4_900, "currency": "usd"},
        created=1_790_000_100,
    )
    failed = _failed_invoice("cus_acme2", created=1_790_000_000, attempt=1)  # arrives late

    webhook_event_process(webhook_event_id=_deliver(client, paid))
    webhook_event_process(webhook_event_id=_deliver(client, failed))

    acme.refresh_from_db()
    assert acme.status == CompanyStatus.ACTIVE
    assert (
        OpsTask.objects.filter(kind="billing.payment_failed").count() == 1
    )  # the fact is still worth a look


@pytest.mark.django_db
def test_a_late_failure_of_an_invoice_since_paid_alerts_nobody(client, fake_stripe, stripe_company):
    acme = stripe_company("starter")
    CompanyStripe.objects.create(company=acme, customer_id="cus_acme3")
    failed = _failed_invoice("cus_acme3", created=1_790_000_000, attempt=1)
    paid = make_event(
        "invoice.paid",
        {
            "id": "in_1QfailedInvoice",  # the same invoice, paid on Stripe's retry
            "object": "invoice",
            "customer": "cus_acme3",
            "amount_paid": 4_900,
            "currency": "usd",
        },
        created=1_790_000_100,
    )

    webhook_event_process(webhook_event_id=_deliver(client, paid))
    webhook_event_process(webhook_event_id=_deliver(client, failed))  # delivered late

    acme.refresh_from_db()
    assert acme.status == CompanyStatus.ACTIVE
    assert not OpsTask.objects.filter(kind="billing.payment_failed").exists()
    assert not Notification.objects.filter(kind="billing.payment_failed").exists()
    assert BillingEvent.objects.filter(kind=BillingEventKind.PAYMENT_FAILED, company=acme).count() == 1
