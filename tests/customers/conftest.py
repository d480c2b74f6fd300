"""Named fixtures for the account pages: Acme Freight on Pro (an owner, Olga, and a plain
member, Mike) at 42 %, 87 % and 124 % of its three limits; Globex on Starter (owner Gina),
another tenant. The Stripe side of the catalogue is mapped, so upgrades can run against
the stand-in Stripe (``fake_stripe``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine

from accounts.models import Company, Membership
from accounts.selectors import company_period
from billing.plans.models import Feature
from tests.billing.stripe_fixtures import fake_stripe, stripe_catalogue  # noqa: F401  (fixtures)
from usage.models import UsageCounter

# Day 3 of a 31-day period: the projection multiplies usage by about 10.
NOW = datetime(2027, 1, 4, tzinfo=UTC)
PASSWORD = "pw-account-123"


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield NOW


def set_usage(company: Company, feature: str, used: int, at: datetime = NOW) -> None:
    start, end = company_period(company, at)
    UsageCounter.objects.update_or_create(
        company=company,
        feature=Feature.objects.get(code=feature),
        period_start=start,
        defaults={"period_end": end, "used": used, "updated_at": start},
    )


@pytest.fixture
def make_user(django_user_model):
    def make(username: str, **extra):
        return django_user_model.objects.create_user(
            username, extra.pop("email", f"{username}@example.com"), PASSWORD, **extra
        )

    return make


@pytest.fixture
def acme(stripe_catalogue, make_user) -> Company:  # noqa: F811 (imported fixture)
    company = Company.objects.create(name="Acme Freight", slug="acme", tier=stripe_catalogue["pro"])
    company.owner = make_user("olga", first_name="Olga", last_name="Owner")
    company.member = make_user("mike")
    Membership.objects.create(user=company.owner, company=company, role="owner")
    Membership.objects.create(user=company.member, company=company, role="member")
    # Pro includes 10,000 quotes, 100 bulk jobs, 250 directory invites.
    set_usage(company, "quotes", 4_200)  # 42 %
    set_usage(company, "bulk_jobs", 87)  # 87 %: warning
    set_usage(company, "directory_invites", 310)  # 124 %: 60 over at 0.25 USD
    return company


@pytest.fixture
def globex(stripe_catalogue, make_user) -> Company:  # noqa: F811 (imported fixture)
    company = Company.objects.create(name="Globex Logistics", slug="globex", tier=stripe_catalogue["starter"])
    company.owner = make_user("gina")
    Membership.objects.create(user=company.owner, company=company, role="owner")
    set_usage(company, "quotes", 100)
    return company
