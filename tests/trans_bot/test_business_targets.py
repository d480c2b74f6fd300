"""The seed's business targets against a fixture with known trials, upgrades and invoices."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from accounts.models import Company
from billing.plans.catalogue import install_default_catalogue
from billing.plans.models import Feature, Tier, TierLimit
from billing.stripe.models import BillingEvent, BillingEventKind, BillingEventStatus
from trans_bot.targets import business_targets

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
_seq = itertools.count(1)


@pytest.fixture
def tiers(db):
    install_default_catalogue(Tier=Tier, Feature=Feature, TierLimit=TierLimit)
    return {t.code: t for t in Tier.objects.all()}


def company(tiers) -> Company:
    n = next(_seq)
    return Company.objects.create(name=f"Target Co {n}", slug=f"target-co-{n}", tier=tiers["starter"])


def event(company, kind, *, at, status=BillingEventStatus.RECORDED, **fields):
    return BillingEvent.objects.create(company=company, kind=kind, status=status, created_at=at, **fields)


def trial_ended(company, *, days_ago: float, to: str):
    ended = NOW - timedelta(days=days_ago)
    event(company, BillingEventKind.SUBSCRIPTION, at=ended, details={"from": "trialing", "to": to})


@pytest.fixture
def known_month(tiers):
    # Trials: in the last 30 days 1 of 4 paid; 60 days ago one more paid; 100 days ago one (outside both).
    trial_ended(company(tiers), days_ago=2, to="active")
    for days in (5, 10, 29):
        trial_ended(company(tiers), days_ago=days, to="canceled")
    trial_ended(company(tiers), days_ago=60, to="active")
    trial_ended(company(tiers), days_ago=100, to="active")
    # A company that went past_due → active is not a trial.
    back = {"from": "past_due", "to": "active"}
    event(company(tiers), BillingEventKind.SUBSCRIPTION, at=NOW - timedelta(days=3), details=back)

    # Overage sent this month 3.00 + 2.00; last month's and an unsent one do not count. Invoices paid: 100.00.
    acme = company(tiers)
    sent = BillingEventStatus.SENT
    event(acme, BillingEventKind.OVERAGE, at=NOW, status=sent, sent_at=NOW - timedelta(days=1), amount=300)
    event(acme, BillingEventKind.OVERAGE, at=NOW, status=sent, sent_at=NOW - timedelta(days=10), amount=200)
    event(acme, BillingEventKind.OVERAGE, at=NOW, status=sent, sent_at=datetime(2026, 10, 30, tzinfo=UTC), amount=1000)
    event(acme, BillingEventKind.OVERAGE, at=NOW, status=BillingEventStatus.PENDING, amount=700)
    event(acme, BillingEventKind.INVOICE_PAID, at=NOW - timedelta(days=5), amount=6000)
    event(acme, BillingEventKind.INVOICE_PAID, at=NOW - timedelta(days=15), amount=4000)
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


def test_the_figures_match_the_fixture(known_month):
    figures = {f.name: f for f in business_targets(now=NOW)}

    thirty, ninety = figures["Trial → paid (30 days)"], figures["Trial → paid (90 days)"]
    assert (thirty.value, thirty.met, thirty.colour) == (0.25, True, "green")
    assert thirty.detail.startswith("1 of 4 trials")
    assert (ninety.value, ninety.shown) == (0.4, "40.0 %")
    overage = figures["Overage share of revenue (this month)"]
    assert (overage.value, overage.met) == (0.05, True)
    assert figures["Upgrades this month"].value == 2
    book = figures["Quote → book"]
    assert (book.value, book.colour) == (None, "grey") and "booking feed" in book.detail


def test_below_target_is_red(tiers):
    for days in (1, 2, 3, 4, 5):
        trial_ended(company(tiers), days_ago=days, to="canceled")
    trial_ended(company(tiers), days_ago=6, to="active")
    figure = business_targets(now=NOW)[0]
    assert (figure.shown, figure.colour) == ("16.7 %", "red")


def test_the_page_shows_them_to_whoever_may_view_billing_events(ops_client, client, staff_user, known_month):
    with time_machine.travel(NOW, tick=False):
        page = ops_client.get("/admin/targets/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "25.0 %" in body and "40.0 %" in body and "5.0 %" in body and "needs a booking feed" in body
    client.force_login(staff_user)
    assert client.get("/admin/targets/").status_code == 403
