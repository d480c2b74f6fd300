"""Contract overrides: the effective entitlement, taking effect and expiring, and every
reader (usage summary, account page figures, Stripe overage) pricing on it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError

from billing.plans.models import EntitlementOverride, Feature, LimitMode, TierLimit
from billing.plans.selectors import entitlement_effective
from billing.stripe.overage import overage_candidates
from customers.selectors import account_usage
from usage.selectors import usage_summary

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def _override(company, feature="bulk_jobs", **terms):
    defaults = dict(included=50, mode=LimitMode.HARD, overage_unit_price=0, starts_at=T0, ends_at=None)
    return EntitlementOverride.objects.create(
        company=company, feature=Feature.objects.get(code=feature), **{**defaults, **terms}
    )


def _effective(company, at, feature="bulk_jobs"):
    return entitlement_effective(company_id=company.pk, tier_id=company.tier_id, feature=feature, at=at)


@pytest.mark.django_db
def test_an_override_takes_effect_at_its_start_and_expires_at_its_end(stripe_company):
    acme = stripe_company("starter")  # bulk jobs: 10 included, soft, $2 beyond
    _override(acme, starts_at=T0, ends_at=T0 + timedelta(days=30), reason="Contract 2026-17")

    before = _effective(acme, T0 - timedelta(seconds=1))
    during = _effective(acme, T0)
    after = _effective(acme, T0 + timedelta(days=30))

    assert (before.source, before.terms.included, before.terms.mode) == ("tier", 10, "soft")
    assert (during.source, during.terms.included, during.terms.mode) == ("override", 50, "hard")
    assert (after.source, after.terms.included) == ("tier", 10)


@pytest.mark.django_db
def test_the_latest_override_in_force_wins(stripe_company):
    acme = stripe_company("starter")
    _override(acme, included=50, starts_at=T0 - timedelta(days=60))
    _override(acme, included=80, starts_at=T0 - timedelta(days=1))
    assert _effective(acme, T0).terms.included == 80


@pytest.mark.django_db
def test_another_companys_override_does_not_apply(stripe_company):
    acme, globex = stripe_company("starter"), stripe_company("starter")
    _override(globex, included=500)
    assert _effective(acme, T0).terms.included == 10


@pytest.mark.django_db
def test_the_usage_summary_and_account_page_use_the_override_while_in_force(stripe_company, set_usage):
    acme = stripe_company("starter")
    _override(acme, included=40, mode=LimitMode.CAPPED, overage_unit_price=100, overage_cap=500,
              starts_at=T0, ends_at=T0 + timedelta(days=5))
    with time_machine.travel(T0 + timedelta(days=1), tick=False):
        set_usage(acme, "bulk_jobs", 60)  # 20 beyond 40, but the cap pays for 5
        summary = usage_summary(company=acme)
        meters = {m["feature"]: m for m in account_usage(company=acme)["meters"]}
    bulk = next(f for f in summary["features"] if f["feature"] == "bulk_jobs")
    assert (bulk["limit"], bulk["overage_units"], bulk["overage_cost"]) == (40, 5, 500)
    assert summary["totals"]["overage_cost"] == 500
    page = meters["bulk_jobs"]
    assert (page["limit"], page["mode"], page["ceiling"], page["contract"]) == (40, "capped", 45, True)

    with time_machine.travel(T0 + timedelta(days=6), tick=False):
        set_usage(acme, "bulk_jobs", 60)
        bulk = next(f for f in usage_summary(company=acme)["features"] if f["feature"] == "bulk_jobs")
        page = next(m for m in account_usage(company=acme)["meters"] if m["feature"] == "bulk_jobs")
    assert (bulk["limit"], bulk["overage_cost"]) == (10, 10_000)
    assert (page["mode"], page["contract"]) == ("soft", False)


@pytest.mark.django_db
def test_stripe_overage_is_priced_on_the_override(stripe_company, set_usage):
    acme = stripe_company("starter")  # quotes: 1,000 included, 5 cents beyond
    globex = stripe_company("starter")
    _override(acme, feature="quotes", included=2_000, mode=LimitMode.SOFT, overage_unit_price=2,
              starts_at=T0 - timedelta(days=40))
    with time_machine.travel(T0, tick=False):
        set_usage(acme, "quotes", 2_300)
        set_usage(globex, "quotes", 1_100)
        rows = {r["company_id"]: r for r in overage_candidates(now=T0)}
    assert (rows[acme.pk]["included"], rows[acme.pk]["unit_price"], rows[acme.pk]["billable_units"]) == (2_000, 2, 300)
    assert (rows[globex.pk]["included"], rows[globex.pk]["billable_units"]) == (1_000, 100)


@pytest.mark.django_db
def test_a_hard_limit_bills_no_overage_and_a_capped_one_bills_up_to_its_cap(stripe_company, set_usage):
    acme, globex = stripe_company("starter"), stripe_company("pro")
    TierLimit.objects.filter(tier__code="starter", feature__code="quotes").update(mode=LimitMode.HARD)
    TierLimit.objects.filter(tier__code="pro", feature__code="quotes").update(
        mode=LimitMode.CAPPED, overage_cap=3_000  # 3 cents each: 1,000 units beyond 10,000
    )
    with time_machine.travel(T0, tick=False):
        set_usage(acme, "quotes", 1_200)
        set_usage(globex, "quotes", 12_000)
        rows = {r["company_id"]: r for r in overage_candidates(now=T0)}
    assert acme.pk not in rows
    assert rows[globex.pk]["billable_units"] == 1_000


@pytest.mark.django_db
def test_a_capped_limit_without_a_cap_is_refused_by_validation(stripe_company):
    acme = stripe_company("starter")
    override = EntitlementOverride(
        company=acme, feature=Feature.objects.get(code="bulk_jobs"), included=None, mode=LimitMode.CAPPED, starts_at=T0
    )
    with pytest.raises(ValidationError) as caught:
        override.full_clean()
    assert set(caught.value.message_dict) == {"included", "overage_cap", "overage_unit_price"}


@pytest.mark.django_db
def test_warning_and_over_limit_levels_follow_the_override(stripe_company, set_usage):
    from accounts.models import Company
    from usage.selectors import companies_at_usage_level

    acme, globex = stripe_company("starter"), stripe_company("starter")  # quotes: 1,000 included
    _override(acme, feature="quotes", included=2_000, mode=LimitMode.SOFT, overage_unit_price=5,
              starts_at=T0 - timedelta(days=1), ends_at=T0 + timedelta(days=1))
    with time_machine.travel(T0, tick=False):
        set_usage(acme, "quotes", 1_300)
        set_usage(globex, "quotes", 1_300)
        status = {f["feature"]: f["status"] for f in usage_summary(company=acme)["features"]}
        exceeded = set(companies_at_usage_level(Company.objects.all(), level="exceeded", now=T0))
    assert status["quotes"] == "ok"  # 65 % of the contract's 2,000
    assert exceeded == {globex}
    with time_machine.travel(T0 + timedelta(days=2), tick=False):
        status = {f["feature"]: f["status"] for f in usage_summary(company=acme)["features"]}
    assert status["quotes"] == "exceeded"  # the override has ended: 130 % of Starter's 1,000


@pytest.mark.django_db
def test_an_override_entered_in_admin_is_audited_and_checked(stripe_company, admin_client):
    from audit.models import AuditLog

    acme = stripe_company("starter")
    feature = Feature.objects.get(code="bulk_jobs")
    form = {
        "company": acme.pk, "feature": feature.pk, "reason": "Contract 2026-17",
        "included": "", "mode": "capped", "overage_unit_price": "0", "overage_cap": "",
        "starts_at_0": "2026-03-01", "starts_at_1": "00:00:00", "ends_at_0": "", "ends_at_1": "",
    }
    refused = admin_client.post("/admin/billing/entitlementoverride/add/", form)
    assert refused.status_code == 200 and not EntitlementOverride.objects.exists()
    assert "Capped overage needs a cap" in refused.content.decode()

    form.update({"included": "40", "overage_unit_price": "100", "overage_cap": "500"})
    r = admin_client.post("/admin/billing/entitlementoverride/add/", form)
    assert r.status_code == 302, r.content.decode()[:2000]
    override = EntitlementOverride.objects.get()
    assert (override.company, override.included, override.mode, override.overage_cap) == (acme, 40, "capped", 500)
    record = AuditLog.objects.get(action="admin.billing.entitlementoverride.add")
    assert record.details["changes"]["included"]["after"] == 40
