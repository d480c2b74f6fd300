"""Every Stripe request has a deadline: an API that accepts the connection and never
answers is a retryable failure after ``STRIPE_TIMEOUT_SECONDS``, not a hung worker."""

from __future__ import annotations

import time

import pytest

from billing.stripe.gateway import StripeClient, StripeGatewayError
from tests.silent_server import SilentServer


def test_a_stripe_that_never_answers_fails_retryably_within_the_timeout(settings):
    settings.STRIPE_TIMEOUT_SECONDS = 1
    with SilentServer() as silent:
        client = StripeClient(api_key="sk_test_x", api_base=f"http://127.0.0.1:{silent.port}", max_network_retries=0)
        started = time.monotonic()
        with pytest.raises(StripeGatewayError) as failed:
            client.customer_create(name="Acme", email=None, metadata={}, idempotency_key="k-1")
        took = time.monotonic() - started

    assert failed.value.retryable
    assert took < 5
    assert silent.connections == 1
