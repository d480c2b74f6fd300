"""GET /api/v1/usage/summary/ and /api/v1/plans/: the numbers a customer sees."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.plans.models import Feature, TierLimit
from usage.models import UsageCounter

pytestmark = pytest.mark.django_db
URL = "/api/v1/usage/summary/"
MID_NOVEMBER = datetime(2026, 11, 16, tzinfo=UTC)  # day 15 of a 30-day period
NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)


def use(company, feature: str, used: int, start=NOV, end=DEC):
    UsageCounter.objects.create(
        company=company,
        feature=Feature.objects.get(code=feature),
        period_start=start,
        period_end=end,
        used=used,
        updated_at=start,
    )


def summary(client, at=MID_NOVEMBER, **params):
    with time_machine.travel(at, tick=False):
        r = client.get(URL, params)
    assert r.status_code == 200, r.content
    return r.json()


def feature(body, code):
    return next(f for f in body["features"] if f["feature"] == code)


@pytest.mark.parametrize(
    "used,percent,status,remaining,overage_units",
    [
        (500, 50.0, "ok", 500, 0),
        (799, 79.9, "ok", 201, 0),
        (800, 80.0, "warning", 200, 0),
        (1000, 100.0, "warning", 0, 0),
        (1300, 130.0, "exceeded", 0, 300),
    ],
)
def test_a_feature_against_its_limit(acme, key_client, used, percent, status, remaining, overage_units):
    use(acme, "quotes", used)
    body = summary(key_client(acme))
    quotes = feature(body, "quotes")
    assert quotes == {
        "feature": "quotes",
        "name": "Quotes",
        "unit": "quote",
        "used": used,
        "limit": 1000,
        "remaining": remaining,
        "percent": percent,
        "status": status,
        "overage_units": overage_units,
        "overage_unit_price": 5,
        "overage_cost": overage_units * 5,
        "credited_units": 0,  # no credit grants
        "overage_cost_after_credits": overage_units * 5,
        "projected_used": used * 2,
    }
    assert body["totals"]["overage_cost"] == overage_units * 5
    assert body["totals"]["total_so_far"] == 4900 + overage_units * 5
    # half the period has gone: the projection doubles usage
    assert body["totals"]["projected_overage_cost"] == max(0, used * 2 - 1000) * 5


def test_the_period_and_tier(acme, key_client):
    body = summary(key_client(acme))
    assert body["period"] == {"start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"}
    assert body["tier"] == {"code": "starter", "name": "Starter", "monthly_price": 4900, "currency": "USD"}
    assert [f["feature"] for f in body["features"]] == ["quotes", "bulk_jobs", "directory_invites"]


def test_last_periods_usage_does_not_count(acme, key_client):
    use(acme, "quotes", 5000, start=datetime(2026, 10, 1, tzinfo=UTC), end=NOV)
    assert feature(summary(key_client(acme)), "quotes")["used"] == 0


def test_an_unlimited_feature(make_company, key_client):
    company = make_company("enterprise")
    use(company, "directory_invites", 1_000_000)
    invites = feature(summary(key_client(company)), "directory_invites")
    assert invites["limit"] is None
    assert invites["remaining"] is None
    assert invites["percent"] is None
    assert invites["status"] == "ok"
    assert invites["overage_units"] == 0
    assert invites["overage_cost"] == 0


def costs(body):
    return {t["code"]: t["cost_at_current_usage"] for t in body["upgrade"]["tiers"]}


def recommended(body):
    return [t["code"] for t in body["upgrade"]["tiers"] if t["recommended"]]


def test_light_usage_recommends_the_current_plan(acme, key_client):
    use(acme, "quotes", 900)
    body = summary(key_client(acme))
    assert costs(body) == {"starter": 4900, "pro": 19900, "enterprise": 99900}
    assert recommended(body) == ["starter"]
    assert body["upgrade"] == {**body["upgrade"], "recommended": "starter", "suggested": False}


def test_overage_beyond_the_next_plans_price_recommends_it(acme, key_client):
    use(acme, "quotes", 5000)  # 4,000 over at 5 cents = $200 on Starter
    use(acme, "bulk_jobs", 12)  # 2 over at $2
    body = summary(key_client(acme))
    assert costs(body) == {
        "starter": 4900 + 4000 * 5 + 2 * 200,
        "pro": 19900,
        "enterprise": 99900,
    }
    assert recommended(body) == ["pro"]
    assert body["upgrade"]["recommended"] == "pro"
    assert body["upgrade"]["suggested"] is True
    assert [t["code"] for t in body["upgrade"]["tiers"] if t["current"]] == ["starter"]


def test_heavy_usage_recommends_the_cheapest_plan_for_it(acme, key_client):
    use(acme, "quotes", 100_000)
    body = summary(key_client(acme))
    assert costs(body) == {
        "starter": 4900 + 99_000 * 5,
        "pro": 19900 + 90_000 * 3,
        "enterprise": 99900,
    }
    assert recommended(body) == ["enterprise"]


def test_the_recommendation_prices_the_usage_projected_to_the_periods_end(acme, key_client):
    # Half the period gone: 2,000 quotes and 9 jobs so far cost less on Starter than Pro's
    # price, but the period is heading for 4,000 quotes and 18 jobs.
    use(acme, "quotes", 2_000)
    use(acme, "bulk_jobs", 9)
    body = summary(key_client(acme))
    assert costs(body)["starter"] == 4900 + 1000 * 5 < 19900
    projected = {t["code"]: t["projected_cost"] for t in body["upgrade"]["tiers"]}
    assert projected == {"starter": 4900 + 3000 * 5 + 8 * 200, "pro": 19900, "enterprise": 99900}
    assert recommended(body) == ["pro"] and body["upgrade"]["suggested"] is True
    assert body["upgrade"]["reason"] == (
        "Pro is the cheapest plan for your projected usage this period: 199.00 USD, "
        "16.00 USD less than your plan, Starter (215.00 USD)."
    )


def test_a_company_far_over_pro_early_in_the_period_is_told_enterprise(make_company, key_client):
    over_the_road = make_company("pro")
    use(over_the_road, "quotes", 12_400)  # 124 % of Pro on day 3 of 30: heading for 124,000
    body = summary(key_client(over_the_road), at=datetime(2026, 11, 4, tzinfo=UTC))
    projected = {t["code"]: t["projected_cost"] for t in body["upgrade"]["tiers"]}
    assert projected["pro"] == 19900 + 114_000 * 3
    assert projected["enterprise"] == 99900 + 24_000 * 1
    assert body["upgrade"]["recommended"] == "enterprise"
    assert body["totals"]["projected_total"] == projected["pro"]


def test_the_own_tier_without_a_limit_for_a_used_feature_is_not_recommended(make_company, key_client):
    from billing.plans.models import Tier

    loads = Feature.objects.create(code="loads", name="Loads", order=9)
    TierLimit.objects.create(tier=Tier.objects.get(code="enterprise"), feature=loads, included=None)
    pro = make_company("pro")
    use(pro, "loads", 5)  # free on Pro (no limit row), but Pro does not offer loads
    body = summary(key_client(pro))
    assert costs(body)["pro"] == 19900
    tiers = {t["code"]: t for t in body["upgrade"]["tiers"]}
    assert (tiers["pro"]["offered"], tiers["pro"]["not_offered"]) == (False, ["loads"])
    assert recommended(body) == ["enterprise"]
    assert body["upgrade"]["reason"] == (
        "Enterprise is the only plan that includes every feature you use (999.00 USD). "
        "Your plan, Pro, has no limit set for loads."
    )


def test_the_comparison_lists_each_plans_limits(acme, key_client):
    enterprise = next(t for t in summary(key_client(acme))["upgrade"]["tiers"] if t["code"] == "enterprise")
    assert enterprise["limits"] == [
        {"feature": "quotes", "included": 100_000, "overage_unit_price": 1},
        {"feature": "bulk_jobs", "included": 1_000, "overage_unit_price": 50},
        {"feature": "directory_invites", "included": None, "overage_unit_price": 0},
    ]


def test_a_members_session_sees_its_company(acme, member_client):
    use(acme, "quotes", 10)
    body = summary(member_client(acme.owner))
    assert body["company"]["slug"] == acme.slug
    assert feature(body, "quotes")["used"] == 10


def test_the_query_count_does_not_grow_with_features_or_events(acme, key_client, catalogue):
    client = key_client(acme)
    use(acme, "quotes", 10)
    client.get(URL)  # warm-up: the key's last use is recorded once a minute

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(URL).status_code == 200
        return len(ctx.captured_queries)

    before = count()
    for n in range(5):
        extra = Feature.objects.create(code=f"extra_{n}", name=f"Extra {n}")
        TierLimit.objects.create(tier=catalogue["starter"], feature=extra, included=10, overage_unit_price=1)
        use(acme, extra.code, 1000 * n)
    assert count() == before
    assert before <= 3


def test_plans_lists_the_tiers_in_order(acme, member_client):
    r = member_client(acme.owner).get("/api/v1/plans/")
    assert r.status_code == 200
    tiers = r.json()["tiers"]
    assert [(t["code"], t["monthly_price"], t["currency"]) for t in tiers] == [
        ("starter", 4900, "USD"),
        ("pro", 19900, "USD"),
        ("enterprise", 99900, "USD"),
    ]
    assert tiers[0]["limits"][0] == {
        "feature": "quotes", "name": "Quotes", "unit": "quote", "included": 1000, "overage_unit_price": 5,
        "mode": "soft", "overage_cap": None,
    }


def test_plans_show_each_limits_mode_and_cap(acme, member_client):
    TierLimit.objects.filter(tier__code="pro", feature__code="quotes").update(mode="hard")
    TierLimit.objects.filter(tier__code="pro", feature__code="bulk_jobs").update(mode="capped", overage_cap=2_500)

    tiers = {t["code"]: t for t in member_client(acme.owner).get("/api/v1/plans/").json()["tiers"]}

    pro = {limit["feature"]: (limit["mode"], limit["overage_cap"]) for limit in tiers["pro"]["limits"]}
    assert pro["quotes"] == ("hard", None)
    assert pro["bulk_jobs"] == ("capped", 2_500)
    assert {limit["mode"] for limit in tiers["starter"]["limits"]} == {"soft"}


def test_plans_need_a_login_or_key(client):
    assert client.get("/api/v1/plans/").status_code in (401, 403)


def test_a_tier_missing_a_limit_is_never_recommended_and_the_check_names_it(make_company, key_client):
    from django.core.checks import run_checks

    from billing.plans.models import Tier

    loads = Feature.objects.create(code="loads", name="Loads", order=9)
    for code, included, price in [("starter", 10, 500), ("enterprise", None, 0)]:
        TierLimit.objects.create(
            tier=Tier.objects.get(code=code), feature=loads, included=included, overage_unit_price=price
        )
    acme = make_company("starter")
    use(acme, "loads", 200)  # 190 over on Starter; Pro has no limit row for loads

    body = summary(key_client(acme))
    assert body["upgrade"]["recommended"] != "pro"
    warnings = [w for w in run_checks(tags=["billing"]) if w.id == "billing.W010"]
    assert [w.obj for w in warnings] == ["tier:pro"]
    assert "no limit for feature 'loads'" in warnings[0].msg
