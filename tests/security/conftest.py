"""Two companies with usage events, keys and members, for the row-level security tests."""

from __future__ import annotations

import itertools

import pytest
from django.utils import timezone

from accounts.models import Company, CompanyAPIKey, Membership
from billing.plans.catalogue import install_default_catalogue
from billing.plans.models import Feature, Tier, TierLimit
from usage.models import UsageEvent

_seq = itertools.count(1)


@pytest.fixture
def catalogue(db):
    install_default_catalogue(Tier=Tier, Feature=Feature, TierLimit=TierLimit)
    return {t.code: t for t in Tier.objects.all()}


@pytest.fixture
def make_tenant(catalogue, django_user_model):
    """A company with an owner, an API key and ``events`` usage events."""

    def make(name: str, *, events: int) -> Company:
        n = next(_seq)
        company = Company.objects.create(name=name, slug=f"rls-{n}", tier=catalogue["starter"])
        company.owner = django_user_model.objects.create_user(f"rls-owner{n}", f"o{n}@example.com", "pw-owner-123")
        Membership.objects.create(user=company.owner, company=company, role="owner")
        _, company.api_key = CompanyAPIKey.objects.create_key(company=company, name="backend")
        quotes = Feature.objects.get(code="quotes")
        now = timezone.now()
        for i in range(events):
            UsageEvent.objects.create(
                company=company, feature=quotes, quantity=1, idempotency_key=f"k{n}-{i}", fingerprint="f" * 64,
                occurred_at=now, received_at=now, period_start=now.replace(day=1, hour=0, minute=0, second=0),
            )
        return company

    return make


@pytest.fixture
def acme(make_tenant):
    return make_tenant("Acme Freight", events=3)


@pytest.fixture
def globex(make_tenant):
    return make_tenant("Globex Logistics", events=2)
