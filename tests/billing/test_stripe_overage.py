"""Overage is reported to Stripe Billing Meters exactly once, however the job is run."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from billing.stripe import overage
from billing.stripe.models import BillingEvent, BillingEventStatus
from billing.stripe.overage import overage_report_run
from billing.stripe.reconcile import billing_reconcile
from ops.models import Notification, OpsTask
from tests.billing.stripe_fixtures import run_in_threads, with_customer
from tests.fakes.stripe_server import FakeStripeServer


def _meter_totals(fake: FakeStripeServer) -> Counter:
    totals: Counter = Counter()
    for event in fake.meter_events:
        totals[(event["payload"]["stripe_customer_id"], event["event_name"])] += int(
            event["payload"]["value"]
        )
    return totals


@pytest.mark.django_db
def test_it_reports_only_new_overage_units(fake_stripe, stripe_company, set_usage):
    acme = stripe_company("starter")  # quotes: 1,000 included, 5 cents beyond
    set_usage(acme, "quotes", 1_500)

    first = overage_report_run()
    set_usage(acme, "quotes", 1_700)
    second = overage_report_run()
    third = overage_report_run()

    assert (first.sent, second.sent, third.planned) == (1, 1, 0)
    events = list(BillingEvent.objects.filter(company=acme).order_by("sequence"))
    assert [(e.sequence, e.units, e.amount, e.status) for e in events] == [
        (1, 500, 2_500, BillingEventStatus.SENT),
        (2, 200, 1_000, BillingEventStatus.SENT),
    ]
    customer = acme.stripe.customer_id
    assert [(e["identifier"], e["payload"]) for e in fake_stripe.meter_events] == [
        (events[0].identifier, {"stripe_customer_id": customer, "value": "500"}),
        (events[1].identifier, {"stripe_customer_id": customer, "value": "200"}),
    ]
    # The customer was created on demand, once.
    assert list(fake_stripe.customers) == [customer]


@pytest.mark.django_db
def test_a_company_within_its_limits_is_not_reported(fake_stripe, stripe_company, set_usage):
    acme = stripe_company("starter")
    set_usage(acme, "quotes", 1_000)
    set_usage(acme, "directory_invites", 500)  # over its limit, but not mapped to a meter

    assert overage_report_run().planned == 0
    assert fake_stripe.meter_events == []
    assert not BillingEvent.objects.exists()


@pytest.mark.django_db
def test_nothing_is_reported_while_live_billing_is_off(fake_stripe, stripe_company, set_usage, settings):
    settings.STRIPE_LIVE_BILLING = False
    set_usage(stripe_company("starter"), "quotes", 5_000)

    assert overage_report_run().disabled
    assert fake_stripe.requests == []
    assert not BillingEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_five_concurrent_runs_and_a_crash_bill_each_unit_once(
    fake_stripe, stripe_company, set_usage, monkeypatch
):
    companies = [stripe_company("starter") for _ in range(4)]
    for n, company in enumerate(companies):
        set_usage(company, "quotes", 1_100 + 100 * n)
        set_usage(company, "bulk_jobs", 12 + n)
        with_customer(fake_stripe, company)

    results = run_in_threads(overage_report_run, [()] * 5)
    assert not [r for r in results if isinstance(r, BaseException)], results

    # More usage, then a worker dies after Stripe answered and before we recorded it.
    set_usage(companies[0], "quotes", 2_000)

    def crash(**kwargs):
        raise RuntimeError("worker killed after Stripe's answer")

    monkeypatch.setattr(overage, "_billing_event_sent", crash)
    with pytest.raises(RuntimeError):
        overage_report_run()
    monkeypatch.undo()
    crashed = BillingEvent.objects.get(company=companies[0], feature__code="quotes", sequence=2)
    assert crashed.status == BillingEventStatus.SENDING
    assert crashed.identifier in {e["identifier"] for e in fake_stripe.meter_events}

    overage_report_run()  # too early: another worker may still be sending it
    assert BillingEvent.objects.get(pk=crashed.pk).status == BillingEventStatus.SENDING
    with time_machine.travel(timezone.now() + timedelta(minutes=10)):
        overage_report_run()
    assert BillingEvent.objects.get(pk=crashed.pk).status == BillingEventStatus.SENT

    # Exactly one meter event per company, feature, period and sequence, at Stripe and here.
    ours = list(BillingEvent.objects.all())
    identifiers = [e["identifier"] for e in fake_stripe.meter_events]
    assert len(identifiers) == len(set(identifiers)) == len(ours) == 9
    assert {e.identifier for e in ours} == set(identifiers)
    assert all(e.status == BillingEventStatus.SENT for e in ours)
    expected = Counter()
    for n, company in enumerate(companies):
        customer = company.stripe.customer_id
        expected[(customer, "tb_quotes")] = 1_000 if n == 0 else 100 + 100 * n
        expected[(customer, "tb_bulk_jobs")] = 2 + n
    assert _meter_totals(fake_stripe) == expected

    rows = billing_reconcile(at=timezone.now())
    assert len(rows) == 8 and all(r.matches for r in rows)
    assert not OpsTask.objects.filter(kind="billing.reconcile_mismatch").exists()


@pytest.mark.django_db
def test_a_lost_answer_is_resent_with_the_same_identifier(fake_stripe, stripe_company, set_usage):
    acme = stripe_company("starter")
    set_usage(acme, "quotes", 1_250)
    with_customer(fake_stripe, acme)
    fake_stripe.fail_next(1, 500, after_commit=True)  # Stripe records it, we see a 500

    assert overage_report_run().retrying == 1
    event = BillingEvent.objects.get()
    assert event.status == BillingEventStatus.PENDING and event.next_attempt_at > timezone.now()
    assert len(fake_stripe.meter_events) == 1

    assert overage_report_run().sent == 0  # backoff: not due yet
    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        assert overage_report_run().sent == 1

    event.refresh_from_db()
    assert event.status == BillingEventStatus.SENT and event.attempts == 2
    assert len(fake_stripe.meter_events) == 1
    assert fake_stripe.meter_events[0]["identifier"] == event.identifier


@pytest.mark.django_db
def test_stripe_already_having_the_identifier_counts_as_delivered(fake_stripe, stripe_company, set_usage):
    acme = stripe_company("starter")
    set_usage(acme, "quotes", 1_010)
    customer = with_customer(fake_stripe, acme)
    # Sent before by a run whose idempotency key Stripe has since forgotten.
    fake_stripe.client(max_network_retries=0).v1.billing.meter_events.create(
        params={
            "event_name": "tb_quotes",
            "payload": {"stripe_customer_id": customer, "value": "10"},
            "identifier": f"tb-{acme.pk}-quotes-{timezone.now():%Y%m}01-1",
        }
    )

    assert overage_report_run().sent == 1
    event = BillingEvent.objects.get()
    assert event.status == BillingEventStatus.SENT and event.details["duplicate_answer"] is True
    assert len(fake_stripe.meter_events) == 1


@pytest.mark.django_db
def test_a_permanent_refusal_opens_one_ops_task_and_alerts(fake_stripe, stripe_company, set_usage, settings):
    acme = stripe_company("starter")
    set_usage(acme, "quotes", 1_300)
    with_customer(fake_stripe, acme)
    settings.STRIPE_SECRET_KEY = "sk_test_revoked"

    assert overage_report_run().failed == 1
    overage_report_run()

    event = BillingEvent.objects.get()
    assert event.status == BillingEventStatus.FAILED and "401" in event.error
    task = OpsTask.objects.get(kind="billing.overage_failed")
    assert task.company == acme and event.identifier in task.details
    alert = Notification.objects.get(kind="billing.overage_failed")
    assert alert.severity == "critical" and "300 units" in alert.title
    assert fake_stripe.meter_events == []


@pytest.mark.django_db
def test_reconcile_opens_a_task_for_a_difference(fake_stripe, stripe_company, set_usage, capsys):
    acme = stripe_company("starter")
    set_usage(acme, "quotes", 1_200)
    customer = with_customer(fake_stripe, acme)
    overage_report_run()
    fake_stripe.client(max_network_retries=0).v1.billing.meter_events.create(
        params={"event_name": "tb_quotes", "payload": {"stripe_customer_id": customer, "value": "7"}}
    )

    call_command("billing_reconcile", "--period", "current")

    out = capsys.readouterr().out
    assert "DIFF" in out and "200" in out and "207" in out
    task = OpsTask.objects.get(kind="billing.reconcile_mismatch")
    assert task.company == acme and "207" in task.details
    call_command("billing_reconcile", "--period", "current")
    assert OpsTask.objects.filter(kind="billing.reconcile_mismatch").count() == 1
