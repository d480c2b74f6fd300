"""What the account pages show: a company's usage, plans, history and keys, read for a
member of that company. Numbers come from the usage summary (and so from the one pricing
function); this module only arranges them for a page."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from accounts.models import Company, CompanyAPIKey, Membership, MembershipRole
from audit.models import AuditLog
from billing.plans.models import Feature, Tier
from billing.plans.periods import period_bounds
from billing.plans.pricing import LimitTerms
from billing.plans.selectors import Entitlement, entitlements_effective
from billing.stripe.models import BillingEvent, BillingEventKind, BillingEventStatus
from usage.models import UsageCounter
from usage.selectors import Level, usage_summary

HISTORY_PERIODS = 12
# Roles that may change the plan and open the billing portal (as the billing API allows).
BILLING_ROLES = (MembershipRole.OWNER, MembershipRole.ADMIN)


@dataclass(frozen=True)
class Seat:
    """The signed-in user's place in the company a page is about."""

    company: Company
    role: str

    @property
    def is_owner(self) -> bool:
        return self.role == MembershipRole.OWNER

    @property
    def manages_billing(self) -> bool:
        return self.role in BILLING_ROLES


def member_seats(user: Any) -> list[Seat]:
    """Every company the user belongs to, by name."""
    if not user.is_authenticated:
        return []
    memberships = Membership.objects.filter(user=user).select_related("company__tier").order_by("company__name")
    return [Seat(company=m.company, role=m.role) for m in memberships]


def company_owners(company: Company) -> list[dict[str, str]]:
    """Who a plain member asks about the plan: the company's active owners."""
    owners = (
        Membership.objects.filter(company=company, role=MembershipRole.OWNER, user__is_active=True)
        .select_related("user")
        .order_by("user__first_name", "user__username")
    )
    return [
        {"name": m.user.get_full_name() or m.user.get_username(), "email": m.user.email} for m in owners
    ]


def _feature_meter(feature: dict[str, Any], *, currency: str, entitlement: Entitlement | None) -> dict[str, Any]:
    included = feature["limit"]
    percent = feature["percent"]
    terms = entitlement.terms if entitlement is not None else LimitTerms(included, feature["overage_unit_price"])
    projected_units = terms.billable_overage(feature["projected_used"])
    if included is None:
        bar = None
    else:
        shown = percent if percent is not None else (100.0 if feature["used"] else 0.0)
        bar = {
            "now": shown,
            "max": max(100.0, shown),  # aria-valuenow stays within [min, max] beyond the limit
            "width": min(shown, 100.0),
        }
    return {
        **feature,
        "unlimited": included is None,
        "bar": bar,
        "level": feature["status"],
        "currency": currency,
        "mode": terms.mode,
        "overage_cap": terms.overage_cap,
        "ceiling": terms.ceiling,
        "contract": entitlement is not None and entitlement.source == "override",
        "projected_overage_units": projected_units,
        "projected_overage_cost": projected_units * feature["overage_unit_price"],
    }


def account_usage(*, company: Company, now: datetime | None = None) -> dict[str, Any]:
    """The usage page: a meter per feature, the period, the projection, overage in money,
    and which features are at warning level or over their limit."""
    now = now or timezone.now()
    summary = usage_summary(company=company, at=now)
    currency = summary["totals"]["currency"]
    start, end = summary["period"]["start"], summary["period"]["end"]
    assert company.tier_id is not None
    entitled = entitlements_effective(company_id=company.pk, tier_id=company.tier_id, at=now)
    meters = [
        _feature_meter(f, currency=currency, entitlement=entitled.get(f["feature"])) for f in summary["features"]
    ]
    return {
        "summary": summary,
        "currency": currency,
        "meters": meters,
        "period": {
            "start": start,
            "last_day": end - timedelta(days=1),
            "end": end,
            "days_left": max(0, math.ceil((end - now).total_seconds() / 86400)),
        },
        "warning_percent": settings.USAGE_WARNING_PERCENT,
        "warnings": [m for m in meters if m["level"] == Level.WARNING],
        "exceeded": [m for m in meters if m["level"] == Level.EXCEEDED],
        "totals": summary["totals"],
        "upgrade": summary["upgrade"],
        "credits": _credits_shown(summary),
    }


