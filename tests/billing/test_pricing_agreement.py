"""The calculator, the usage summary's plan comparison and the pricing function never
disagree: for random volumes, on every tier, they give the same cost."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from accounts.models import Company
from billing.plans.catalogue import install_default_catalogue
from billing.plans.models import Feature, Tier, TierLimit
from billing.plans.pricing import tier_cost
from billing.plans.selectors import public_tier_terms
from usage.models import UsageCounter
from usage.selectors import usage_summary

NOV, DEC = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
FEATURES = ["quotes", "bulk_jobs", "directory_invites", "loads"]
volumes = st.fixed_dictionaries({code: st.integers(0, 3_000_000) for code in FEATURES})
moments = st.datetimes(min_value=datetime(2026, 11, 1), max_value=datetime(2026, 11, 30, 23), timezones=st.just(UTC))


@pytest.fixture
def catalogue(db):
    """The default plans plus a feature only Enterprise sets a limit for (the others do
    not offer it once it is used)."""
    install_default_catalogue(Tier=Tier, Feature=Feature, TierLimit=TierLimit)
    loads = Feature.objects.create(code="loads", name="Loads", order=40)
    enterprise = Tier.objects.get(code="enterprise")
    TierLimit.objects.create(tier=enterprise, feature=loads, included=500, overage_unit_price=7)
    return {t.code: t for t in Tier.objects.all()}


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(volumes=volumes, tier=st.sampled_from(["starter", "pro", "enterprise"]), at=moments)
def test_quote_summary_and_pricing_agree_on_every_tier(catalogue, volumes, tier, at):
    company, _ = Company.objects.update_or_create(slug="prop", defaults={"name": "Prop", "tier": catalogue[tier]})
    for code, used in volumes.items():
        UsageCounter.objects.update_or_create(
            company=company, feature=Feature.objects.get(code=code), period_start=NOV,
            defaults={"period_end": DEC, "used": used, "updated_at": NOV},
        )
    with time_machine.travel(at, tick=False):
        summary = usage_summary(company=company)
    compared = {t["code"]: t for t in summary["upgrade"]["tiers"]}
    projected = {f["feature"]: f["projected_used"] for f in summary["features"]}

    for volumes_priced, summary_key in [(volumes, "cost_at_current_usage"), (projected, "projected_cost")]:
        r = APIClient().get("/api/v1/plans/quote/", volumes_priced)
        assert r.status_code == 200, r.content
        quoted = {t["code"]: t for t in r.json()["tiers"]}
        priced = {t.code: tier_cost(tier=t, volumes=volumes_priced) for t in public_tier_terms()}
        assert set(quoted) == set(priced) == set(compared)
        for code in priced:
            assert quoted[code]["total"] == priced[code].total == compared[code][summary_key], code
            assert quoted[code]["offered"] == priced[code].offered
        if summary_key == "projected_cost":
            # The same rule picks the same tier from the same projected volumes.
            assert summary["upgrade"]["recommended"] == r.json()["cheapest"]
            assert [c for c, t in compared.items() if t["offered"] != quoted[c]["offered"]] == []
