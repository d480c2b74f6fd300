"""In a real (headless Chromium) browser: a company the hash puts in variant B signs in and
sees B's banner on its usage page; the render counted one exposure."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.selectors import company_period
from audit.services import Actor
from billing.plans.models import Feature
from growth.models import Exposure, Placement
from growth.services import experiment_start
from tests.customers.test_account_pages_browser import browser  # noqa: F401  (fixture)
from tests.growth.conftest import company_in
from usage.models import UsageCounter


@pytest.mark.django_db(transaction=True)
def test_a_company_in_variant_b_sees_bs_banner_on_the_usage_page(
    live_server, make_experiment, make_company, browser  # noqa: F811
):
    experiment = experiment_start(
        experiment=make_experiment(Placement.USAGE_BANNER, key="banner-copy", threshold=80), actor=Actor.system("t")
    )
    company = company_in("b", experiment, make_company)
    start, end = company_period(company)
    UsageCounter.objects.create(
        company=company, feature=Feature.objects.get(code="quotes"), period_start=start, period_end=end,
        used=900, updated_at=start,
    )  # 90 % of Starter's 1,000 quotes

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(company.owner.username)
    page.get_by_label("Password").fill("pw-owner-123")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/account/")

    banner = page.locator("#banner-upgrade-prompt")
    expect(banner).to_be_visible()
    expect(banner.get_by_role("heading")).to_have_text("Pro gives you 10x the quotes")
    expect(banner.get_by_role("link", name="Upgrade to Pro")).to_be_visible()
    expect(page.get_by_text("You are close to your limit")).to_have_count(0)
    assert Exposure.objects.filter(company=company, variant__key="b").count() == 1
