"""Webhook processing and overage reporting through a real Celery worker on Redis."""

from __future__ import annotations

import time

import pytest
from celery.contrib.testing.worker import start_worker
from django_celery_beat.models import PeriodicTask

import billing.tasks
from billing.models import BillingEvent, BillingEventStatus, CompanyStripe, StripeWebhookEvent
from tests.billing.stripe_fixtures import WEBHOOK_SECRET
from tests.fakes.stripe_server import make_event, signed_webhook
from trans_bot.celery import app


def _until(predicate, timeout: float = 60) -> bool:
    """Wait for the worker (not for time logic): poll until done or give up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


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
        assert _until(lambda: StripeWebhookEvent.objects.get(pk=stored.pk).status == "processed")

    acme.refresh_from_db()
    assert acme.status == "past_due"


@pytest.mark.django_db(transaction=True)
def test_the_overage_task_reports_through_the_worker(fake_stripe, stripe_company, set_usage):
    acme = stripe_company("starter")
    set_usage(acme, "quotes", 1_042)
    app.control.purge()
    with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, loglevel="WARNING"):
        billing.tasks.report_overage.delay(trigger="test")
        assert _until(lambda: BillingEvent.objects.filter(status=BillingEventStatus.SENT).exists())

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

    from billing.services_stripe import webhook_event_store

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
        assert _until(lambda: StripeWebhookEvent.objects.get(pk=pk).status == "processed")

    acme.refresh_from_db()
    assert acme.status == "past_due"


@pytest.mark.django_db
def test_the_webhook_sweep_runs_every_five_minutes():
    task = PeriodicTask.objects.get(task="billing.tasks.sweep_stripe_events")
    assert (task.interval.every, task.interval.period, task.enabled) == (5, "minutes", True)
