"""The fake Stripe server must reject what Stripe rejects, seen through the real SDK.

If these pass, a billing test that goes green against the fake has really
exercised auth, idempotency and meter-event dedup.  No database is touched.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import stripe

from tests.fakes.stripe_server import FakeStripeServer, make_event, parse_form, signed_webhook

METER_ID = "mtr_test_translated_chars"
EVENT_NAME = "translated_chars"


@pytest.fixture
def fake() -> Iterator[FakeStripeServer]:
    with FakeStripeServer(meters={EVENT_NAME: METER_ID}) as server:
        yield server


@pytest.fixture
def client(fake: FakeStripeServer) -> stripe.StripeClient:
    return stripe.StripeClient(
        fake.api_key,
        base_addresses={"api": fake.url},
        max_network_retries=0,
    )


@pytest.fixture
def customer_id(fake: FakeStripeServer) -> str:
    return str(fake.add_customer(email="org@example.com")["id"])


def _event(customer_id: str, value: str = "10", **extra: object) -> dict[str, object]:
    return {
        "event_name": EVENT_NAME,
        "payload": {"stripe_customer_id": customer_id, "value": value},
        **extra,
    }


def test_wrong_api_key_is_an_authentication_error(fake: FakeStripeServer) -> None:
    bad = stripe.StripeClient("sk_test_wrong", base_addresses={"api": fake.url}, max_network_retries=0)
    with pytest.raises(stripe.AuthenticationError) as excinfo:
        bad.v1.customers.create(params={"email": "x@example.com"})
    assert excinfo.value.http_status == 401
    assert excinfo.value.json_body["error"]["type"] == "invalid_request_error"
    assert fake.customers == {}


def test_meter_event_is_accepted_and_recorded(
    fake: FakeStripeServer, client: stripe.StripeClient, customer_id: str
) -> None:
    event = client.v1.billing.meter_events.create(params=_event(customer_id, identifier="job-1"))

    assert event.object == "billing.meter_event"
    assert event.identifier == "job-1"
    assert event.livemode is False
    assert [e["payload"] for e in fake.meter_events] == [{"stripe_customer_id": customer_id, "value": "10"}]


def test_repeated_identifier_is_rejected(
    fake: FakeStripeServer, client: stripe.StripeClient, customer_id: str
) -> None:
    client.v1.billing.meter_events.create(params=_event(customer_id, identifier="job-1"))

    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.billing.meter_events.create(params=_event(customer_id, identifier="job-1"))

    assert excinfo.value.http_status == 400
    assert "already exists with identifier job-1" in str(excinfo.value.user_message)
    assert len(fake.meter_events) == 1


@pytest.mark.parametrize("offset", [-36 * 24 * 3600, 10 * 60], ids=["36-days-old", "10-min-ahead"])
def test_timestamp_outside_stripe_window_is_rejected(
    fake: FakeStripeServer, client: stripe.StripeClient, customer_id: str, offset: int
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.billing.meter_events.create(params=_event(customer_id, timestamp=int(time.time()) + offset))
    assert excinfo.value.http_status == 400
    assert excinfo.value.param == "timestamp"
    assert fake.meter_events == []


def test_missing_payload_value_is_rejected(client: stripe.StripeClient, customer_id: str) -> None:
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.billing.meter_events.create(
            params={"event_name": EVENT_NAME, "payload": {"stripe_customer_id": customer_id}}
        )
    assert excinfo.value.code == "parameter_missing"


def test_idempotent_replay_returns_the_original_object(
    fake: FakeStripeServer, client: stripe.StripeClient, customer_id: str
) -> None:
    options: stripe.RequestOptions = {"idempotency_key": "usage-42"}
    first = client.v1.billing.meter_events.create(params=_event(customer_id), options=options)
    second = client.v1.billing.meter_events.create(params=_event(customer_id), options=options)

    assert second.to_dict() == first.to_dict()
    assert second.last_response is not None
    assert second.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(fake.meter_events) == 1

    with pytest.raises(stripe.IdempotencyError):
        client.v1.billing.meter_events.create(params=_event(customer_id, value="11"), options=options)


def test_fail_next_surfaces_as_api_error_without_side_effects(
    fake: FakeStripeServer, client: stripe.StripeClient, customer_id: str
) -> None:
    fake.fail_next(1, status=503)
    with pytest.raises(stripe.APIError) as excinfo:
        client.v1.billing.meter_events.create(params=_event(customer_id))
    assert excinfo.value.http_status == 503
    assert fake.meter_events == []


def test_sdk_retry_after_lost_response_reuses_key_and_does_not_double_count(
    fake: FakeStripeServer, customer_id: str
) -> None:
    retrying = fake.client(max_network_retries=1)
    fake.fail_next(1, after_commit=True)  # Stripe recorded it, the response got lost

    retrying.v1.billing.meter_events.create(params=_event(customer_id))

    attempts = [r for r in fake.requests if r.path == "/v1/billing/meter_events"]
    assert len(attempts) == 2
    assert attempts[0].idempotency_key == attempts[1].idempotency_key
    assert len(fake.meter_events) == 1


def test_event_summaries_add_up_per_customer_and_window(
    fake: FakeStripeServer, client: stripe.StripeClient, customer_id: str
) -> None:
    other = str(fake.add_customer()["id"])
    now = int(time.time())
    start = now - now % 3600 - 3600  # previous full hour, minute-aligned
    for value in ("10", "2.5", "7"):
        client.v1.billing.meter_events.create(params=_event(customer_id, value, timestamp=start + 60))
    client.v1.billing.meter_events.create(params=_event(other, "1000", timestamp=start + 60))
    client.v1.billing.meter_events.create(params=_event(customer_id, "99", timestamp=start - 60))

    summaries = client.v1.billing.meters.event_summaries.list(
        METER_ID, params={"customer": customer_id, "start_time": start, "end_time": start + 3600}
    )

    assert [s.aggregated_value for s in summaries.data] == [19.5]
    assert summaries.data[0].object == "billing.meter_event_summary"
    assert [m.id for m in client.v1.billing.meters.list().data] == [METER_ID]


def test_signed_webhook_verifies_with_the_sdk() -> None:
    secret = "whsec_test_secret"
    payload = make_event("customer.subscription.updated", {"id": "sub_123", "object": "subscription"})
    body, header = signed_webhook(payload, secret)

    event = stripe.Webhook.construct_event(body, header, secret)
    assert event.type == "customer.subscription.updated"
    assert event.data.object.id == "sub_123"

    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body.replace(b"sub_123", b"sub_999"), header, secret)
    stale_body, stale_header = signed_webhook(payload, secret, timestamp=int(time.time()) - 3600)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(stale_body, stale_header, secret)


def test_checkout_then_subscription_price_change(
    fake: FakeStripeServer, client: stripe.StripeClient, customer_id: str
) -> None:
    base = fake.add_price(unit_amount=900)
    pro = fake.add_price(unit_amount=2900)
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer_id,
            "line_items": [{"price": base["id"], "quantity": 1}],
            "success_url": "https://app.example/ok",
            "cancel_url": "https://app.example/cancel",
            "client_reference_id": "org-7",
            "metadata": {"org": "7"},
        }
    )
    assert session.id.startswith("cs_") and session.url

    subscription_id = fake.complete_checkout_session(session.id)["subscription"]
    subscription = client.v1.subscriptions.retrieve(subscription_id)
    item = subscription["items"].data[0]
    assert item.current_period_end > item.current_period_start

    updated = client.v1.subscriptions.update(
        subscription_id,
        params={"items": [{"id": item.id, "price": pro["id"]}], "proration_behavior": "create_prorations"},
    )
    assert [i.price.id for i in updated["items"].data] == [pro["id"]]

    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.checkout.sessions.create(
            params={"mode": "subscription", "customer": customer_id, "line_items": [{"price": "price_nope"}]}
        )
    assert excinfo.value.code == "resource_missing"


def test_unknown_endpoint_is_a_stripe_shaped_404(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.invoices.retrieve("in_123")
    assert excinfo.value.http_status == 404


def test_parse_form_builds_nested_dicts_and_lists() -> None:
    parsed = parse_form(
        "line_items[0][price]=price_1&line_items[0][quantity]=2&line_items[1][price]=price_2"
        "&metadata[0]=kept-as-key&payload[stripe_customer_id]=cus_1&expand[]=a&expand[]=b"
    )
    assert parsed == {
        "line_items": [{"price": "price_1", "quantity": "2"}, {"price": "price_2"}],
        "metadata": {"0": "kept-as-key"},
        "payload": {"stripe_customer_id": "cus_1"},
        "expand": ["a", "b"],
    }
