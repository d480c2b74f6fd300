"""Webhook processing and overage reporting through a real Celery worker on Redis."""

from __future__ import annotations

import pytest
from celery.contrib.testing.worker import start_worker
from django_celery_beat.models import PeriodicTask

import billing.tasks
from billing.stripe.models import BillingEvent, BillingEventStatus, CompanyStripe, StripeWebhookEvent
from tests.billing.stripe_fixtures import WEBHOOK_SECRET, with_customer
from tests.fakes.stripe_server import make_event, signed_webhook
from tests.waiting import until
from trans_bot.celery import app


@pytest.mark.django_db(transaction=True)
def test_a_delivered_event_is_processed_by_the_worker_after_commit(client, fake_stripe, stripe_company):
    acme = stripe_company("starter")
    CompanyStripe.objects.create(company=acme, customer_id="cus_worker")
    event = make_event(
        "invoice.payment_failed",
        {"id": "in_w", "object": "invoice", "customer": "cus_worker", "amount_due": 4_900, "currency": "usd"},
    )
    body, header = signed_webhook(event, WEBHOOK_SECRET)
    app.control.purge()
    with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, loglevel="WARNING"):
        response = client.post(
            "/api/v1/billing/stripe/webhook/",
            data=body,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=header,
        )
        assert response.status_code == 200
        stored = StripeWebhookEvent.objects.get(stripe_id=event["id"])
        assert until(lambda: StripeWebhookEvent.objects.get(pk=stored.pk).status == "processed")

    acme.refresh_from_db()
    assert acme.status == "past_due"


@pytest.mark.django_db(transaction=True)
def test_the_overage_task_reports_through_the_worker(fake_stripe, stripe_company, set_usage):
    acme = stripe_company("starter")
    set_usage(acme, "quotes", 1_042)
    app.control.purge()
    with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, loglevel="WARNING"):
        billing.tasks.report_overage.delay(trigger="test")
        assert until(lambda: BillingEvent.objects.filter(status=BillingEventStatus.SENT).exists())

    assert [e["payload"]["value"] for e in fake_stripe.meter_events] == ["42"]


@pytest.mark.django_db
def test_overage_reporting_is_scheduled_after_the_monitor_and_at_period_close():
    schedules = {
        (t.crontab.hour, t.crontab.minute, t.kwargs)
        for t in PeriodicTask.objects.filter(task="billing.tasks.report_overage").select_related("crontab")
    }
    assert schedules == {("2", "30", '{"trigger": "nightly"}'), ("0", "15", '{"trigger": "period_close"}')}


@pytest.mark.django_db(transaction=True)
def test_an_event_stored_while_the_broker_was_down_is_processed_by_the_sweep(fake_stripe, stripe_company):
    from datetime import timedelta

    import time_machine
    from django.utils import timezone

    from billing.stripe.webhook_intake import webhook_event_store

    acme = stripe_company("starter")
    CompanyStripe.objects.create(company=acme, customer_id="cus_sweep")
    event = make_event(
        "invoice.payment_failed",
        {"id": "in_s", "object": "invoice", "customer": "cus_sweep", "amount_due": 4_900, "currency": "usd"},
    )
    pk, _ = webhook_event_store(event=event)  # stored, but no task was ever queued
    app.control.purge()
    with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, loglevel="WARNING"):
        assert billing.tasks.sweep_stripe_events() == 0, "too fresh: its own task may still be coming"
        with time_machine.travel(timezone.now() + timedelta(minutes=6)):
            assert billing.tasks.sweep_stripe_events() == 1
        assert until(lambda: StripeWebhookEvent.objects.get(pk=pk).status == "processed")

    acme.refresh_from_db()
    assert acme.status == "past_due"


@pytest.mark.django_db
def test_the_webhook_sweep_runs_every_five_minutes():
    task = PeriodicTask.objects.get(task="billing.tasks.sweep_stripe_events")
    assert (task.interval.every, task.interval.period, task.enabled) == (5, "minutes", True)


@pytest.mark.django_db(transaction=True)
def test_a_transient_failure_is_retried_by_a_queued_task_not_the_next_daily_run(
    fake_stripe, stripe_company, set_usage, settings
):
    settings.BILLING_RETRY_BASE_SECONDS = 0  # the backoff's countdown, made immediate for the test
    acme = stripe_company("starter")
    set_usage(acme, "quotes", 1_042)
    fake_stripe.fail_next(2, 503)  # the first attempts fail; the queued retries go through
    app.control.purge()
    with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, loglevel="WARNING"):
        billing.tasks.report_overage.delay(trigger="nightly")
        assert until(lambda: BillingEvent.objects.filter(status=BillingEventStatus.SENT).exists())

    event = BillingEvent.objects.get()
    assert event.attempts >= 2 and event.first_attempt_at is not None
    assert [e["payload"]["value"] for e in fake_stripe.meter_events] == ["42"]


@pytest.mark.django_db(transaction=True)
def test_the_minute_sweep_sends_a_report_stuck_in_sending(fake_stripe, stripe_company, set_usage, settings):
    from datetime import timedelta

    from django.utils import timezone

    from billing.stripe.overage import overage_candidates, overage_plan

    acme = stripe_company("starter")
    set_usage(acme, "quotes", 1_010)
    app.control.purge()
    (row,) = overage_candidates(now=timezone.now())
    event = overage_plan(row=row, now=timezone.now())
    app.control.purge()  # its own queued task is lost (a worker died holding it)
    long_ago = timezone.now() - timedelta(seconds=settings.BILLING_SENDING_TIMEOUT + 60)
    BillingEvent.objects.filter(pk=event.pk).update(status="sending", claimed_at=long_ago, first_attempt_at=long_ago)
    with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, loglevel="WARNING"):
        assert billing.tasks.sweep_billing_events() == 1
        assert until(lambda: BillingEvent.objects.get(pk=event.pk).status == BillingEventStatus.SENT)

    assert [e["identifier"] for e in fake_stripe.meter_events] == [event.identifier]


@pytest.mark.django_db
def test_automatic_resends_stop_24_hours_after_the_first_attempt(fake_stripe, stripe_company, set_usage):
    from datetime import timedelta

    import time_machine
    from django.utils import timezone

    from billing.stripe.overage import billing_event_send, overage_report_run, overage_sweep
    from ops.models import OpsTask

    acme = stripe_company("starter")
    set_usage(acme, "quotes", 1_010)
    with_customer(fake_stripe, acme)
    fake_stripe.fail_next(1, 503)
    overage_report_run(trigger="test")
    event = BillingEvent.objects.get()
    assert event.status == BillingEventStatus.PENDING and event.first_attempt_at is not None
    app.control.purge()

    with time_machine.travel(event.first_attempt_at + timedelta(hours=24, minutes=1)):
        fake_stripe.fail_next(5, 503)  # would fail anyway: nothing may even be tried
        requests_before = len(fake_stripe.requests)
        assert overage_sweep(now=timezone.now()) == 0
        assert billing_event_send(billing_event_id=event.pk) == "skipped"
        assert len(fake_stripe.requests) == requests_before
    app.control.purge()

    event.refresh_from_db()
    assert event.status == BillingEventStatus.FAILED and fake_stripe.meter_events == []
    task = OpsTask.objects.get(kind="billing.overage_unconfirmed")
    assert event.identifier in task.details and "Reconcile first" in task.details


@pytest.mark.django_db
def test_the_overage_sweep_runs_every_minute():
    task = PeriodicTask.objects.get(task="billing.tasks.sweep_billing_events")
    assert (task.interval.every, task.interval.period, task.enabled) == (1, "minutes", True)
