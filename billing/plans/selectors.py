"""Reads of the plan catalogue."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from billing.plans.models import Feature, Tier
from billing.plans.pricing import LimitTerms, TierTerms, recommend, savings, tier_cost

# The largest monthly volume the calculator prices: far beyond any plan, small enough
# that every total fits a 64-bit integer.
MAX_QUOTE_VOLUME = 10**12


def public_tiers() -> list[Tier]:
    return list(Tier.objects.filter(is_public=True).prefetch_related("limits__feature"))


def tier_terms(tier: Tier) -> TierTerms:
    """A tier's prices and limits as the pricing rule reads them (limits prefetched)."""
    return TierTerms(
        code=tier.code,
        name=tier.name,
        monthly_price=tier.monthly_price,
        currency=tier.currency,
        order=tier.order,
        limits={
            limit.feature.code: LimitTerms(limit.included, limit.overage_unit_price)
            for limit in sorted(tier.limits.all(), key=lambda lim: (lim.feature.order, lim.feature.code))
        },
    )


def public_tier_terms() -> list[TierTerms]:
    """The public tiers in comparison order (two queries)."""
    return [tier_terms(t) for t in public_tiers()]


def feature_codes() -> list[str]:
    """Every metered feature, in catalogue order: what the calculator asks volumes for."""
    return list(Feature.objects.order_by("order", "code").values_list("code", flat=True))


def plans_quote(*, volumes: Mapping[str, int], tiers: list[TierTerms] | None = None) -> dict[str, Any]:
    """What ``volumes`` (feature code → units per month) cost on every public tier, the
    cheapest tier that offers every used feature, and how much each other tier costs more."""
    tiers = public_tier_terms() if tiers is None else tiers
    costs = [tier_cost(tier=t, volumes=volumes) for t in tiers]
    best = recommend(costs)
    extra = savings(costs, cheapest=best.code)
    return {
        "volumes": dict(volumes),
        "cheapest": best.code,
        "reason": best.reason,
        "tiers": [
            {
                "code": c.code,
                "name": c.name,
                "currency": c.currency,
                "monthly_price": c.base,
                "overage_cost": c.overage,
                "total": c.total,
                "offered": c.offered,
                "not_offered": list(c.not_offered),
                "cheapest": c.code == best.code,
                "costs_more_by": extra.get(c.code),
                "features": [
                    {
                        "feature": f.feature,
                        "volume": f.volume,
                        "included": f.included,
                        "overage_units": f.overage_units,
                        "overage_unit_price": f.overage_unit_price,
                        "overage_cost": f.overage_cost,
                    }
                    for f in c.features
                ],
            }
            for c in costs
        ],
    }
