"""The one pricing rule (billing/plans/pricing.py): base + overage per feature, unlimited
features, tiers that do not offer a used feature, and which tier is recommended and why."""

from __future__ import annotations

import pytest

from billing.plans.catalogue import DEFAULT_LIMITS, DEFAULT_TIERS
from billing.plans.pricing import LimitTerms, TierTerms, recommend, savings, tier_cost


def default_tiers() -> list[TierTerms]:
    return [
        TierTerms(
            code,
            name,
            price,
            "USD",
            order,
            {f: LimitTerms(*terms) for (t, f), terms in DEFAULT_LIMITS.items() if t == code},
        )
        for code, name, price, order in DEFAULT_TIERS
    ]


STARTER, PRO, ENTERPRISE = default_tiers()


def test_within_the_limits_a_tier_costs_its_monthly_price():
    cost = tier_cost(tier=STARTER, volumes={"quotes": 1_000, "bulk_jobs": 10, "directory_invites": 25})
    assert (cost.base, cost.overage, cost.total, cost.currency) == (4_900, 0, 4_900, "USD")
    assert cost.offered


def test_each_unit_beyond_the_limit_costs_the_tiers_unit_price():
    cost = tier_cost(tier=STARTER, volumes={"quotes": 1_300, "bulk_jobs": 12})
    by_feature = {f.feature: (f.overage_units, f.overage_cost) for f in cost.features}
    assert by_feature == {"quotes": (300, 1_500), "bulk_jobs": (2, 400), "directory_invites": (0, 0)}
    assert cost.total == 4_900 + 1_500 + 400


def test_an_unlimited_feature_never_costs_overage():
    cost = tier_cost(tier=ENTERPRISE, volumes={"directory_invites": 10**9})
    assert cost.total == 99_900 and cost.offered


def test_a_used_feature_without_a_limit_makes_the_tier_not_offered():
    cost = tier_cost(tier=PRO, volumes={"quotes": 5, "loads": 3})
    assert cost.not_offered == ("loads",) and not cost.offered
    assert cost.total == 19_900  # priced at nothing, as the meter treats it
    assert tier_cost(tier=PRO, volumes={"loads": 0}).offered  # unused: no matter


def test_a_negative_volume_is_refused():
    with pytest.raises(ValueError, match="quotes"):
        tier_cost(tier=PRO, volumes={"quotes": -1})


def test_the_cheapest_tier_is_recommended_with_the_saving_in_the_reason():
    costs = [tier_cost(tier=t, volumes={"quotes": 5_000, "bulk_jobs": 12}) for t in default_tiers()]
    advice = recommend(costs, current="starter")
    assert advice.code == "pro"
    assert advice.reason == (
        "Pro is the cheapest plan for this usage: 199.00 USD, 54.00 USD less than your plan, Starter (253.00 USD)."
    )
    assert savings(costs, cheapest="pro") == {"starter": 5_400, "pro": 0, "enterprise": 80_000}


def test_a_tie_goes_to_the_smaller_plan():
    twin = TierTerms("pro-annual", "Pro (annual)", PRO.monthly_price, "USD", 25, PRO.limits)
    costs = [tier_cost(tier=t, volumes={"quotes": 20_000}) for t in [STARTER, PRO, twin, ENTERPRISE]]
    advice = recommend(costs)
    assert advice.code == "pro"
    assert advice.reason == (
        "Pro costs the same as Pro (annual) (499.00 USD) for this usage and is listed first."
    )
    assert recommend(costs, current="starter").reason == (
        "Pro is the cheapest plan for this usage: 499.00 USD, 500.00 USD less than your plan, Starter (999.00 USD)."
    )


def test_a_tier_not_offering_a_used_feature_is_never_recommended_even_the_current_one():
    loads_only_on_enterprise = TierTerms(
        "enterprise", "Enterprise", 99_900, "USD", 30, {**ENTERPRISE.limits, "loads": LimitTerms(None, 0)}
    )
    costs = [tier_cost(tier=t, volumes={"loads": 5}) for t in [STARTER, PRO, loads_only_on_enterprise]]
    advice = recommend(costs, current="pro")
    assert advice.code == "enterprise"
    assert advice.reason == (
        "Enterprise is the only plan that includes every feature you use (999.00 USD)."
        " Your plan, Pro, has no limit set for loads."
    )


def test_when_no_tier_offers_a_used_feature_none_is_recommended():
    advice = recommend([tier_cost(tier=t, volumes={"loads": 1}) for t in default_tiers()])
    assert advice.code is None
    assert "loads" in advice.reason


def test_tiers_in_another_currency_do_not_compete():
    cheap_eur = TierTerms("eur", "Euro Starter", 100, "EUR", 5, STARTER.limits)
    costs = [tier_cost(tier=t, volumes={}) for t in [cheap_eur, *default_tiers()]]
    assert recommend(costs, current="starter").code == "starter"
    assert "eur" not in savings(costs, cheapest="starter")
