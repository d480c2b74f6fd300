"""Credits on the account usage page in headless Chromium, at phone and desktop widths."""

from __future__ import annotations

from datetime import timedelta

import pytest

from audit.services import Actor
from billing.plans.credits import credit_grant_create
from billing.plans.models import CreditKind, Feature
from tests.customers.conftest import NOW
from tests.customers.test_account_pages_browser import (  # noqa: F401  (fixtures)
    DESKTOP,
    PHONE,
    browser,
    clock,
    fits_the_width,
    shot,
    sign_in,
)


@pytest.fixture
def credited(acme):
    """Acme (60 directory invites over at 0.25 USD) holds 40 invites and 20.00 USD of credits."""
    for kind, feature, amount in [(CreditKind.UNITS, "directory_invites", 40), (CreditKind.MONEY, None, 2_000)]:
        credit_grant_create(
            company=acme,
            kind=kind,
            feature=Feature.objects.get(code=feature) if feature else None,
            amount=amount,
            starts_at=NOW - timedelta(days=1),
            expires_at=NOW + timedelta(days=27),
            reason="Ticket T-9",
            actor=Actor.system("test-ops"),
        )
    return acme


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["375px", "1400px"])
def test_a_member_sees_credits_left_and_the_overage_after_them(
    live_server, credited, clock, viewport, tmp_path, browser  # noqa: F811 (imported fixtures)
):
    page = browser.new_page(viewport=viewport)
    sign_in(page, live_server.url, "mike")

    invites = page.locator('#usage-meters article[data-feature="directory_invites"]').inner_text()
    assert "60 of them paid by credits (0.00 USD to pay)" in invites
    paid = page.locator("#credited")
    assert paid.is_visible() and "−15.00 USD" in paid.inner_text()
    assert "0.00 USD" in page.locator("#overage-after-credits").inner_text()
    credits = page.locator("#credits li")
    assert credits.count() == 2
    assert credits.nth(0).inner_text().startswith("0 invites left of 40")
    assert credits.nth(1).inner_text().startswith("15.00 USD left of 20.00 USD")
    assert all(credits.nth(i).is_visible() for i in range(2))
    assert fits_the_width(page)
    shot(page, tmp_path, f"account-credits-{viewport['width']}")
