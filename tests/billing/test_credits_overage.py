"""Credits pay for overage before Stripe bills it: exactly, once, and only while they last.

Every test reads what the stand-in Stripe received (meter events) and what the ledger
recorded (grants' consumed, consumptions, the audit trail)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.selectors import company_period
from audit.models import AuditLog
from audit.services import Actor
from billing.plans.credits import credit_grant_create, credit_grant_expire
from billing.plans.models import CreditConsumption, CreditGrant, CreditKind, Feature
from billing.stripe.models import BillingEvent
from billing.stripe.overage import overage_report_run
from tests.billing.stripe_fixtures import run_in_threads, with_customer

OPS = Actor.system("test-ops")


def _sent(fake) -> Counter:
    """Units Stripe received per meter event name."""
    totals: Counter = Counter()
    for event in fake.meter_events:
        totals[event["event_name"]] += int(event["payload"]["value"])
    return totals


def _grant(company, *, units=None, money=None, feature="quotes", days=30, starts=None, reason="ticket T-1"):
    kind = CreditKind.UNITS if units is not None else CreditKind.MONEY
    return credit_grant_create(
        company=company,
        kind=kind,
        feature=Feature.objects.get(code=feature) if kind == CreditKind.UNITS else None,
        amount=units if units is not None else money,
        expires_at=timezone.now() + timedelta(days=days),
        starts_at=starts,
        reason=reason,
        actor=OPS,
    )


@pytest.mark.django_db
def test_credits_reduce_the_overage_reported_to_stripe_exactly(fake_stripe, stripe_company, set_usage):
    acme = stripe_company("starter")  # quotes: 1,000 included, 5 cents beyond
    set_usage(acme, "quotes", 1_500)  # 500 over
    units = _grant(acme, units=120)
    money = _grant(acme, money=1_002)  # pays 200 whole units at 5 cents; 2 cents stay

    result = overage_report_run()

    # 500 - 120 unit credits - 200 paid by money = 180 billed.
    assert result.sent == 1 and result.credited_units == 320
    assert _sent(fake_stripe) == {"tb_quotes": 180}
    event = BillingEvent.objects.get(company=acme)
    assert (event.units, event.amount) == (180, 900)
    units.refresh_from_db()
    money.refresh_from_db()
    assert (units.consumed, units.left) == (120, 0)
    assert (money.consumed, money.left) == (1_000, 2)
    steps = CreditConsumption.objects.filter(company=acme).order_by("grant_id")
    assert [(c.grant_id, c.units, c.amount, c.sequence) for c in steps] == [
        (units.pk, 120, 120, 1),
        (money.pk, 200, 1_000, 1),
    ]
    spent = AuditLog.objects.filter(action="billing.credit.consume", company_id=acme.pk)
    assert sorted((r.target_id, r.details["units"]) for r in spent) == sorted(
        [(str(units.pk), 120), (str(money.pk), 200)]
    )


@pytest.mark.django_db
def test_a_rerun_spends_nothing_twice_and_new_overage_takes_what_is_left(fake_stripe, stripe_company, set_usage):
    acme = stripe_company("starter")
    set_usage(acme, "quotes", 1_300)
    grant = _grant(acme, units=500)

    first = overage_report_run()
    again = overage_report_run()
    assert (first.planned, first.credited_units) == (0, 300)  # credits paid it all: nothing to Stripe
    assert (again.planned, again.credited_units) == (0, 0)
    assert fake_stripe.meter_events == []

    set_usage(acme, "quotes", 1_600)  # 300 more over: 200 credits left
    third = overage_report_run()
    overage_report_run()

    assert (third.planned, third.credited_units) == (1, 200)
    assert _sent(fake_stripe) == {"tb_quotes": 100}
    grant.refresh_from_db()
    assert grant.consumed == 500
    assert CreditConsumption.objects.filter(grant=grant).count() == 2
    # The report step numbers are shared: credits took step 1, step 2 was part credit, part report.
    event = BillingEvent.objects.get(company=acme)
    assert event.sequence == 2 and event.details["credited"] == 200 and event.details["credited_before"] == 300


@pytest.mark.django_db
def test_unit_credits_pay_only_their_feature_and_before_money(fake_stripe, stripe_company, set_usage):
    acme = stripe_company("starter")  # bulk jobs: 10 included, 2.00 beyond
    set_usage(acme, "quotes", 1_100)  # 100 over at 5 cents
    set_usage(acme, "bulk_jobs", 15)  # 5 over at 200 cents
    bulk = _grant(acme, units=3, feature="bulk_jobs", days=60)
    money = _grant(acme, money=500, days=90)

    overage_report_run()

    # Quotes: no unit credit; money pays all 100 (500 cents). Bulk jobs: 3 from its unit
    # credit, then no money left: 2 billed.
    assert _sent(fake_stripe) == {"tb_bulk_jobs": 2}
    bulk.refresh_from_db()
    money.refresh_from_db()
    assert (bulk.consumed, money.consumed) == (3, 500)


@pytest.mark.django_db
def test_the_earliest_expiry_pays_first(fake_stripe, stripe_company, set_usage):
    acme = stripe_company("starter")
    set_usage(acme, "quotes", 1_150)
    later = _grant(acme, units=100, days=60)
    sooner = _grant(acme, units=100, days=10)

    overage_report_run()

    later.refresh_from_db()
    sooner.refresh_from_db()
    assert (sooner.consumed, later.consumed) == (100, 50)
    assert fake_stripe.meter_events == []


@pytest.mark.django_db
def test_expired_and_future_credits_pay_nothing(fake_stripe, stripe_company, set_usage):
    acme = stripe_company("starter")  # periods start on the 1st
    with time_machine.travel(datetime(2026, 11, 5, 12, tzinfo=UTC), tick=False):
        set_usage(acme, "quotes", 1_200)
        expiring = _grant(acme, units=100, days=2)
        future = _grant(acme, units=100, starts=datetime(2026, 12, 1, tzinfo=UTC), days=80)

    with time_machine.travel(datetime(2026, 11, 20, 12, tzinfo=UTC), tick=False):
        overage_report_run()

    assert _sent(fake_stripe) == {"tb_quotes": 200}
    assert CreditGrant.objects.get(pk=expiring.pk).consumed == 0
    assert CreditGrant.objects.get(pk=future.pk).consumed == 0


@pytest.mark.django_db
def test_a_grant_expired_early_pays_nothing_more(fake_stripe, stripe_company, set_usage):
    acme = stripe_company("starter")
    set_usage(acme, "quotes", 1_100)
    grant = _grant(acme, units=1_000)
    overage_report_run()
    assert credit_grant_expire(grant=grant, actor=OPS)
    assert not credit_grant_expire(grant=grant, actor=OPS)  # already over: nothing to do

    set_usage(acme, "quotes", 1_400)
    overage_report_run()

    grant.refresh_from_db()
    assert grant.consumed == 100 and grant.expires_at <= timezone.now()
    assert _sent(fake_stripe) == {"tb_quotes": 300}
    record = AuditLog.objects.get(action="billing.credit.expire", target_id=str(grant.pk))
    assert record.actor_label == "test-ops" and record.details["left"] == 900


@pytest.mark.django_db
def test_money_credits_in_another_currency_pay_nothing(fake_stripe, stripe_company, set_usage):
    acme = stripe_company("starter")
    set_usage(acme, "quotes", 1_100)
    grant = _grant(acme, money=10_000)
    CreditGrant.objects.filter(pk=grant.pk).update(currency="EUR")  # granted before a currency change

    overage_report_run()

    assert _sent(fake_stripe) == {"tb_quotes": 100}
    assert CreditGrant.objects.get(pk=grant.pk).consumed == 0


@pytest.mark.django_db
def test_a_closed_period_is_paid_by_the_credits_valid_during_it(fake_stripe, stripe_company, set_usage):
    acme = stripe_company("starter")
    with_customer(fake_stripe, acme)
    start, end = company_period(acme)
    set_usage(acme, "quotes", 1_250)
    grant = _grant(acme, units=100)
    CreditGrant.objects.filter(pk=grant.pk).update(expires_at=end + timedelta(hours=1))

    with time_machine.travel(end + timedelta(hours=2)):  # the grant has expired, the period closed
        overage_report_run()

    # The closed period's overage is priced at its last moment, when the grant still held.
    assert CreditGrant.objects.get(pk=grant.pk).consumed == 100
    assert _sent(fake_stripe) == {"tb_quotes": 150}


@pytest.mark.django_db
def test_a_step_cannot_be_paid_twice(stripe_company):
    acme = stripe_company("starter")
    grant = _grant(acme, units=10)
    start, end = company_period(acme)
    row = dict(grant=grant, company=acme, feature=grant.feature, period_start=start, period_end=end, sequence=1)
    CreditConsumption.objects.create(units=1, amount=1, **row)
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditConsumption.objects.create(units=1, amount=1, **row)
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditGrant.objects.filter(pk=grant.pk).update(consumed=11)  # never beyond the grant


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_spend_each_credit_once(fake_stripe, stripe_company, set_usage):
    companies = [stripe_company("starter") for _ in range(3)]
    for company in companies:
        with_customer(fake_stripe, company)
        set_usage(company, "quotes", 1_400)  # 400 over at 5 cents
        set_usage(company, "bulk_jobs", 14)  # 4 over at 2.00
        _grant(company, units=150)
        _grant(company, money=1_000)  # shared by both features

    results = run_in_threads(overage_report_run, [()] * 5)
    assert not [r for r in results if isinstance(r, BaseException)], results

    for company in companies:
        grants = {g.kind: g for g in CreditGrant.objects.filter(company=company)}
        assert grants[CreditKind.UNITS].consumed == 150
        assert grants[CreditKind.MONEY].consumed == 1_000
        # Each overage unit is either paid by credits or reported, never both, never twice.
        paid = Counter()
        for c in CreditConsumption.objects.filter(company=company):
            paid[c.feature.code] += c.units
        billed = Counter()
        for e in BillingEvent.objects.filter(company=company):
            billed[e.feature.code] += e.units
        assert paid["quotes"] + billed["quotes"] == 400
        assert paid["bulk_jobs"] + billed["bulk_jobs"] == 4
    identifiers = [e["identifier"] for e in fake_stripe.meter_events]
    assert len(identifiers) == len(set(identifiers)) == BillingEvent.objects.count()
    # Money: 1,000 cents pay 200 quotes (quotes come first) or bulk jobs; either way all of it is spent.
    total_reported = sum(int(e["payload"]["value"]) for e in fake_stripe.meter_events)
    assert total_reported == sum(BillingEvent.objects.values_list("units", flat=True))


@pytest.mark.django_db
def test_the_report_command_says_what_credits_paid(fake_stripe, stripe_company, set_usage):
    acme = stripe_company("starter")
    set_usage(acme, "quotes", 1_300)
    _grant(acme, units=120)
    out = StringIO()

    call_command("report_overage", stdout=out)

    assert "planned 1, sent 1," in out.getvalue() and "paid by credits 120 unit(s)" in out.getvalue()
    assert _sent(fake_stripe) == {"tb_quotes": 180}
