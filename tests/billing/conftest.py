"""Fixtures for billing tests. The Stripe ones live in stripe_fixtures.py (shared with
another area building in this folder); add others below."""

from tests.billing.stripe_fixtures import *  # noqa: F401,F403
