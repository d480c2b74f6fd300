"""The gateway: the one place that talks to Stripe, and whether a failure is worth a retry."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest
from django.core.checks import run_checks

from billing.stripe.gateway import StripeClient, StripeGatewayError
from billing.stripe.models import FeatureMeter, TierFeaturePrice, TierPrice


def _client(fake, **kwargs) -> StripeClient:
    return StripeClient(api_key=fake.api_key, api_base=fake.url, max_network_retries=0, **kwargs)


def _now() -> datetime:
    return datetime.now(tz=UTC)


def test_a_server_error_is_retryable_and_a_refusal_is_not(fake_stripe):
    client = _client(fake_stripe)
    customer = fake_stripe.add_customer(email="a@example.com")["id"]
    fake_stripe.fail_next(1, 503)

    with pytest.raises(StripeGatewayError) as outage:
        client.meter_event_create(
            event_name="tb_quotes", customer_id=customer, value=1, identifier="i-1", timestamp=_now()
        )
    with pytest.raises(StripeGatewayError) as unknown_customer:
        client.checkout_session_create(
            customer_id="cus_missing",
            price_id="price_pro_month",
            success_url="https://x.test/s",
            cancel_url="https://x.test/c",
            metadata={},
            client_reference_id="1",
            idempotency_key="k-1",
        )

    assert outage.value.retryable and outage.value.status == 503
    assert not unknown_customer.value.retryable and unknown_customer.value.status == 400


def test_an_unreachable_stripe_is_retryable():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = StripeClient(api_key="sk_test_x", api_base=f"http://127.0.0.1:{port}", max_network_retries=0)

    with pytest.raises(StripeGatewayError) as exc:
        client.customer_create(name="Acme", email=None, metadata={}, idempotency_key="tb-customer-1")

    assert exc.value.retryable and exc.value.status is None


def test_a_wrong_key_is_not_retryable(fake_stripe):
    client = StripeClient(api_key="sk_test_wrong", api_base=fake_stripe.url, max_network_retries=0)

    with pytest.raises(StripeGatewayError) as exc:
        client.customer_create(name="Acme", email=None, metadata={}, idempotency_key="tb-customer-1")

    assert not exc.value.retryable and exc.value.status == 401


def test_a_resent_meter_event_is_not_counted_twice(fake_stripe):
    client = _client(fake_stripe)
    customer = fake_stripe.add_customer()["id"]
    args = dict(event_name="tb_quotes", customer_id=customer, value=5, identifier="tb-1-quotes-20261101-1")

    first = client.meter_event_create(**args, timestamp=_now())
    again = _client(fake_stripe).meter_event_create(**args, timestamp=_now())

    assert (first.duplicate, again.duplicate) == (False, False)  # same idempotency key: Stripe replays
    other_key = fake_stripe.client(max_network_retries=0)
    with pytest.raises(Exception, match="already exists"):
        other_key.v1.billing.meter_events.create(
            params={
                "event_name": "tb_quotes",
                "payload": {"stripe_customer_id": customer, "value": "5"},
                "identifier": args["identifier"],
            }
        )
    assert len(fake_stripe.meter_events) == 1


def test_without_a_secret_key_nothing_is_attempted(settings):
    settings.STRIPE_SECRET_KEY = ""
    with pytest.raises(StripeGatewayError) as exc:
        StripeClient()
    assert not exc.value.retryable


@pytest.mark.django_db
def test_the_system_check_warns_about_missing_mappings_when_live(settings, stripe_catalogue):
    settings.STRIPE_LIVE_BILLING = True
    settings.STRIPE_SECRET_KEY = "sk_test_x"
    settings.STRIPE_WEBHOOK_SECRET = ""
    TierPrice.objects.filter(tier__code="pro").delete()
    FeatureMeter.objects.filter(feature__code="bulk_jobs").delete()
    TierFeaturePrice.objects.filter(tier__code="starter", feature__code="quotes").delete()

    ids = {(w.id, str(w.obj)) for w in run_checks(tags=["billing"])}

    assert ("billing.W001", "STRIPE_WEBHOOK_SECRET") in ids
    assert ("billing.W002", "tier:pro") in ids
    assert ("billing.W003", "feature:bulk_jobs") in ids
    assert ("billing.W003", "feature:directory_invites") in ids
    assert ("billing.W005", "tier:starter:feature:quotes") in ids
    assert not any(w == "billing.W005" and "enterprise" in o for w, o in ids)

    settings.STRIPE_LIVE_BILLING = False
    assert run_checks(tags=["billing"]) == []
