"""Fixtures for growth tests: the default catalogue, companies, and an experiment with a
control and a variant B on the API prompt."""

from __future__ import annotations

import itertools

import pytest
from rest_framework.test import APIClient

from accounts.models import Company, CompanyAPIKey, Membership
from billing.plans.catalogue import install_default_catalogue
from billing.plans.models import Feature, Tier, TierLimit
from growth.models import Experiment, Placement, Variant

_seq = itertools.count(1)


@pytest.fixture
def catalogue(db):
    install_default_catalogue(Tier=Tier, Feature=Feature, TierLimit=TierLimit)
    return {t.code: t for t in Tier.objects.all()}


@pytest.fixture
def make_company(catalogue, django_user_model):
    def make(tier: str = "starter", **extra):
        n = next(_seq)
        company = Company.objects.create(name=f"Growth Co {n}", slug=f"growth-co-{n}", tier=catalogue[tier], **extra)
        owner = django_user_model.objects.create_user(f"gowner{n}", f"gowner{n}@example.com", "pw-owner-123")
        Membership.objects.create(user=owner, company=company, role="owner")
        company.owner = owner
        return company

    return make


@pytest.fixture
def key_client():
    def make(company: Company) -> APIClient:
        _, secret = CompanyAPIKey.objects.create_key(company=company, name="backend")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
        return client

    return make


@pytest.fixture
def make_experiment(catalogue):
    def make(placement: str = Placement.API_PROMPT, *, key: str = "prompt-copy", holdout="0", threshold=80):
        experiment = Experiment.objects.create(key=key, name=key, placement=placement, holdout_share=holdout)
        Variant.objects.create(
            experiment=experiment, key="a", is_control=True, weight=1,
            headline="You are close to your limit", call_to_action="See plans", threshold_percent=threshold,
        )
        Variant.objects.create(
            experiment=experiment, key="b", weight=1, highlighted_tier=catalogue["pro"],
            headline="Pro gives you 10x the quotes", call_to_action="Upgrade to Pro", threshold_percent=threshold,
        )
        return experiment

    return make


def company_in(variant_key: str, experiment: Experiment, make_company, *, tier: str = "starter"):
    """A new company that the hash puts in ``variant_key`` (None: the holdout)."""
    from growth.selectors import company_variant

    for _ in range(200):
        company = make_company(tier)
        variant = company_variant(experiment=experiment, company=company)
        if (variant.key if variant else None) == variant_key:
            return company
    raise AssertionError(f"no company landed in {variant_key}")
