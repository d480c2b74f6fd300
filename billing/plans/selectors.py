"""Reads of the plan catalogue."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q

from billing.plans.models import EntitlementOverride, Feature, Tier, TierLimit
from billing.plans.pricing import LimitTerms, TierTerms, recommend, savings, tier_cost

# The largest monthly volume the calculator prices: far beyond any plan, small enough
# that every total fits a 64-bit integer.
MAX_QUOTE_VOLUME = 10**12


@dataclass(frozen=True)
class Entitlement:
    """What a company may use of a feature at a moment: its tier's terms, or a contract
    override's while one is in force. ``offered`` is False when neither sets a limit."""

    feature_id: int
    feature: str
    terms: LimitTerms
    source: str  # "tier", "override" or "none"
    override_id: int | None = None

    @property
    def offered(self) -> bool:
        return self.source != "none"


@dataclass(frozen=True)
class EntitlementSources:
    """What a company's entitlements are made of: every feature in catalogue order, its
    tier's limit rows, and its contract overrides (by feature, latest start first)."""

    features: list[tuple[int, str]]
    limits: dict[int, TierLimit]
    overrides: list[EntitlementOverride]


def entitlement_sources(*, company_id: int, tier_id: int, at: datetime | None = None) -> EntitlementSources:
    """The rows ``entitlements_resolve`` reads (three queries): with ``at``, only the
    overrides in force then; without, all of the company's (for a cache that resolves
    many moments)."""
    overrides = EntitlementOverride.objects.filter(company_id=company_id)
    if at is not None:
        overrides = overrides.filter(starts_at__lte=at).filter(Q(ends_at__isnull=True) | Q(ends_at__gt=at))
    return EntitlementSources(
        features=list(Feature.objects.order_by("order", "code").values_list("id", "code")),
        limits={limit.feature_id: limit for limit in TierLimit.objects.filter(tier_id=tier_id)},
        overrides=list(overrides.order_by("feature_id", "-starts_at", "-id")),
    )


def entitlements_resolve(sources: EntitlementSources, *, at: datetime) -> dict[str, Entitlement]:
    """The one rule: an override whose [starts_at, ends_at) holds ``at`` replaces the
    tier's terms (the latest start wins); otherwise the tier's limit row; a feature with
    neither is unlimited and not offered."""
    in_force: dict[int, EntitlementOverride] = {}
    for override in sources.overrides:
        if override.starts_at <= at and (override.ends_at is None or override.ends_at > at):
            in_force.setdefault(override.feature_id, override)
    out: dict[str, Entitlement] = {}
    for feature_id, code in sources.features:
        source: EntitlementOverride | TierLimit | None = in_force.get(feature_id) or sources.limits.get(feature_id)
        if source is None:
            out[code] = Entitlement(feature_id, code, LimitTerms(None, 0), "none")
            continue
        terms = LimitTerms(source.included, source.overage_unit_price, source.mode, source.overage_cap)
        if isinstance(source, EntitlementOverride):
            out[code] = Entitlement(feature_id, code, terms, "override", source.pk)
        else:
            out[code] = Entitlement(feature_id, code, terms, "tier")
    return out


def entitlements_effective(*, company_id: int, tier_id: int, at: datetime) -> dict[str, Entitlement]:
    """Feature code → the effective entitlement of a company on ``tier_id`` at ``at``, for
    every feature (three queries; ``billing.plans.cache.entitlements_cached`` keeps them)."""
    return entitlements_resolve(entitlement_sources(company_id=company_id, tier_id=tier_id, at=at), at=at)


def entitlement_effective(*, company_id: int, tier_id: int, feature: str, at: datetime) -> Entitlement | None:
    """One feature's effective entitlement (``None``: no such feature)."""
    return entitlements_effective(company_id=company_id, tier_id=tier_id, at=at).get(feature)


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
            limit.feature.code: LimitTerms(
                limit.included, limit.overage_unit_price, limit.mode, limit.overage_cap
            )
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
