"""Fixtures for billing tests. The Stripe ones live in stripe_fixtures.py (shared with
another area building in this folder); add others below."""

import pytest

from tests.billing.stripe_fixtures import *  # noqa: F401,F403


@pytest.fixture(autouse=True)
def _quotes_not_limited(settings):
    """The pricing calculator's limit per client address (billing.plans.throttles) is the
    subject of test_quote_throttle.py only: elsewhere every request comes from 127.0.0.1."""
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "quote": None}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
