"""The seed's business targets against a fixture with known trials, upgrades, invoices,
quotes and bookings: on /admin/targets/ and on the dashboard's targets card."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from accounts.models import Company
from billing.plans.catalogue import install_default_catalogue
from billing.plans.models import Feature, Tier, TierLimit
from billing.plans.periods import period_bounds
from billing.stripe.models import BillingEvent, BillingEventKind, BillingEventStatus, CompanyStripe
from growth.models import Booking
from trans_bot.targets import business_targets
from usage.models import UsageCounter

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
_seq = itertools.count(1)


@pytest.fixture
def tiers(db):
    install_default_catalogue(Tier=Tier, Feature=Feature, TierLimit=TierLimit)
    return {t.code: t for t in Tier.objects.all()}


def company(tiers, *, anchor: int = 1) -> Company:
    n = next(_seq)
    return Company.objects.create(
        name=f"Target Co {n}", slug=f"target-co-{n}", tier=tiers["starter"], billing_anchor_day=anchor
    )


def event(company, kind, *, at, status=BillingEventStatus.RECORDED, **fields):
    return BillingEvent.objects.create(company=company, kind=kind, status=status, created_at=at, **fields)


def trial(tiers, *, ended_days_ago: float, paid_days_ago: float | None = None, amount: int = 4900) -> Company:
    """A company whose Stripe trial ended (negative: ends in the future), and an invoice it paid."""
    c = company(tiers)
    CompanyStripe.objects.create(company=c, trial_end=NOW - timedelta(days=ended_days_ago))
    if paid_days_ago is not None:
        event(c, BillingEventKind.INVOICE_PAID, at=NOW - timedelta(days=paid_days_ago), amount=amount)
    return c


def quotes(company, used: int, *, at=NOW) -> None:
    start, end = period_bounds(company.billing_anchor_day, at)
    UsageCounter.objects.create(
        company=company, feature=Feature.objects.get(code="quotes"), period_start=start, period_end=end, used=used,
        updated_at=at,
    )


def booked(company, quantity: int, *, at) -> None:
    Booking.objects.create(
        company=company, idempotency_key=f"b-{next(_seq)}", quantity=quantity, occurred_at=at, received_at=at
    )


@pytest.fixture
def known_month(tiers):
    # Trials that ended in the last 30 days: 4, one of them paying (25 %); in the last 90: 5, two paying (40 %).
    trial(tiers, ended_days_ago=2, paid_days_ago=1)  # paid 49.00 a day after its trial ended
    trial(tiers, ended_days_ago=5)  # nothing paid
    trial(tiers, ended_days_ago=10, paid_days_ago=9, amount=0)  # a zero invoice is not paying
    trial(tiers, ended_days_ago=29, paid_days_ago=40)  # paid before its trial ended: not since
    trial(tiers, ended_days_ago=60, paid_days_ago=59)  # paying, in the 90 days only
    trial(tiers, ended_days_ago=100, paid_days_ago=99)  # outside both windows
    trial(tiers, ended_days_ago=-3)  # still trialing
    CompanyStripe.objects.create(company=company(tiers))  # never had a trial

    # Overage sent this month 3.00 + 7.00; last month's and an unsent one do not count.
    # Invoices paid this month: 60.00 + 91.00 + the trial's 49.00 (+ a zero one) = 200.00: 5 %.
    acme = company(tiers)
    sent = BillingEventStatus.SENT
    event(acme, BillingEventKind.OVERAGE, at=NOW, status=sent, sent_at=NOW - timedelta(days=1), amount=300)
    event(acme, BillingEventKind.OVERAGE, at=NOW, status=sent, sent_at=NOW - timedelta(days=10), amount=700)
    event(acme, BillingEventKind.OVERAGE, at=NOW, status=sent, sent_at=datetime(2026, 10, 30, tzinfo=UTC), amount=1000)
    event(acme, BillingEventKind.OVERAGE, at=NOW, status=BillingEventStatus.PENDING, amount=700)
    event(acme, BillingEventKind.INVOICE_PAID, at=NOW - timedelta(days=5), amount=6000)
    event(acme, BillingEventKind.INVOICE_PAID, at=NOW - timedelta(days=15), amount=9100)
    event(acme, BillingEventKind.INVOICE_PAID, at=datetime(2026, 10, 15, tzinfo=UTC), amount=9000)

    # Upgrades this month: two companies (one of them recorded twice); a downgrade and last month's do not count.
    starter, pro = tiers["starter"], tiers["pro"]
    up = company(tiers)
    event(up, BillingEventKind.UPGRADE, at=NOW - timedelta(days=1), status=sent, from_tier=starter, to_tier=pro)
    event(up, BillingEventKind.TIER_CHANGE, at=NOW - timedelta(days=1), from_tier=starter, to_tier=pro)
    event(company(tiers), BillingEventKind.TIER_CHANGE, at=NOW - timedelta(days=4), from_tier=starter, to_tier=pro)
    event(company(tiers), BillingEventKind.TIER_CHANGE, at=NOW - timedelta(days=4), from_tier=pro, to_tier=starter)
    october = datetime(2026, 10, 20, tzinfo=UTC)
    event(company(tiers), BillingEventKind.TIER_CHANGE, at=october, from_tier=starter, to_tier=pro)

    # Quote → book in each feed company's current period: (92 + 20) bookings of (300 + 100) quotes = 28 %.
    monthly = company(tiers)  # period Nov 1 – Dec 1
    quotes(monthly, 300)
    quotes(monthly, 999, at=datetime(2026, 10, 10, tzinfo=UTC))  # last period's quotes
    for n, day in ((60, 2), (30, 15), (2, 20)):
        booked(monthly, n, at=datetime(2026, 11, day, 9, tzinfo=UTC))
    booked(monthly, 100, at=datetime(2026, 10, 25, tzinfo=UTC))  # last period's booking
    mid = company(tiers, anchor=15)  # period Nov 15 – Dec 15
    quotes(mid, 100)
    booked(mid, 20, at=datetime(2026, 11, 16, tzinfo=UTC))
    booked(mid, 40, at=datetime(2026, 11, 10, tzinfo=UTC))  # before its period
    quotes(company(tiers), 1000)  # its product sends no bookings: not on the feed
    lapsed = company(tiers)
    quotes(lapsed, 500)
    booked(lapsed, 9, at=NOW - timedelta(days=40))  # last booking 40 days ago: off the feed


def test_the_figures_match_the_fixture(known_month):
    figures = {f.name: f for f in business_targets(now=NOW)}

    thirty, ninety = figures["Trial → paid (30 days)"], figures["Trial → paid (90 days)"]
    assert (thirty.value, thirty.met, thirty.colour) == (0.25, True, "green")
    assert thirty.detail.startswith("1 of 4 companies whose trial ended in the last 30 days")
    assert (ninety.value, ninety.shown) == (0.4, "40.0 %")
    overage = figures["Overage share of revenue (this month)"]
    assert (overage.value, overage.met) == (0.05, True)
    assert "reported 10.00 of invoices paid 200.00" in overage.detail
    assert figures["Upgrades this month"].value == 2
    book = figures["Quote → book"]
    assert (book.value, book.shown, book.met) == (0.28, "28.0 %", True)
    assert book.detail == "112 bookings of 400 quotes this billing period, 2 companies on the booking feed"


def test_below_target_is_red_and_without_data_grey(tiers):
    for days in (1, 2, 3, 4, 5):
        trial(tiers, ended_days_ago=days)
    trial(tiers, ended_days_ago=6, paid_days_ago=5)
    figures = {f.name: f for f in business_targets(now=NOW)}
    thirty = figures["Trial → paid (30 days)"]
    assert (thirty.shown, thirty.colour, thirty.css) == ("16.7 %", "red", "tb-bad")
    book = figures["Quote → book"]
    assert (book.value, book.colour, book.shown) == (None, "grey", "needs the booking feed")
    assert "POST /api/v1/bookings/" in book.detail


def _card(html: str) -> dict[str, tuple[str, str, str]]:
    """The dashboard's targets card: figure → (class of the value, value, target)."""
    card = re.search(r'<section class="tb-card" id="dash-targets">(.*?)</section>', html, re.S)
    assert card, "no targets card on the dashboard"
    rows = re.findall(
        r'<td title="[^"]*">([^<]+)</td>\s*<td><strong class="([^"]+)">([^<]+)</strong></td>\s*'
        r'<td class="tb-target">([^<]+)</td>',
        card.group(1),
    )
    return {name: (css, value, target) for name, css, value, target in rows}


