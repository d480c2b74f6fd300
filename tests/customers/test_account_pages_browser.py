"""The account pages in a real (headless Chromium) browser: a member signs in and reads
the meters, banners and plan table; an owner upgrades through Checkout on the stand-in
Stripe; nobody sees another company. Run at phone (375 px) and desktop (1,400 px) widths.

Checkout itself is Stripe's page: the browser's requests to checkout.stripe.com are
answered here by a stand-in page whose Pay button completes the session on the stand-in
Stripe, which then delivers its signed webhooks to the live server, as Stripe would."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import httpx
import pytest
import time_machine
from django.db import connections
from playwright.sync_api import Page, Route, sync_playwright

from billing.stripe.models import StripeWebhookEvent
from billing.stripe.webhook_processing import webhook_event_process
from tests.billing.stripe_fixtures import WEBHOOK_SECRET
from tests.customers.conftest import NOW, PASSWORD
from tests.fakes.stripe_server import make_event, signed_webhook

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = os.environ.get("SCREENSHOT_DIR")
PHONE, DESKTOP = {"width": 375, "height": 812}, {"width": 1400, "height": 1000}


@pytest.fixture
def browser(monkeypatch) -> Iterator:
    """Request it last: fixtures set up after it would run their queries in Playwright's
    context and leave a connection open. Playwright's sync API keeps an event loop on this
    thread; the test's own ORM calls (the stand-in Checkout's webhook processing) are plain
    blocking calls."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        yield browser
        connections.close_all()  # the test's own queries, made in Playwright's context
        browser.close()


@pytest.fixture
def clock():
    """Day 3 of January 2027 in every thread (the live server's too), ticking."""
    with time_machine.travel(NOW, tick=True):
        yield


def sign_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/")
    assert page.url == f"{base}/login/"
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/account/")


def tab(page: Page, name: str):
    return page.get_by_role("navigation", name="Account").get_by_role("link", name=name, exact=True)


def fits_the_width(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def shot(page: Page, tmp_path, name: str) -> None:
    page.screenshot(path=os.path.join(SCREENSHOTS or str(tmp_path), f"{name}.png"), full_page=True)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["375px", "1400px"])
def test_a_member_reads_usage_banners_and_the_plan_table(live_server, acme, clock, viewport, tmp_path, browser):
    page = browser.new_page(viewport=viewport)
    sign_in(page, live_server.url, "mike")

    bars = page.get_by_role("progressbar")
    assert [bars.nth(i).get_attribute("aria-valuenow") for i in range(bars.count())] == ["42", "87", "124"]
    meters = page.locator("#usage-meters article")
    assert [meters.nth(i).get_attribute("class") for i in range(3)] == [
        "meter ok", "meter warning", "meter exceeded",
    ]
    # The colour comes from the level: amber at the warning share, red over the limit.
    fills = [
        page.locator(f"#usage-meters article.{level} .fill").evaluate("e => getComputedStyle(e).backgroundColor")
        for level in ("ok", "warning", "exceeded")
    ]
    assert len(set(fills)) == 3
    warning = page.locator("#banner-warning")
    assert warning.is_visible()
    assert "Bulk jobs is at 87 % (87 of 100 jobs)" in warning.inner_text()
    over = page.locator("#banner-exceeded").inner_text()
    assert "Directory invites: 310 of 250 invites (124 %)" in over
    assert "billed at 0.25 USD: 15.00 USD so far" in over
    assert fits_the_width(page)
    shot(page, tmp_path, f"account-usage-{viewport['width']}")

    tab(page, "Plans").click()
    page.wait_for_selector("#plans")
    recommended = page.locator("#plans article.recommended")
    assert recommended.count() == 1 and recommended.get_attribute("data-tier") == "enterprise"
    assert "Your plan" in page.locator('#plans article[data-tier="pro"]').inner_text()
    assert page.locator("#recommendation").inner_text().startswith(
        "Recommended: Enterprise. Enterprise is the cheapest plan for your projected usage this period: 999.00 USD"
    )
    assert page.get_by_role("button", name=re.compile("Upgrade to")).count() == 0  # a plain member
    assert "Olga Owner" in page.locator("#owners").inner_text()
    assert fits_the_width(page)
    shot(page, tmp_path, f"account-plans-{viewport['width']}")


