"""One rule for "at warning level" and "over a limit": the dashboard, the company filter,
the admin bars, the nightly monitor and the usage API all count the same companies.

The catalogue has several tiers and an unlimited feature (Enterprise directory invites),
plus a feature that only Starter has a limit for: a company is measured against its own
tier's limits only, never another tier's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine

from accounts.models import CompanyStatus
from billing.plans.models import Feature, TierLimit
from trans_bot.dashboard import dashboard_overview
from usage.models import UsageCounter
from usage.monitor import usage_monitor_run

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 16, 12, tzinfo=UTC)


def use(company, feature: str, used: int) -> None:
    UsageCounter.objects.create(
        company=company, feature=Feature.objects.get(code=feature), used=used, updated_at=NOW,
        period_start=datetime(2026, 11, 1, tzinfo=UTC), period_end=datetime(2026, 12, 1, tzinfo=UTC),
    )


@pytest.fixture
def tenants(make_company, catalogue):
    """Globex (Enterprise) at 31 % of quotes, 25 % of bulk jobs and far into its unlimited
    directory invites, and into a feature its tier sets no limit for: more than Starter
    or Pro include, but within its own plan. Acme (Starter) is over its quotes; Near (Pro)
    at 90 % of its quotes; Both (Starter) over bulk jobs and at 85 % of quotes; Gone
    (canceled) over its quotes."""
    webhooks = Feature.objects.create(code="webhooks", name="Webhooks", unit="call", order=40)
    TierLimit.objects.create(tier=catalogue["starter"], feature=webhooks, included=100, overage_unit_price=1)
    globex = make_company("enterprise", name="Globex Logistics")
    use(globex, "quotes", 31_000)
    use(globex, "bulk_jobs", 250)
    use(globex, "directory_invites", 5_000)
    use(globex, "webhooks", 9_999)
    acme = make_company("starter", name="Acme Freight")
    use(acme, "quotes", 1_300)
    near = make_company("pro", name="Near Ltd")
    use(near, "quotes", 9_000)
    both = make_company("starter", name="Both Co")
    use(both, "bulk_jobs", 11)
    use(both, "quotes", 850)
    gone = make_company("starter", name="Gone Inc", status=CompanyStatus.CANCELED)
    use(gone, "quotes", 5_000)
    return {"globex": globex, "acme": acme, "near": near, "both": both, "gone": gone}


def test_the_dashboard_counts_only_companies_over_their_own_tiers_limits(tenants, ops_user):
    overview = dashboard_overview(user=ops_user, now=NOW)
    assert overview.companies_exceeded_now == 2  # Acme, Both
    assert overview.companies_warning_now == 2  # Near, Both


def test_the_company_filter_lists_the_companies_the_dashboard_counts(ops_client, tenants):
    with time_machine.travel(NOW, tick=False):
        exceeded = ops_client.get("/admin/accounts/company/?usage=exceeded").content.decode()
        warning = ops_client.get("/admin/accounts/company/?usage=warning").content.decode()
    listed = {name for name in ("Globex Logistics", "Acme Freight", "Near Ltd", "Both Co", "Gone Inc")}
    assert {n for n in listed if n in exceeded} == {"Acme Freight", "Both Co"}
    assert {n for n in listed if n in warning} == {"Near Ltd", "Both Co"}


def test_the_monitor_finds_the_same_companies(tenants):
    with time_machine.travel(NOW, tick=False):
        run = usage_monitor_run(dry_run=True)
    worst = {(w["company"], w["feature"], w["level"]) for w in run.report["worst_offenders"]}
    assert worst == {
        ("Acme Freight", "quotes", "exceeded"),
        ("Both Co", "bulk_jobs", "exceeded"),
        ("Both Co", "quotes", "warning"),
        ("Near Ltd", "quotes", "warning"),
    }
    assert (run.breaches, run.warnings) == (2, 2)


def test_the_usage_api_gives_each_feature_the_same_level(tenants, key_client):
    def statuses(company):
        with time_machine.travel(NOW, tick=False):
            body = key_client(company).get("/api/v1/usage/summary/").json()
        return {f["feature"]: f["status"] for f in body["features"]}

    assert statuses(tenants["globex"]) == {
        "quotes": "ok", "bulk_jobs": "ok", "directory_invites": "ok", "webhooks": "ok",
    }
    assert statuses(tenants["both"]) == {
        "quotes": "warning", "bulk_jobs": "exceeded", "directory_invites": "ok", "webhooks": "ok",
    }


def test_the_admin_bars_colour_only_the_companys_own_levels(ops_client, tenants):
    with time_machine.travel(NOW, tick=False):
        page = ops_client.get(f"/admin/accounts/company/{tenants['globex'].pk}/change/").content.decode()
    assert "31,000 / 100,000 (31 %)" in page
    assert "#c62828" not in page and "#ed8c00" not in page


def test_the_summary_and_the_sql_rule_agree_at_every_edge(make_company):
    """The summary reads each feature's level from the counters it already has
    (``usage.selectors.level_of``); the dashboard, the monitor and the filters read
    ``usage_levels`` in SQL. Around the warning share and the limit, on the tier's terms and
    on contract overrides (larger, zero, unlimited, expired), and for a canceled company,
    both say the same."""
    from datetime import timedelta

    from billing.plans.models import EntitlementOverride
    from usage.selectors import usage_levels, usage_summary

    bulk = Feature.objects.get(code="bulk_jobs")  # Starter: 10 included
    terms = {
        "tier": None,
        "override 20": {"included": 20},
        "override 0": {"included": 0},
        "override unlimited": {"included": None},
        "expired override 1": {"included": 1, "ends_at": NOW - timedelta(days=1)},
        "canceled": None,
    }
    cases = {}
    for name, override in terms.items():
        for used in (0, 1, 7, 8, 9, 10, 11, 16, 20, 21, 50):
            status = CompanyStatus.CANCELED if name == "canceled" else CompanyStatus.ACTIVE
            company = make_company("starter", status=status)
            if used:
                use(company, "bulk_jobs", used)
            if override is not None:
                EntitlementOverride.objects.create(
                    company=company, feature=bulk, starts_at=NOW - timedelta(days=40), **override
                )
            cases[company.pk] = (name, used, company)

    with time_machine.travel(NOW, tick=False):
        sql = {
            company_id: level
            for company_id, feature_id, level in usage_levels(now=NOW).values_list("company_id", "feature_id", "level")
            if feature_id == bulk.pk
        }
        summary = {
            pk: next(f["status"] for f in usage_summary(company=company, at=NOW)["features"]
                     if f["feature"] == "bulk_jobs")
            for pk, (_, _, company) in cases.items()
        }
    disagree = [(cases[pk][:2], sql.get(pk, "ok"), summary[pk]) for pk in cases if sql.get(pk, "ok") != summary[pk]]
    assert disagree == []
    assert {summary[pk] for pk in cases} == {"ok", "warning", "exceeded"}  # every level was reached
