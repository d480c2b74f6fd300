"""Reads of usage: the usage meter (summary with plan comparison).

The summary reads counters only, in one aggregate query over every (tier, feature) pair
joined with the limits and this period's counters: its cost does not grow with events,
features or tiers in number of queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import (
    Case,
    CharField,
    Exists,
    F,
    FilteredRelation,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.utils import timezone

from accounts.models import Company, CompanyStatus
from accounts.selectors import company_period
from billing.plans.cache import entitlements_cached
from billing.plans.credits import balances_of, credit_grants_open
from billing.plans.models import CreditConsumption, CreditGrant, EntitlementOverride, Feature, Tier, TierLimit
from billing.plans.pricing import CreditBalance, LimitTerms, TierCost, TierTerms, recommend, tier_cost
from billing.plans.selectors import Entitlement
from core.postgresql.prepared import fetchall_prepared
from usage.models import UsageCounter


class Level:
    OK = "ok"
    WARNING = "warning"
    EXCEEDED = "exceeded"


def usage_levels(*, now: datetime, since: datetime | None = None, min_percent: int | None = None) -> QuerySet[Any]:
    """The one rule for "at warning level" and "over a limit", read by the dashboard, the
    company filter, the admin bars, the nightly monitor and the usage API alike.

    Every counter at or beyond the warning share of the limit that the company's *own*
    tier sets for that feature (or a contract override in force at ``now``), annotated
    with ``included`` and ``level`` ("warning" up to
    the limit itself, "exceeded" above it). An unlimited feature, a feature the tier has
    no limit row for, and other tiers' limits never count; nor do canceled companies,
    which have no plan running. The period is the one open at ``now``; with ``since``,
    every period overlapping [since, now] (the monitor's look-back). ``min_percent``
    replaces the warning share as the floor (the monitor: the lowest alert level in use)."""
    mine = FilteredRelation("feature__limits", condition=Q(feature__limits__tier=F("company__tier")))
    # A contract override in force at ``now`` replaces the tier's included quantity (the
    # rule of billing.plans.selectors.entitlements_effective; empty there = unlimited).
    in_force = (
        EntitlementOverride.objects.filter(
            company_id=OuterRef("company_id"), feature_id=OuterRef("feature_id"), starts_at__lte=now
        )
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now))
        .order_by("-starts_at", "-id")
    )
    counters = (
        UsageCounter.objects.alias(mine=mine, contract=Exists(in_force))
        .filter(period_start__lte=now, period_end__gt=since or now, used__gt=0)
        .exclude(company__status=CompanyStatus.CANCELED)
        .annotate(
            included=Case(
                When(contract=True, then=Subquery(in_force.values("included")[:1])),
                default=F("mine__included"),
            )
        )
        .filter(included__isnull=False)
        .alias(used100=F("used") * 100)
        .filter(used100__gte=F("included") * (settings.USAGE_WARNING_PERCENT if min_percent is None else min_percent))
        .annotate(
            level=Case(
                When(used__gt=F("included"), then=Value(Level.EXCEEDED)),
                default=Value(Level.WARNING),
                output_field=CharField(),
            )
        )
    )
    return counters.order_by()


def level_of(*, used: int, included: int | None, company_status: str) -> str:
    """``usage_levels``'s rule for one counter already read with its effective included
    quantity (the tier's, or a contract override's in force): the usage summary reads every
    counter anyway, and building that query again would cost it more than all the rest.
    ``tests/usage/test_usage_levels.py`` holds the two to the same answers."""
    if company_status == CompanyStatus.CANCELED or included is None or used <= 0:
        return Level.OK
    if used * 100 < included * settings.USAGE_WARNING_PERCENT:
        return Level.OK
    return Level.EXCEEDED if used > included else Level.WARNING


_SUMMARY_SQL = """
SELECT t.id, t.code, t.name, t.monthly_price, t.currency,
       f.id, f.code, f.name, f.unit,
       l.id, l.included, l.overage_unit_price,
       COALESCE(c.used, 0), l.mode, l.overage_cap,
       o.id, o.included, o.overage_unit_price, o.mode, o.overage_cap,
       (SELECT COALESCE(SUM(cc.units), 0) FROM {consumption} cc
        WHERE cc.company_id = %s AND cc.feature_id = f.id AND cc.period_start = %s),
       (SELECT COUNT(*) FROM {grant} g
        WHERE g.company_id = %s AND g.starts_at <= %s AND g.expires_at > %s AND g.consumed < g.amount)
FROM {tier} t
CROSS JOIN {feature} f
LEFT JOIN {limit} l ON l.tier_id = t.id AND l.feature_id = f.id
LEFT JOIN {counter} c
       ON c.company_id = %s AND c.feature_id = f.id AND c.period_start = %s
LEFT JOIN {override} o
       ON t.id = %s AND o.company_id = %s AND o.feature_id = f.id
      AND o.starts_at <= %s AND (o.ends_at IS NULL OR o.ends_at > %s)
      AND NOT EXISTS (
          SELECT 1 FROM {override} later
          WHERE later.company_id = o.company_id AND later.feature_id = o.feature_id
            AND later.starts_at <= %s AND (later.ends_at IS NULL OR later.ends_at > %s)
            AND (later.starts_at > o.starts_at OR (later.starts_at = o.starts_at AND later.id > o.id))
      )
WHERE t.is_public OR t.id = %s
ORDER BY t."order", t.monthly_price, t.id, f."order", f.code
"""


@cache
def _summary_sql() -> str:
    """The tables are named by the models that own them (billing's, usage's): a renamed
    table follows here instead of breaking this query at run time."""
    models = {
        "tier": Tier,
        "feature": Feature,
        "limit": TierLimit,
        "counter": UsageCounter,
        "override": EntitlementOverride,
        "consumption": CreditConsumption,
        "grant": CreditGrant,
    }
    return _SUMMARY_SQL.format(**{key: connection.ops.quote_name(m._meta.db_table) for key, m in models.items()})


@dataclass
class _Row:
    tier_id: int
    tier_code: str
    tier_name: str
    price: int
    currency: str
    feature_id: int
    feature_code: str
    feature_name: str
    unit: str
    limit_id: int | None
    included: int | None
    overage_price: int
    used: int
    mode: str | None
    overage_cap: int | None
    override_id: int | None
    override_included: int | None
    override_price: int | None
    override_mode: str | None
    override_cap: int | None
    credited_units: int  # overage units of the period credits already paid (billing.plans.credits)
    open_grants: int  # the company's credit grants usable now


def usage_summary(*, company: Company, at: datetime | None = None) -> dict[str, Any]:
    """The usage meter for the company's current period, and what the period would cost
    on every plan, priced by ``billing.plans.pricing`` (as the calculator is).

    The recommended plan is the cheapest for the usage *projected* to the period's end,
    among the tiers that set a limit for every feature the company uses: a tier without a
    limit row for a used feature (named by the system check billing.W010) is never
    recommended, the company's own tier included. On its own tier such a feature is
    shown as unlimited and costs nothing (a newly added feature alerts and bills nobody).

    Credits: the same query says what credits already paid this period and whether any
    grant is usable now (then one more query reads the grants); the company's own plan's
    cost then shows what credits pay and what is left of them (``credits``)."""
    now = at or timezone.now()
    start, end = company_period(company, now)
    own = company.tier_id
    assert own is not None  # a company always has a tier (PROTECT, not null)
    at_ = connection.ops.adapt_datetimefield_value(now)
    start_ = connection.ops.adapt_datetimefield_value(start)
    found = fetchall_prepared(
        _summary_sql(),
        [
            *(company.pk, start_, company.pk, at_, at_),
            *(company.pk, start_, own, company.pk, at_, at_, at_, at_, own),
        ],
    )
    rows = [_Row(*r) for r in found]
    for row in rows:
        if row.override_id is not None:
            # A contract override in force on the company's own plan: the rule of
            # billing.plans.selectors.entitlements_effective, joined into this one query.
            row.limit_id = row.limit_id or -1
            row.included, row.overage_price = row.override_included, row.override_price or 0
            row.mode, row.overage_cap = row.override_mode, row.override_cap
        elif row.limit_id is None:
            row.included, row.overage_price, row.mode = None, 0, "soft"

    elapsed = max((now - start).total_seconds(), 0.0)
    length = (end - start).total_seconds()
    # Linear projection to the end of the period; none in its first hour (too noisy).
    factor = length / elapsed if elapsed >= 3600 else 1.0

    limits: dict[int, dict[str, LimitTerms]] = {}
    used: dict[str, int] = {}
    for row in rows:
        limits.setdefault(row.tier_id, {})
        if row.limit_id is not None:
            limits[row.tier_id][row.feature_code] = LimitTerms(
                row.included, row.overage_price, row.mode or "soft", row.overage_cap
            )
        used[row.feature_code] = row.used
    terms = {
        row.tier_id: TierTerms(row.tier_code, row.tier_name, row.price, row.currency, limits=limits[row.tier_id])
        for row in rows
    }
    projected = {code: int(n * factor) for code, n in used.items()}
    # The company's credits pay its own plan's overage (billing.plans.credits); the other
    # plans are compared, and the plan recommended, on prices before credits.
    grants = credit_grants_open(company_id=company.pk, at=now) if rows and rows[0].open_grants else []
    balances = balances_of(grants, currency=terms[own].currency)
    taken = {row.feature_code: row.credited_units for row in rows if row.tier_id == own and row.credited_units}

    def cost(tier_id: int, volumes: dict[str, int]) -> TierCost:
        if tier_id != own:
            return tier_cost(tier=terms[tier_id], volumes=volumes)
        return tier_cost(tier=terms[tier_id], volumes=volumes, credits=balances, credited=taken)

    so_far = {tier_id: cost(tier_id, used) for tier_id in terms}
    ahead = {tier_id: cost(tier_id, projected) for tier_id in terms}
    current_code = terms[own].code
    advice = recommend(ahead.values(), current=current_code, usage="your projected usage this period")

    paid = {f.feature: f for f in so_far[own].features}
    features = []
    for row in rows:
        if row.tier_id != own:
            continue
        included = row.included
        percent = None
        if included:
            percent = round(row.used * 100 / included, 1)
        elif included == 0:
            percent = 0.0 if row.used == 0 else None
        own_terms = limits[own].get(row.feature_code) or LimitTerms(None, 0)
        units = own_terms.billable_overage(row.used)
        features.append(
            {
                "feature": row.feature_code,
                "name": row.feature_name,
                "unit": row.unit,
                "used": row.used,
                "limit": included,
                "remaining": None if included is None else max(0, included - row.used),
                "percent": percent,
                "status": level_of(used=row.used, included=included, company_status=company.status),
                "overage_units": units,
                "overage_unit_price": row.overage_price,
                "overage_cost": units * row.overage_price,
                "credited_units": paid[row.feature_code].credited_units,
                "overage_cost_after_credits": paid[row.feature_code].overage_cost_after_credits,
                "projected_used": projected[row.feature_code],
            }
        )

    upgrade_tiers = []
    for tier_id, tier in terms.items():
        upgrade_tiers.append(
            {
                "code": tier.code,
                "name": tier.name,
                "monthly_price": tier.monthly_price,
                "currency": tier.currency,
                "limits": [
                    {"feature": r.feature_code, "included": r.included, "overage_unit_price": r.overage_price}
                    for r in rows
                    if r.tier_id == tier_id
                ],
                "cost_at_current_usage": so_far[tier_id].total,
                "projected_overage_cost": ahead[tier_id].overage,
                "projected_cost": ahead[tier_id].total,
                "offered": ahead[tier_id].offered,
                "not_offered": list(ahead[tier_id].not_offered),
                "current": tier_id == own,
                "recommended": tier.code == advice.code,
            }
        )
    current_so_far, current_ahead = so_far[own], ahead[own]
    current = terms[own]
    return {
        "company": {"id": company.pk, "slug": company.slug, "name": company.name, "status": company.status},
        "period": {"start": start, "end": end},
        "tier": {
            "code": current.code,
            "name": current.name,
            "monthly_price": current.monthly_price,
            "currency": current.currency,
        },
        "features": features,
        "totals": {
            "currency": current.currency,
            "base_price": current.monthly_price,
            "overage_cost": current_so_far.overage,
            "total_so_far": current_so_far.total,
            "projected_overage_cost": current_ahead.overage,
            "projected_total": current_ahead.total,
            "credited": current_so_far.credited,
            "overage_after_credits": current_so_far.overage_after_credits,
            "total_after_credits": current_so_far.total_after_credits,
            "projected_credited": current_ahead.credited,
            "projected_overage_after_credits": current_ahead.overage_after_credits,
            "projected_total_after_credits": current_ahead.total_after_credits,
        },
        "credits": credits_left(grants, after=current_so_far.credits_left, currency=current.currency),
        "upgrade": {
            "recommended": advice.code,
            "suggested": advice.code is not None and advice.code != current_code,
            "reason": advice.reason,
            "tiers": upgrade_tiers,
        },
    }


def plans_list() -> list[dict[str, Any]]:
    """Public tiers with their limits, in comparison order (one query)."""
    out = []
    for tier in Tier.objects.filter(is_public=True).prefetch_related("limits__feature").order_by(
        "order", "monthly_price", "id"
    ):
        out.append(
            {
                "code": tier.code,
                "name": tier.name,
                "monthly_price": tier.monthly_price,
                "currency": tier.currency,
                "limits": [
                    {
                        "feature": limit.feature.code,
                        "name": limit.feature.name,
                        "unit": limit.feature.unit,
                        "included": limit.included,
                        "overage_unit_price": limit.overage_unit_price,
                        "mode": limit.mode,
                        "overage_cap": limit.overage_cap,
                    }
                    for limit in sorted(
                        tier.limits.all(), key=lambda lim: (lim.feature.order, lim.feature.code)
                    )
                ],
            }
        )
    return out


def companies_at_usage_level(queryset: QuerySet[Company], *, level: str, now: datetime | None = None) -> QuerySet:
    """The companies of ``queryset`` with some feature at ``level`` ("warning" or
    "exceeded") in their current period, by ``usage_levels``. A company with one feature
    over and another at warning level is in both."""
    counters = usage_levels(now=now or timezone.now()).filter(company=OuterRef("pk"), level=level)
    return queryset.filter(Exists(counters))


@dataclass(frozen=True)
class FeatureStanding:
    """Where a company stands on one feature this period, from its counter."""

    entitlement: Entitlement
    used: int
    resets_at: datetime

    @property
    def remaining(self) -> int | None:
        """Units left within the included quantity (``None``: unlimited)."""
        included = self.entitlement.terms.included
        return None if included is None else max(0, included - self.used)

    @property
    def accepts(self) -> int | None:
        """Units still accepted this period before refusals start (``None``: no ceiling)."""
        ceiling = self.entitlement.terms.ceiling
        return None if ceiling is None else max(0, ceiling - self.used)


_COUNTERS_USED_SQL = "SELECT feature_id, used FROM {counter} WHERE company_id = %s AND period_start = %s"


@cache
def _counters_used_sql() -> str:
    """Named by the model, as ``_summary_sql`` is."""
    return _COUNTERS_USED_SQL.format(counter=connection.ops.quote_name(UsageCounter._meta.db_table))


def entitlement_standings(*, company: Company, at: datetime | None = None) -> dict[str, FeatureStanding]:
    """Feature code → the company's effective entitlement and this period's use, for every
    feature: the entitlements from this process's cache (a change shows within a second,
    ``billing.plans.cache``), the use from one counters query, none over events."""
    now = at or timezone.now()
    assert company.tier_id is not None
    start, end = company_period(company, now)
    entitled = entitlements_cached(company_id=company.pk, tier_id=company.tier_id, at=now)
    # Asked before every metered action: one prepared indexed read, no ORM query to build.
    used = dict(fetchall_prepared(_counters_used_sql(), [company.pk, start]))
    return {
        code: FeatureStanding(entitlement=e, used=used.get(e.feature_id, 0), resets_at=end)
        for code, e in entitled.items()
    }


@dataclass(frozen=True)
class EntitlementDecision:
    allowed: bool
    remaining: int | None
    reason: str


def entitlement_check(*, standing: FeatureStanding, quantity: int) -> EntitlementDecision:
    """Would ``quantity`` more units be accepted now? ``remaining`` is what is still accepted
    (hard and capped limits) or still included (soft); ``None`` when nothing runs out."""
    terms = standing.entitlement.terms
    name = standing.entitlement.feature
    if terms.included is None:
        return EntitlementDecision(True, None, f"{name} is unlimited on this plan.")
    accepts = standing.accepts
    if accepts is None:  # soft (or capped without a price): beyond the included quantity is billed
        remaining = standing.remaining
        assert remaining is not None
        if quantity <= remaining:
            return EntitlementDecision(True, remaining, f"Within the {terms.included} included this period.")
        return EntitlementDecision(
            True,
            remaining,
            f"Beyond the {terms.included} included this period: each unit over is billed as overage "
            f"({terms.overage_unit_price} minor units each).",
        )
    if quantity <= accepts:
        return EntitlementDecision(True, accepts, f"Within the limit: {accepts} left this period.")
    if terms.mode == "hard":
        why = f"Hard limit: {standing.used} of {terms.included} used this period"
    else:
        why = (
            f"Overage cap of {terms.overage_cap} minor units: {standing.used} of {terms.ceiling} "
            "accepted this period"
        )
    return EntitlementDecision(
        False, accepts, f"{why}; {quantity} more would exceed it. Resets at {standing.resets_at.isoformat()}."
    )


def credits_left(grants: list[Any], *, after: tuple[CreditBalance, ...], currency: str) -> dict[str, Any]:
    """The summary's credits: each grant usable now with what is ``left`` once this
    period's overage so far is paid from it (``after``, by the pricing rule), and the
    totals of money and of units per feature."""
    left = {b.grant_id: b.left for b in after}
    rows = [
        {
            "id": g.pk,
            "kind": g.kind,
            "feature": g.feature.code if g.feature is not None else None,
            "currency": g.currency or None,
            "granted": g.amount,
            "left": left.get(g.pk, 0),
            "starts_at": g.starts_at,
            "expires_at": g.expires_at,
        }
        for g in grants
        if g.pk in left  # a money grant in another currency pays for nothing here
    ]
    units: dict[str, int] = {}
    for row in rows:
        if row["feature"] is not None:
            units[row["feature"]] = units.get(row["feature"], 0) + row["left"]
    return {
        "currency": currency,
        "money_left": sum(r["left"] for r in rows if r["feature"] is None and r["currency"] == currency),
        "units_left": units,
        "grants": rows,
    }