@pytest.mark.django_db(transaction=True)
def test_an_owner_upgrades_through_checkout_and_sees_the_new_tier(
    live_server, acme, fake_stripe, settings, clock, tmp_path, browser
):
    settings.BILLING_RETURN_URL = f"{live_server.url}/account/plans/"

    def deliver(event: dict) -> None:
        body, header = signed_webhook(event, WEBHOOK_SECRET)
        r = httpx.post(
            f"{live_server.url}/api/v1/billing/stripe/webhook/",
            content=body,
            headers={"Content-Type": "application/json", "Stripe-Signature": header},
        )
        assert r.status_code == 200, r.text
        # Processing is a Celery task queued on commit; no worker runs here, so process it now.
        stored = StripeWebhookEvent.objects.get(stripe_id=event["id"])
        assert webhook_event_process(webhook_event_id=stored.pk) == "processed"

    def checkout(route: Route) -> None:
        session_id = route.request.url.rstrip("/").rsplit("/", 1)[-1]
        session = fake_stripe.checkout_sessions[session_id]
        if route.request.method == "GET":
            route.fulfill(
                content_type="text/html",
                body=f"<h1>Stand-in Checkout</h1><p>Subscribe to {session['metadata']['tier']}</p>"
                "<form method=post><button type=submit>Pay</button></form>",
            )
            return
        completed = fake_stripe.complete_checkout_session(session_id)
        try:
            deliver(make_event("checkout.session.completed", completed))
            deliver(make_event("customer.subscription.created", fake_stripe.subscriptions[completed["subscription"]]))
        finally:
            # Playwright calls this handler in a greenlet of its own, with its own database
            # connection (Django keeps them per context): close it, or it outlives the test.
            connections.close_all()
        route.fulfill(status=303, headers={"Location": session["success_url"]})

    page = browser.new_page(viewport=DESKTOP)
    page.route(re.compile(r"^https://checkout\.stripe\.com/"), checkout)
    sign_in(page, live_server.url, "olga")
    tab(page, "Plans").click()
    page.get_by_role("button", name="Upgrade to Enterprise").click()

    page.wait_for_url(re.compile(r"^https://checkout\.stripe\.com/c/pay/"))
    assert page.get_by_role("heading", name="Stand-in Checkout").is_visible()
    page.get_by_role("button", name="Pay").click()

    page.wait_for_url(re.compile(r"/account/plans/\?checkout=success$"))
    assert "Payment done" in page.locator(".messages").inner_text()
    assert "Your plan" in page.locator('#plans article[data-tier="enterprise"]').inner_text()
    assert "Your plan" not in page.locator('#plans article[data-tier="pro"]').inner_text()
    tab(page, "Usage").click()
    assert "plan Enterprise" in page.locator("#period").inner_text()
    assert page.get_by_role("progressbar").count() == 2  # invites are unlimited on Enterprise
    shot(page, tmp_path, "account-upgraded")
    acme.refresh_from_db()
    assert acme.tier.code == "enterprise"


@pytest.mark.django_db(transaction=True)
def test_a_member_of_one_company_gets_404_for_anything_of_another(live_server, acme, globex, clock, browser):
    page = browser.new_page(viewport=PHONE)
    sign_in(page, live_server.url, "mike")
    for path in ["/account/", "/account/plans/", "/account/history/", "/account/history.csv",
                 "/account/api-keys/", "/pricing/"]:
        for ref in ("globex", str(globex.pk)):
            response = page.goto(f"{live_server.url}{path}?company={ref}")
            assert response is not None and response.status == 404, (path, ref)
            assert "Globex" not in page.content()
    assert page.goto(f"{live_server.url}/account/?company=acme").status == 200
