"""Reads of usage: the usage meter (summary with plan comparison).

The summary reads counters only, in one aggregate query over every (tier, feature) pair
joined with the limits and this period's counters: its cost does not grow with events,
features or tiers in number of queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Case, CharField, Exists, F, FilteredRelation, OuterRef, Q, QuerySet, Value, When
from django.utils import timezone

from accounts.models import Company, CompanyStatus
from accounts.selectors import company_period
from usage.models import UsageCounter


class Level:
    OK = "ok"
    WARNING = "warning"
    EXCEEDED = "exceeded"


def usage_levels(*, now: datetime, since: datetime | None = None) -> QuerySet[UsageCounter]:
    """The one rule for "at warning level" and "over a limit", read by the dashboard, the
    company filter, the admin bars, the nightly monitor and the usage API alike.

    Every counter at or beyond the warning share of the limit that the company's *own*
    tier sets for that feature, annotated with ``included`` and ``level`` ("warning" up to
    the limit itself, "exceeded" above it). An unlimited feature, a feature the tier has
    no limit row for, and other tiers' limits never count; nor do canceled companies,
    which have no plan running. The period is the one open at ``now``; with ``since``,
    every period overlapping [since, now] (the monitor's look-back)."""
    mine = FilteredRelation("feature__limits", condition=Q(feature__limits__tier=F("company__tier")))
    counters = (
        UsageCounter.objects.alias(mine=mine)
        .filter(period_start__lte=now, period_end__gt=since or now, used__gt=0, mine__included__isnull=False)
        .exclude(company__status=CompanyStatus.CANCELED)
        .annotate(included=F("mine__included"))
        .alias(used100=F("used") * 100)
        .filter(used100__gte=F("included") * settings.USAGE_WARNING_PERCENT)
        .annotate(
            level=Case(
                When(used__gt=F("included"), then=Value(Level.EXCEEDED)),
                default=Value(Level.WARNING),
                output_field=CharField(),
            )
        )
    )
    return counters.order_by()


def feature_levels(*, company: Company, now: datetime) -> dict[int, str]:
    """Feature id → level for the company's current period (features at "ok" are absent)."""
    return dict(usage_levels(now=now).filter(company=company).values_list("feature_id", "level"))


def overage_units(used: int, included: int | None) -> int:
    return 0 if included is None else max(0, used - included)


_SUMMARY_SQL = """
SELECT t.id, t.code, t.name, t.monthly_price, t.currency,
       f.id, f.code, f.name, f.unit,
       l.id, l.included, l.overage_unit_price,
       COALESCE(c.used, 0)
FROM billing_tier t
CROSS JOIN billing_feature f
LEFT JOIN billing_tierlimit l ON l.tier_id = t.id AND l.feature_id = f.id
LEFT JOIN usage_usagecounter c
       ON c.company_id = %s AND c.feature_id = f.id AND c.period_start = %s
WHERE t.is_public OR t.id = %s
ORDER BY t."order", t.monthly_price, t.id, f."order", f.code
"""


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


def _feature_cost(used: int, included: int | None, unit_price: int) -> int:
    return overage_units(used, included) * unit_price


def usage_summary(*, company: Company, at: datetime | None = None) -> dict[str, Any]:
    """The usage meter for the company's current period. A tier without a limit row for a
    feature treats it as unlimited and free (a newly added feature alerts nobody), is
    never the recommended plan, and is named by a system check (billing.W010)."""
    now = at or timezone.now()
    start, end = company_period(company, now)
    with connection.cursor() as cursor:
        cursor.execute(
            _SUMMARY_SQL, [company.pk, connection.ops.adapt_datetimefield_value(start), company.tier_id]
        )
        rows = [_Row(*r) for r in cursor.fetchall()]
    unconfigured: set[int] = set()
    for row in rows:
        if row.limit_id is None:
            row.included, row.overage_price = None, 0
            unconfigured.add(row.tier_id)

    elapsed = max((now - start).total_seconds(), 0.0)
    length = (end - start).total_seconds()
    # Linear projection to the end of the period; none in its first hour (too noisy).
    factor = length / elapsed if elapsed >= 3600 else 1.0

    tiers: dict[int, dict[str, Any]] = {}
    for row in rows:
        tier = tiers.setdefault(
            row.tier_id,
            {
                "code": row.tier_code,
                "name": row.tier_name,
                "monthly_price": row.price,
                "currency": row.currency,
                "limits": [],
                "overage_cost": 0,
                "projected_overage_cost": 0,
            },
        )
        tier["limits"].append(
            {
                "feature": row.feature_code,
                "included": row.included,
                "overage_unit_price": row.overage_price,
            }
        )
        tier["overage_cost"] += _feature_cost(row.used, row.included, row.overage_price)
        tier["projected_overage_cost"] += _feature_cost(
            int(row.used * factor), row.included, row.overage_price
        )

    levels = feature_levels(company=company, now=now)
    features = []
    for row in rows:
        if row.tier_id != company.tier_id:
            continue
        included = row.included
        percent = None
        if included:
            percent = round(row.used * 100 / included, 1)
        elif included == 0:
            percent = 0.0 if row.used == 0 else None
        units = overage_units(row.used, included)
        features.append(
            {
                "feature": row.feature_code,
                "name": row.feature_name,
                "unit": row.unit,
                "used": row.used,
                "limit": included,
                "remaining": None if included is None else max(0, included - row.used),
                "percent": percent,
                "status": levels.get(row.feature_id, Level.OK),
                "overage_units": units,
                "overage_unit_price": row.overage_price,
                "overage_cost": units * row.overage_price,
                "projected_used": int(row.used * factor),
            }
        )

    current = tiers[company.tier_id]
    for tier in tiers.values():
        tier["cost_at_current_usage"] = tier["monthly_price"] + tier["overage_cost"]
        tier["projected_cost"] = tier["monthly_price"] + tier["projected_overage_cost"]
    # Cheapest for this period's usage so far; ties go to the smaller plan (listed first).
    # A tier missing a limit for some feature is not configured yet: never recommend it.
    candidates = [t for tid, t in tiers.items() if tid not in unconfigured or tid == company.tier_id]
    recommended = min(candidates, key=lambda t: t["cost_at_current_usage"])
    upgrade_tiers = []
    for tier_id, tier in tiers.items():
        upgrade_tiers.append(
            {
                "code": tier["code"],
                "name": tier["name"],
                "monthly_price": tier["monthly_price"],
                "currency": tier["currency"],
                "limits": tier["limits"],
                "cost_at_current_usage": tier["cost_at_current_usage"],
                "projected_cost": tier["projected_cost"],
                "current": tier_id == company.tier_id,
                "recommended": tier is recommended,
            }
        )
    return {
        "company": {"id": company.pk, "slug": company.slug, "name": company.name, "status": company.status},
        "period": {"start": start, "end": end},
        "tier": {
            "code": current["code"],
            "name": current["name"],
            "monthly_price": current["monthly_price"],
            "currency": current["currency"],
        },
        "features": features,
        "totals": {
            "currency": current["currency"],
            "base_price": current["monthly_price"],
            "overage_cost": current["overage_cost"],
            "total_so_far": current["cost_at_current_usage"],
            "projected_overage_cost": current["projected_overage_cost"],
            "projected_total": current["projected_cost"],
        },
        "upgrade": {
            "recommended": recommended["code"],
            "suggested": recommended is not current,
            "tiers": upgrade_tiers,
        },
    }


def plans_list() -> list[dict[str, Any]]:
    """Public tiers with their limits, in comparison order (one query)."""
    from billing.plans.models import Tier

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
