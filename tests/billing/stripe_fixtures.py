"""Fixtures for the Stripe tests: a running stand-in for Stripe that the real SDK talks
HTTP to, the Stripe side of the catalogue (meters and prices) mapped in our models, and
companies with owners and usage. ``tests/billing/conftest.py`` star-imports the fixtures
(``__all__``); helpers are imported by name."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from django.db import connection

from accounts.models import Company, Membership
from accounts.selectors import company_period
from billing.plans.catalogue import install_default_catalogue
from billing.plans.models import Feature, Tier, TierLimit
from billing.stripe.models import CompanyStripe, FeatureMeter, TierFeaturePrice, TierPrice
from tests.fakes.stripe_server import FakeStripeServer
from trans_bot.celery import app as celery_app

WEBHOOK_SECRET = "whsec_test_transbot_0123456789abcdef"
METERS = {"tb_quotes": "mtr_test_quotes", "tb_bulk_jobs": "mtr_test_bulk_jobs"}
FEATURE_EVENT_NAMES = {"quotes": "tb_quotes", "bulk_jobs": "tb_bulk_jobs"}
TIER_PRICES = {
    "starter": "price_starter_month",
    "pro": "price_pro_month",
    "enterprise": "price_enterprise_month",
}
# Each tier bills each metered feature's overage at its own metered price.
METERED_PRICES = {
    (tier, feature): f"price_{tier}_{feature}_metered"
    for tier in TIER_PRICES
    for feature in FEATURE_EVENT_NAMES
}
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

_seq = itertools.count(1)

__all__ = ["fake_stripe", "stripe_catalogue", "stripe_company", "set_usage"]


@pytest.fixture
def fake_stripe(settings) -> Iterator[FakeStripeServer]:
    """The stand-in, with our settings pointed at it and live billing on."""
    with FakeStripeServer(meters=METERS) as fake:
        settings.STRIPE_SECRET_KEY = fake.api_key
        settings.STRIPE_API_BASE = fake.url
        settings.STRIPE_MAX_NETWORK_RETRIES = 0
        settings.STRIPE_LIVE_BILLING = True
        settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
        settings.BILLING_RETURN_URL = "https://app.transbot.test/billing"
        for code, price_id in TIER_PRICES.items():
            amount = {"starter": 4_900, "pro": 19_900, "enterprise": 99_900}[code]
            fake.add_price(price_id=price_id, unit_amount=amount, currency="usd", lookup_key=code)
        for (_, feature), price_id in METERED_PRICES.items():
            fake.add_price(
                price_id=price_id,
                unit_amount=1,
                currency="usd",
                usage_type="metered",
                meter=METERS[FEATURE_EVENT_NAMES[feature]],
            )
        yield fake
    celery_app.control.purge()  # processing tasks queued by webhook deliveries: tests process inline


@pytest.fixture
def stripe_catalogue(db) -> dict[str, Tier]:
    """The default plans, each tier with its Stripe price, quotes and bulk jobs metered."""
    install_default_catalogue(Tier=Tier, Feature=Feature, TierLimit=TierLimit)
    tiers = {t.code: t for t in Tier.objects.all()}
    for code, price_id in TIER_PRICES.items():
        TierPrice.objects.get_or_create(tier=tiers[code], defaults={"price_id": price_id})
    for code, event_name in FEATURE_EVENT_NAMES.items():
        FeatureMeter.objects.get_or_create(
            feature=Feature.objects.get(code=code),
            defaults={"event_name": event_name, "meter_id": METERS[event_name]},
        )
    for (tier, feature), price_id in METERED_PRICES.items():
        TierFeaturePrice.objects.get_or_create(
            tier=tiers[tier], feature=Feature.objects.get(code=feature), defaults={"price_id": price_id}
        )
    return tiers


@pytest.fixture
def stripe_company(stripe_catalogue, django_user_model) -> Callable[..., Company]:
    def make(tier: str = "starter", *, name: str | None = None, role: str = "owner", **extra) -> Company:
        n = next(_seq)
        company = Company.objects.create(
            name=name or f"Billing Co {n}", slug=f"billing-co-{n}", tier=stripe_catalogue[tier], **extra
        )
        owner = django_user_model.objects.create_user(f"bowner{n}", f"owner{n}@billing.test", "pw-owner-123")
        Membership.objects.create(user=owner, company=company, role=role)
        company.owner = owner
        return company

    return make


@pytest.fixture
def set_usage() -> Callable[..., None]:
    """Put a company's counter for a feature in its current period at ``used`` (what the
    usage app's ingestion keeps up to date)."""
    from usage.models import UsageCounter

    def set_(company: Company, feature: str, used: int, at: datetime | None = None) -> None:
        start, end = company_period(company, at)
        UsageCounter.objects.update_or_create(
            company=company,
            feature=Feature.objects.get(code=feature),
            period_start=start,
            defaults={"period_end": end, "used": used, "updated_at": start},
        )

    return set_


def with_customer(fake: FakeStripeServer, company: Company) -> str:
    customer = fake.add_customer(
        email=f"{company.slug}@billing.test", metadata={"company_id": str(company.pk)}
    )
    CompanyStripe.objects.update_or_create(company=company, defaults={"customer_id": customer["id"]})
    return customer["id"]


def run_in_threads(target: Callable[..., object], args_list: list[tuple]) -> list[object]:
    """Run ``target(*args)`` for each args tuple in its own thread, all released together;
    returns results (or the exceptions raised) in order. Each thread closes its DB
    connection at the end."""
    barrier = threading.Barrier(len(args_list))
    results: list[object] = [None] * len(args_list)

    def run(index: int, args: tuple) -> None:
        try:
            barrier.wait()
            results[index] = target(*args)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(args_list)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
