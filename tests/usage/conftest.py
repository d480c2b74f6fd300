"""Named fixtures for usage tests: the default catalogue, a company on each tier with an
owner and an API key, and clients speaking as a key or as a member."""

from __future__ import annotations

import itertools

import pytest
from rest_framework.test import APIClient

from accounts.models import Company, CompanyAPIKey, Membership
from billing.plans.catalogue import install_default_catalogue
from billing.plans.models import Feature, Tier, TierLimit

_seq = itertools.count(1)


@pytest.fixture
def catalogue(db):
    """The default plans (the data migration's rows are gone after a transactional test)."""
    install_default_catalogue(Tier=Tier, Feature=Feature, TierLimit=TierLimit)
    return {t.code: t for t in Tier.objects.all()}


@pytest.fixture
def make_company(catalogue, django_user_model):
    def make(tier: str = "starter", *, name: str | None = None, owner_email: str | None = None, **extra):
        n = next(_seq)
        company = Company.objects.create(
            name=name or f"Company {n}", slug=f"company-{n}", tier=catalogue[tier], **extra
        )
        owner = django_user_model.objects.create_user(
            f"owner{n}", owner_email or f"owner{n}@example.com", "pw-owner-123"
        )
        Membership.objects.create(user=owner, company=company, role="owner")
        company.owner = owner
        return company

    return make


@pytest.fixture
def make_key():
    def make(company: Company, name: str = "backend") -> str:
        _, secret = CompanyAPIKey.objects.create_key(company=company, name=name)
        return secret

    return make


@pytest.fixture
def acme(make_company):
    """A Starter company (quotes: 1,000 included, 5 cents each beyond)."""
    return make_company("starter", name="Acme Freight")


@pytest.fixture
def globex(make_company):
    """Another tenant, on Pro."""
    return make_company("pro", name="Globex Logistics")


@pytest.fixture
def key_client(make_key):
    def make(company: Company) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {make_key(company)}")
        return client

    return make


@pytest.fixture
def member_client():
    def make(user) -> APIClient:
        client = APIClient()
        client.force_authenticate(user)
        return client

    return make