def test_the_dashboard_card_shows_them_against_the_targets_with_colour(ops_client, known_month):
    with time_machine.travel(NOW, tick=False):
        html = ops_client.get("/admin/").content.decode()
    assert _card(html) == {
        "Trial → paid (30 days)": ("tb-good", "25.0 %", "≥ 25 %"),
        "Trial → paid (90 days)": ("tb-good", "40.0 %", "≥ 25 %"),
        "Overage share of revenue (this month)": ("tb-good", "5.0 %", "≥ 5 %"),
        "Upgrades this month": ("tb-muted", "2", "—"),
        "Quote → book": ("tb-good", "28.0 %", "≥ 28 %"),
    }
    assert 'href="/admin/targets/"' in html


def test_the_dashboard_card_says_what_is_missing_and_what_is_missed(ops_client, tiers):
    trial(tiers, ended_days_ago=3)
    with time_machine.travel(NOW, tick=False):
        card = _card(ops_client.get("/admin/").content.decode())
    assert card["Trial → paid (30 days)"] == ("tb-bad", "0.0 %", "≥ 25 %")
    assert card["Overage share of revenue (this month)"] == ("tb-muted", "no invoice paid yet", "≥ 5 %")
    assert card["Quote → book"] == ("tb-muted", "needs the booking feed", "≥ 28 %")


def test_the_page_and_card_are_for_whoever_may_view_billing_events(ops_client, client, staff_user, known_month):
    with time_machine.travel(NOW, tick=False):
        page = ops_client.get("/admin/targets/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "25.0 %" in body and "40.0 %" in body and "5.0 %" in body and "28.0 %" in body
    client.force_login(staff_user)
    assert client.get("/admin/targets/").status_code == 403
    assert 'id="dash-targets"' not in client.get("/admin/").content.decode()
