"""Only deliveries signed by Stripe get in; a rejected one leaves nothing but a count."""

from __future__ import annotations

import json
import time

import pytest
from django.db.models import Sum

from audit.models import AuditLog
from billing.stripe.models import BillingEvent, StripeWebhookEvent, WebhookRejection
from tests.billing.stripe_fixtures import WEBHOOK_SECRET
from tests.fakes.stripe_server import make_event, signed_webhook

URL = "/api/v1/billing/stripe/webhook/"


def _invoice_failed(customer: str = "cus_forged") -> dict:
    return make_event(
        "invoice.payment_failed",
        {
            "id": "in_forged",
            "object": "invoice",
            "customer": customer,
            "amount_due": 4_900,
            "currency": "usd",
        },
    )


def _forgeries(n: int) -> list[tuple[bytes, str | None, str]]:
    out: list[tuple[bytes, str | None, str]] = []
    for i in range(n):
        body, header = signed_webhook(_invoice_failed(), WEBHOOK_SECRET)
        kind = i % 4
        if kind == 0:  # one byte changed after signing
            at = len(body) // 2 + i % 7
            body = body[:at] + bytes([body[at] ^ 0x01]) + body[at + 1 :]
            out.append((body, header, "bad_signature"))
        elif kind == 1:  # signed with another secret
            body, header = signed_webhook(_invoice_failed(), "whsec_someone_else")
            out.append((body, header, "bad_signature"))
        elif kind == 2:  # no header at all
            out.append((body, None, "missing_signature"))
        else:  # correctly signed, 301 s ago
            body, header = signed_webhook(_invoice_failed(), WEBHOOK_SECRET, timestamp=int(time.time()) - 301)
            out.append((body, header, "stale_signature"))
    return out


@pytest.mark.django_db
def test_it_rejects_100_forged_deliveries_and_stores_nothing(client, fake_stripe):
    audit_before = AuditLog.objects.count()
    answers = []
    for body, header, _ in _forgeries(100):
        extra = {"HTTP_STRIPE_SIGNATURE": header} if header is not None else {}
        answers.append(client.post(URL, data=body, content_type="application/json", **extra))

    assert [r.status_code for r in answers] == [400] * 100
    assert answers[2].json()["error"]["fields"][0]["field"] == "Stripe-Signature"
    assert not StripeWebhookEvent.objects.exists()
    assert not BillingEvent.objects.exists()
    assert AuditLog.objects.count() == audit_before
    counts = dict(WebhookRejection.objects.values_list("reason", "count"))
    assert counts == {"bad_signature": 50, "missing_signature": 25, "stale_signature": 25}
    assert WebhookRejection.objects.aggregate(total=Sum("count"))["total"] == 100


@pytest.mark.django_db
def test_a_signed_delivery_is_stored_once_and_a_repeat_is_acknowledged(client, fake_stripe):
    body, header = signed_webhook(
        make_event("customer.created", {"id": "cus_1", "object": "customer"}), WEBHOOK_SECRET
    )

    first = client.post(URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)
    second = client.post(URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)

    assert (first.status_code, first.json()) == (200, {"received": True, "duplicate": False})
    assert (second.status_code, second.json()) == (200, {"received": True, "duplicate": True})
    stored = StripeWebhookEvent.objects.get()
    assert stored.type == "customer.created" and stored.deliveries == 2
    assert stored.payload == json.loads(body)


@pytest.mark.django_db
def test_without_a_configured_secret_everything_is_refused(client, fake_stripe, settings):
    body, header = signed_webhook(_invoice_failed(), WEBHOOK_SECRET)
    settings.STRIPE_WEBHOOK_SECRET = ""

    response = client.post(URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)

    assert response.status_code == 400
    assert not StripeWebhookEvent.objects.exists()


@pytest.mark.django_db
def test_a_get_is_not_allowed(client, fake_stripe):
    assert client.get(URL).status_code == 405
