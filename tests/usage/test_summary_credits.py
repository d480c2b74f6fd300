"""The usage summary shows credits left and the overage after credits, priced by the one
pricing rule: what credits already paid this period, and what the grants usable now would
pay of the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Company
from accounts.selectors import company_period
from audit.services import Actor
from billing.plans.catalogue import install_default_catalogue
from billing.plans.credits import credit_grant_create
from billing.plans.models import CreditConsumption, CreditGrant, CreditKind, Feature, Tier, TierLimit
from usage.models import UsageCounter
from usage.selectors import usage_summary

NOW = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)  # halfway through a period starting on the 1st
OPS = Actor.system("test-ops")


@pytest.fixture
def acme(db):
    install_default_catalogue(Tier=Tier, Feature=Feature, TierLimit=TierLimit)
    return Company.objects.create(name="Acme", slug="acme-credits", tier=Tier.objects.get(code="starter"))


def _use(company, feature, used):
    start, end = company_period(company, NOW)
    UsageCounter.objects.update_or_create(
        company=company,
        feature=Feature.objects.get(code=feature),
        period_start=start,
        defaults={"period_end": end, "used": used, "updated_at": start},
    )


def _grant(company, *, amount, feature=None, days=60):
    return credit_grant_create(
        company=company,
        kind=CreditKind.UNITS if feature else CreditKind.MONEY,
        feature=Feature.objects.get(code=feature) if feature else None,
        amount=amount,
        starts_at=NOW - timedelta(days=10),
        expires_at=NOW + timedelta(days=days),
        reason="goodwill",
        actor=OPS,
    )


def _feature(summary, code):
    return next(f for f in summary["features"] if f["feature"] == code)


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_the_summary_shows_overage_after_credits_and_what_is_left(acme):
    _use(acme, "quotes", 1_400)  # 400 over at 5 cents = 20.00; projected 2,800 used, 1,800 over = 90.00
    units = _grant(acme, amount=100, feature="quotes")
    money = _grant(acme, amount=1_000)  # 10.00

    summary = usage_summary(company=acme, at=NOW)

    quotes = _feature(summary, "quotes")
    assert (quotes["overage_units"], quotes["overage_cost"]) == (400, 2_000)
    # 100 by the unit credit, 200 by the money credit: 100 billed.
    assert (quotes["credited_units"], quotes["overage_cost_after_credits"]) == (300, 500)
    totals = summary["totals"]
    assert (totals["overage_cost"], totals["credited"], totals["overage_after_credits"]) == (2_000, 1_500, 500)
    assert totals["total_after_credits"] == 4_900 + 500
    assert (totals["projected_overage_cost"], totals["projected_overage_after_credits"]) == (9_000, 7_500)
    credits = summary["credits"]
    assert (credits["money_left"], credits["units_left"]) == (0, {"quotes": 0})
    assert [(g["id"], g["granted"], g["left"]) for g in credits["grants"]] == [(units.pk, 100, 0), (money.pk, 1_000, 0)]
    # Plans are still compared before credits.
    starter = next(t for t in summary["upgrade"]["tiers"] if t["current"])
    assert starter["cost_at_current_usage"] == 4_900 + 2_000


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_credits_already_spent_this_period_still_count_and_expired_grants_do_not(acme):
    _use(acme, "quotes", 1_100)  # 100 over
    spent = _grant(acme, amount=60, feature="quotes")
    start, end = company_period(acme, NOW)
    CreditConsumption.objects.create(
        grant=spent, company=acme, feature=spent.feature, period_start=start, period_end=end,
        sequence=1, units=60, amount=60,
    )
    CreditGrant.objects.filter(pk=spent.pk).update(consumed=60)
    expired = _grant(acme, amount=5_000)
    CreditGrant.objects.filter(pk=expired.pk).update(expires_at=NOW - timedelta(seconds=1))
    left = _grant(acme, amount=30, feature="quotes")

    summary = usage_summary(company=acme, at=NOW)

    quotes = _feature(summary, "quotes")
    assert quotes["credited_units"] == 90  # 60 already paid + 30 from the grant still open
    assert quotes["overage_cost_after_credits"] == 10 * 5
    assert [g["id"] for g in summary["credits"]["grants"]] == [left.pk]


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_a_company_without_credits_costs_no_extra_query(acme):
    _use(acme, "quotes", 1_100)

    with CaptureQueriesContext(connection) as plain:
        usage_summary(company=acme, at=NOW)
    _grant(acme, amount=100)
    with CaptureQueriesContext(connection) as with_credits:
        summary = usage_summary(company=acme, at=NOW)

    assert len(with_credits.captured_queries) == len(plain.captured_queries) + 1
    # 1.00 pays 20 of the 100 quotes over (5 cents each).
    assert summary["credits"]["money_left"] == 0 and summary["totals"]["overage_after_credits"] == 400