def _credits_shown(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The summary's credit grants, each with its feature's name and unit for the page."""
    names = {f["feature"]: f for f in summary["features"]}
    return [
        {
            **grant,
            "feature_name": names[grant["feature"]]["name"] if grant["feature"] in names else grant["feature"],
            "unit": names[grant["feature"]]["unit"] if grant["feature"] in names else "unit",
        }
        for grant in summary["credits"]["grants"]
    ]


def account_plans(*, company: Company, now: datetime | None = None) -> dict[str, Any]:
    """The plan table: every public tier (and the company's own) side by side with its
    limits, price and what this company's projected usage would cost on it."""
    summary = usage_summary(company=company, at=now)
    features = [{"code": f["feature"], "name": f["name"], "unit": f["unit"]} for f in summary["features"]]
    tiers = []
    for tier in summary["upgrade"]["tiers"]:
        limits = {limit["feature"]: limit for limit in tier["limits"]}
        tiers.append(
            {
                **tier,
                "rows": [
                    {**limits[f["code"]], "missing": f["code"] in tier["not_offered"]}
                    for f in features
                    if f["code"] in limits
                ],
            }
        )
    return {"summary": summary, "features": features, "tiers": tiers, "upgrade": summary["upgrade"]}


def _tier_timeline(company: Company, since: datetime) -> list[tuple[datetime, str, str]]:
    """(when, from code, to code) of every tier change since ``since``, oldest first, from
    the audit trail (every tier change, by admin or by Stripe, is audited there)."""
    changes = AuditLog.objects.filter(
        company_id=company.pk, action="billing.company.tier_change", created_at__gte=since
    ).order_by("seq")
    return [
        (c.created_at, str(c.details.get("from", "")), str(c.details.get("to", "")))
        for c in changes
        if c.details.get("to")
    ]


def _tiers_during(
    start: datetime, end: datetime, *, changes: list[tuple[datetime, str, str]], current: str
) -> list[str]:
    """Tier codes in effect during [start, end), in order."""
    after = [c for c in changes if c[0] >= start]
    at_start = after[0][1] if after else current
    during = [to for when, _, to in after if when < end]
    tiers = [at_start]
    for code in during:
        if code != tiers[-1]:
            tiers.append(code)
    return tiers


def account_history(*, company: Company, now: datetime | None = None, periods: int = HISTORY_PERIODS) -> dict:
    """The last ``periods`` periods, newest first: usage per feature, overage billed (sent
    to Stripe) and the tier(s) in effect."""
    now = now or timezone.now()
    bounds: list[tuple[datetime, datetime]] = []
    at = now
    for _ in range(periods):
        start, end = period_bounds(company.billing_anchor_day, at)
        bounds.append((start, end))
        at = start - timedelta(seconds=1)
    oldest = bounds[-1][0]
    features = list(Feature.objects.order_by("order", "code"))
    used: dict[tuple[datetime, int], int] = {
        (start, feature_id): n
        for start, feature_id, n in UsageCounter.objects.filter(
            company=company, period_start__gte=oldest
        ).values_list("period_start", "feature_id", "used")
    }
    billed: dict[datetime | None, int] = {
        row["period_start"]: row["amount"] or 0
        for row in BillingEvent.objects.filter(
            company=company,
            kind=BillingEventKind.OVERAGE,
            status=BillingEventStatus.SENT,
            period_start__gte=oldest,
        )
        .values("period_start")
        .annotate(amount=Sum("amount"))
    }
    tier_names = dict(Tier.objects.values_list("code", "name"))
    changes = _tier_timeline(company, oldest)
    current = company.tier.code
    currency = company.tier.currency
    rows = []
    for start, end in bounds:
        codes = _tiers_during(start, end, changes=changes, current=current)
        rows.append(
            {
                "start": start,
                "last_day": end - timedelta(days=1),
                "end": end,
                "current": start <= now < end,
                "usage": [used.get((start, f.pk), 0) for f in features],
                "overage_billed": billed.get(start, 0),
                "tiers": [tier_names.get(code, code) for code in codes],
            }
        )
    return {"features": features, "periods": rows, "currency": currency}


def company_api_keys(company: Company) -> list[CompanyAPIKey]:
    """The company's keys, active first, newest first."""
    return list(CompanyAPIKey.objects.filter(company=company).order_by("revoked", "-created"))
