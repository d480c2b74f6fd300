"""A correctly signed delivery that PostgreSQL or our event shape cannot take is never a
500: a Stripe event we cannot read is a 400 counted with the rejections, with its id; text
PostgreSQL cannot hold is stored repaired, marked failed, and handed to ops."""

from __future__ import annotations

import json

import pytest
import stripe

from billing.stripe.models import StripeWebhookEvent, WebhookEventStatus, WebhookRejection
from ops.models import OpsTask
from tests.billing.stripe_fixtures import WEBHOOK_SECRET
from tests.fakes.stripe_server import make_event, signed_webhook

URL = "/api/v1/billing/stripe/webhook/"


def _customer_event(**fields) -> dict:
    return make_event("customer.updated", {"id": "cus_1", "object": "customer", **fields})


def _post(client, body: bytes, header: str):
    return client.post(URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


def _signed_text(text: str) -> tuple[bytes, str]:
    return text.encode(), stripe.WebhookSignature.generate_signature_header(text, WEBHOOK_SECRET)


@pytest.mark.django_db
@pytest.mark.parametrize("created", [True, 2**70, -1, "1700000000", 1.5])
def test_an_event_whose_created_is_not_a_unix_time_is_a_400_counted_with_its_id(client, fake_stripe, created):
    event = _customer_event()
    event["created"] = created

    response = _post(client, *signed_webhook(event, WEBHOOK_SECRET))

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["fields"][0]["field"]) == ("malformed", "body")
    rejection = WebhookRejection.objects.get(reason="malformed")
    assert (rejection.count, rejection.last_event_id) == (1, event["id"])
    assert not StripeWebhookEvent.objects.exists()


@pytest.mark.django_db
def test_an_event_nested_5000_deep_is_a_400_counted(client, fake_stripe):
    deep = '{"id": "evt_deep", "type": "customer.updated", "created": 1700000000, "data": ' + "[" * 5000 + "]" * 5000
    too_deep_to_parse = _post(client, *_signed_text(deep + "}"))
    event = _customer_event()
    nested: dict = {}
    inner = nested
    for _ in range(100):
        inner["x"] = {}
        inner = inner["x"]
    event["data"]["object"]["metadata"] = nested
    parsed_but_too_deep = _post(client, *signed_webhook(event, WEBHOOK_SECRET))

    assert [too_deep_to_parse.status_code, parsed_but_too_deep.status_code] == [400, 400]
    assert WebhookRejection.objects.get(reason="malformed").count == 2
    assert WebhookRejection.objects.get(reason="malformed").last_event_id == event["id"]
    assert not StripeWebhookEvent.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "where"),
    [("Acme\u0000Freight", "data.object.name"), ("Acme \ud800", "data.object.name")],
    ids=["NUL", "lone surrogate"],
)
def test_text_postgresql_cannot_hold_is_stored_repaired_failed_and_handed_to_ops(
    client, fake_stripe, name, where
):
    event = _customer_event(name=name)
    body, header = signed_webhook(event, WEBHOOK_SECRET)

    first = _post(client, body, header)
    again = _post(client, body, header)  # Stripe redelivers: still no 5xx, stored once

    assert (first.status_code, first.json()) == (200, {"received": True, "duplicate": False})
    assert (again.status_code, again.json()) == (200, {"received": True, "duplicate": True})
    stored = StripeWebhookEvent.objects.get()
    assert stored.status == WebhookEventStatus.FAILED and stored.next_attempt_at is None
    assert stored.payload["data"]["object"]["name"] == name.replace("\u0000", "\ufffd").replace("\ud800", "\ufffd")
    assert where in stored.error
    task = OpsTask.objects.get(kind="billing.webhook_failed")
    assert event["id"] in task.title and where in task.details
    assert not WebhookRejection.objects.exists()


@pytest.mark.django_db
def test_a_nul_in_a_field_name_is_repaired_too(client, fake_stripe):
    event = _customer_event(metadata={"k\u0000": "v"})

    response = _post(client, *signed_webhook(event, WEBHOOK_SECRET))

    assert response.status_code == 200
    stored = StripeWebhookEvent.objects.get()
    assert stored.payload["data"]["object"]["metadata"] == {"k\ufffd": "v"}
    assert json.dumps(stored.payload)  # what admin shows renders
