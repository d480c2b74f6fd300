"""The executive dashboard, seen in a real (headless Chromium) browser: an ops person
logs in and sees the active region, the SLO, open tasks, the monitor and billing, in two
columns at 1,400 px; and moves traffic with the dashboard's "Fail over to…" control."""

import os
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import sync_playwright

from accounts.models import Company
from accounts.selectors import company_period
from billing.plans.catalogue import install_default_catalogue
from billing.plans.models import Feature, Tier, TierLimit
from billing.stripe.models import BillingEvent
from ops.services import ops_task_open
from regions.models import FailoverEvent, FailoverPolicy, Region
from usage.models import MonitorRun, UsageCounter

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = os.environ.get("SCREENSHOT_DIR")


@pytest.fixture
def busy_back_office(db):
    now = timezone.now()
    Region.objects.create(
        name="EU primary", slug="primary", base_url="http://127.0.0.1:9", order=0,
        is_active=True, status="unhealthy", consecutive_failures=2, last_latency_ms=41.0, last_checked_at=now,
    )
    Region.objects.create(
        name="US standby", slug="secondary", base_url="http://127.0.0.1:10", order=1,
        status="healthy", last_latency_ms=88.0, last_checked_at=now,
    )
    install_default_catalogue(Tier=Tier, Feature=Feature, TierLimit=TierLimit)
    acme = Company.objects.create(name="Acme Freight", slug="acme", tier=Tier.objects.get(code="starter"))
    start, end = company_period(acme, now)
    for code, used in [("quotes", 1300), ("bulk_jobs", 9)]:  # over 1,000; 90 % of 10
        UsageCounter.objects.create(
            company=acme, feature=Feature.objects.get(code=code), period_start=start, period_end=end,
            used=used, updated_at=now,
        )
    ops_task_open(kind="usage.breach", title="Acme Freight is over its quotes limit", severity="high", company=acme)
    ops_task_open(kind="region.failover", title="Failover to US standby: check EU", severity="critical")
    MonitorRun.objects.create(
        started_at=now - timedelta(hours=3), finished_at=now - timedelta(hours=3), status="succeeded",
        trigger="beat", companies_scanned=120, warnings=7, breaches=2, new_tasks=3,
    )
    BillingEvent.objects.create(
        kind="overage", status="sent", company=acme, units=250, amount=1250, currency="USD",
        identifier="tb-test-1", sent_at=now, created_at=now,
    )


def _signed_in_page(pw, live_server):
    browser = pw.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
    )
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "olivia")
    page.fill("#id_password", "pw-olivia-123")
    page.click("input[type=submit]")
    page.wait_for_selector("#executive-dashboard")
    return browser, page


@pytest.mark.django_db(transaction=True)
def test_ops_see_the_state_of_the_service_at_a_glance(live_server, ops_user, busy_back_office, tmp_path):
    with sync_playwright() as pw:
        browser, page = _signed_in_page(pw, live_server)
        assert page.inner_text("#site-name") == "Trans Bot back office"
        # Two columns at 1,400 px: regions and tasks side by side, usage and billing below them.
        regions_box = page.locator("#dash-regions").bounding_box()
        tasks_box = page.locator("#dash-tasks").bounding_box()
        usage_box = page.locator("#dash-usage").bounding_box()
        assert regions_box["y"] == tasks_box["y"] and tasks_box["x"] > regions_box["x"] + regions_box["width"] - 1
        assert usage_box["x"] == regions_box["x"] and usage_box["y"] > regions_box["y"]
        assert regions_box["width"] > 400

        regions = page.inner_text("#dash-regions")
        assert "EU primary" in regions and "ACTIVE" in regions
        assert "Unhealthy" in regions and "US standby" in regions and "Healthy" in regions
        assert "SLO of 99.95 %" in regions
        tasks = page.inner_text("#dash-tasks")
        assert "Open ops tasks: 2" in tasks
        assert tasks.index("Failover to US standby") < tasks.index("Acme Freight is over")  # critical first
        usage = page.inner_text("#dash-usage")
        # Acme is over its quotes and at 90 % of its bulk jobs: it counts in both, as in the company filter.
        assert "1 company over a limit" in usage and "1 at warning level" in usage
        assert "120 companies, 7 warnings, 2 breaches, 3 new tasks" in usage
        assert "12.50 USD" in page.inner_text("#dash-billing")

        page.screenshot(path=os.path.join(SCREENSHOTS or str(tmp_path), "dashboard.png"), full_page=True)
        browser.close()


@pytest.mark.django_db(transaction=True)
def test_ops_fail_over_from_the_dashboard_and_see_the_new_active_region(live_server, ops_user, tmp_path):
    FailoverPolicy.objects.update_or_create(pk=1, defaults={"multi_region_enabled": True})
    Region.objects.create(
        name="EU primary", slug="primary", base_url="http://127.0.0.1:9", order=0, is_active=True, status="healthy",
    )
    Region.objects.create(
        name="US standby", slug="secondary", base_url="http://127.0.0.1:10", order=1, status="healthy",
    )
    with sync_playwright() as pw:
        browser, page = _signed_in_page(pw, live_server)
        control = page.locator("#failover-secondary")
        assert "Fail over to US standby" in control.inner_text()
        assert page.locator("#failover-primary").count() == 0  # not to the active region

        control.locator("button").click()  # no reason: the browser asks for one, nothing is sent
        assert page.url.endswith("/admin/")

        control.locator("input[name=reason]").fill("EU database maintenance")
        control.locator("button").click()
        page.wait_for_selector("#confirm-failover")
        assert "You are about to move it to US standby" in page.inner_text("#content-main")
        page.screenshot(path=os.path.join(SCREENSHOTS or str(tmp_path), "failover-confirm.png"))

        page.click("#confirm-failover")
        page.wait_for_selector("#executive-dashboard")
        assert "Traffic moved" in page.inner_text("ul.messagelist")
        row = page.locator("#dash-regions tr", has_text="US standby").inner_text()
        assert "ACTIVE" in row
        assert "ACTIVE" not in page.locator("#dash-regions tr", has_text="EU primary").inner_text()
        assert page.locator("#failover-primary").count() == 1  # the way back is offered now
        page.screenshot(path=os.path.join(SCREENSHOTS or str(tmp_path), "dashboard-after-failover.png"))
        browser.close()
    event = FailoverEvent.objects.get()  # one move, made by the confirmation
    assert event.actor == "olivia" and event.reason == "EU database maintenance"
