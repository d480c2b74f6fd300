"""Tiers, companies and their billing periods."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, transaction

from accounts.models import Company, Membership
from accounts.selectors import company_owner_emails, company_period
from billing.plans.models import Tier, TierLimit
from billing.plans.periods import period_bounds


def d(*args):
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    "anchor,at,expected",
    [
        (1, d(2026, 11, 16), (d(2026, 11, 1), d(2026, 12, 1))),
        (1, d(2026, 12, 31, 23, 59), (d(2026, 12, 1), d(2027, 1, 1))),
        (15, d(2026, 11, 14, 23), (d(2026, 10, 15), d(2026, 11, 15))),
        (15, d(2026, 11, 15), (d(2026, 11, 15), d(2026, 12, 15))),
        (31, d(2027, 2, 28, 12), (d(2027, 2, 28), d(2027, 3, 31))),
        (31, d(2027, 2, 27), (d(2027, 1, 31), d(2027, 2, 28))),
        (30, d(2028, 2, 29, 1), (d(2028, 2, 29), d(2028, 3, 30))),
    ],
)
def test_monthly_periods_from_an_anchor_day(anchor, at, expected):
    assert period_bounds(anchor, at) == expected


@pytest.mark.django_db
def test_the_default_catalogue_is_installed_by_migration():
    assert list(Tier.objects.values_list("code", "monthly_price", "currency")) == [
        ("starter", 4900, "USD"),
        ("pro", 19900, "USD"),
        ("enterprise", 99900, "USD"),
    ]
    assert TierLimit.objects.count() == 9
    assert TierLimit.objects.get(tier__code="enterprise", feature__code="directory_invites").included is None


@pytest.mark.django_db
def test_a_new_company_starts_on_the_cheapest_tier_with_a_monthly_period():
    company = Company.objects.create(name="New Co", slug="new-co", billing_anchor_day=10)
    assert company.tier.code == "starter"
    assert company.status == "active"
    assert company_period(company, d(2026, 11, 16)) == (d(2026, 11, 10), d(2026, 12, 10))


@pytest.mark.django_db
def test_creating_a_company_never_installs_a_catalogue():
    Tier.objects.all().delete()

    with pytest.raises(IntegrityError), transaction.atomic():
        Company.objects.create(name="No Plan Co", slug="no-plan-co")

    assert not Tier.objects.exists() and not TierLimit.objects.exists()
    assert not Company.objects.filter(slug="no-plan-co").exists()


@pytest.mark.django_db
def test_owner_emails_are_the_active_owners_only(django_user_model):
    company = Company.objects.create(name="Team Co", slug="team-co")
    for name, role, active in [("ann", "owner", True), ("bob", "owner", False), ("cat", "admin", True),
                               ("dan", "owner", True)]:
        user = django_user_model.objects.create_user(name, f"{name}@team.example", "pw", is_active=active)
        Membership.objects.create(user=user, company=company, role=role)
    assert company_owner_emails(company) == ["ann@team.example", "dan@team.example"]


@pytest.mark.django_db
def test_the_anchor_day_is_locked_in_admin_once_a_company_has_usage(ops_client):
    from django.urls import reverse

    from billing.plans.models import Feature
    from usage.models import UsageCounter

    fresh = Company.objects.create(name="Fresh", slug="fresh", billing_anchor_day=1)
    used = Company.objects.create(name="Used", slug="used", billing_anchor_day=1)
    UsageCounter.objects.create(
        company=used, feature=Feature.objects.get(code="quotes"), used=5,
        period_start=datetime(2026, 11, 1, tzinfo=UTC), period_end=datetime(2026, 12, 1, tzinfo=UTC),
        updated_at=datetime(2026, 11, 2, tzinfo=UTC),
    )
    fresh_page = ops_client.get(reverse("admin:accounts_company_change", args=[fresh.pk])).content.decode()
    used_page = ops_client.get(reverse("admin:accounts_company_change", args=[used.pk])).content.decode()
    assert 'name="billing_anchor_day"' in fresh_page
    assert 'name="billing_anchor_day"' not in used_page
