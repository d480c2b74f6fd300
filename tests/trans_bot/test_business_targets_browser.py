"""The business targets card, seen in headless Chromium: a met target reads green, a
missed one red, and the card's link opens the full page."""

import os
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import sync_playwright

from accounts.models import Company
from accounts.selectors import company_period
from billing.plans.catalogue import install_default_catalogue
from billing.plans.models import Feature, Tier, TierLimit
from billing.stripe.models import BillingEvent, BillingEventKind, CompanyStripe
from growth.models import Booking
from usage.models import UsageCounter

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
GREEN, RED = "rgb(46, 125, 50)", "rgb(198, 40, 40)"  # .tb-good, .tb-bad


@pytest.fixture
def targets_data(db):
    now = timezone.now()
    install_default_catalogue(Tier=Tier, Feature=Feature, TierLimit=TierLimit)
    starter = Tier.objects.get(code="starter")
    # One trial ended two days ago and paid the next day: trial → paid 100 %.
    paid = Company.objects.create(name="Paid Trial Co", slug="paid-trial", tier=starter)
    CompanyStripe.objects.create(company=paid, trial_end=now - timedelta(days=2))
    BillingEvent.objects.create(
        kind=BillingEventKind.INVOICE_PAID, status="recorded", company=paid, amount=4900,
        created_at=now - timedelta(days=1),
    )
    # 10 bookings of 100 quotes: quote → book 10 %, under 28 %.
    booker = Company.objects.create(name="Booker Co", slug="booker", tier=starter)
    start, end = company_period(booker, now)
    UsageCounter.objects.create(
        company=booker, feature=Feature.objects.get(code="quotes"), period_start=start, period_end=end, used=100,
        updated_at=now,
    )
    Booking.objects.create(company=booker, idempotency_key="b1", quantity=10, occurred_at=now, received_at=now)


@pytest.mark.django_db(transaction=True)
def test_the_card_colours_each_figure_against_its_target_and_links_to_the_page(live_server, ops_user, targets_data):
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{live_server.url}/admin/login/?next=/admin/")
            page.fill("#id_username", "olivia")
            page.fill("#id_password", "pw-olivia-123")
            page.click("input[type=submit]")
            card = page.locator("#dash-targets")
            card.wait_for()

            def figure(name: str):
                return card.locator("tr", has_text=name).locator("strong")

            trial, book = figure("Trial → paid (30 days)"), figure("Quote → book")
            assert (trial.inner_text(), book.inner_text()) == ("100.0 %", "10.0 %")
            colour = "el => getComputedStyle(el).color"
            assert (trial.evaluate(colour), book.evaluate(colour)) == (GREEN, RED)

            card.get_by_role("link", name="Business targets").click()
            page.wait_for_selector("#business-targets")
            assert page.url.endswith("/admin/targets/")
            assert "1 of 1 companies whose trial ended in the last 30 days" in page.inner_text("#business-targets")
        finally:
            browser.close()
