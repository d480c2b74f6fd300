"""A failed Stripe event never stays failed forever: the event row says when its next try
is due, so when the retry message is lost (the broker restarted within the countdown)
the sweep queues it again; after the last try an ops task says so and the sweep leaves
it alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from celery.contrib.testing.worker import start_worker
from django.utils import timezone

import billing.tasks
from billing.stripe.models import StripeWebhookEvent, WebhookEventStatus
from billing.stripe.webhook_intake import webhook_event_store
from billing.stripe.webhook_processing import (
    WEBHOOK_MAX_ATTEMPTS,
    WebhookProcessingError,
    webhook_event_process,
    webhook_events_sweep,
)
from ops.models import OpsTask
from tests.billing.stripe_fixtures import TIER_PRICES, with_customer
from tests.fakes.stripe_server import make_event
from tests.waiting import until
from trans_bot.celery import app


def _checkout_completed(fake_stripe, company) -> StripeWebhookEvent:
    customer = with_customer(fake_stripe, company)
    sub = fake_stripe.add_subscription(customer, TIER_PRICES["pro"], metadata={"company_id": str(company.pk)})
    event = make_event(
        "checkout.session.completed",
        {
            "id": "cs_lost_retry",
            "object": "checkout.session",
            "mode": "subscription",
            "payment_status": "paid",
            "customer": customer,
            "subscription": sub["id"],
            "metadata": {"company_id": str(company.pk)},
        },
    )
    pk, _ = webhook_event_store(event=event)
    return StripeWebhookEvent.objects.get(pk=pk)


def _fail_once(fake_stripe, event: StripeWebhookEvent) -> WebhookProcessingError:
    fake_stripe.fail_next(1, 503)
    with pytest.raises(WebhookProcessingError) as failed:
        webhook_event_process(webhook_event_id=event.pk)
    return failed.value


@pytest.mark.django_db(transaction=True)
def test_a_failed_event_whose_retry_was_lost_is_processed_by_the_sweep(fake_stripe, stripe_company):
    acme = stripe_company("starter")
    event = _checkout_completed(fake_stripe, acme)

    error = _fail_once(fake_stripe, event)  # its task would now retry in 10 s; that message is lost

    event.refresh_from_db()
    assert error.retry_in == 10
    assert (event.status, event.attempts) == (WebhookEventStatus.FAILED, 1)
    assert event.next_attempt_at is not None
    app.control.purge()
    with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, loglevel="WARNING"):
        assert billing.tasks.sweep_stripe_events() == 0, "its retry is not late yet"
        with time_machine.travel(event.next_attempt_at + timedelta(minutes=5, seconds=1)):
            assert billing.tasks.sweep_stripe_events() == 1
        assert until(lambda: StripeWebhookEvent.objects.get(pk=event.pk).status == WebhookEventStatus.PROCESSED)

    acme.refresh_from_db()
    assert acme.tier.code == "pro"
    assert not OpsTask.objects.filter(kind="billing.webhook_failed").exists()


@pytest.mark.django_db
def test_after_the_last_try_ops_get_a_task_and_the_sweep_leaves_the_event(fake_stripe, stripe_company):
    acme = stripe_company("starter")
    event = _checkout_completed(fake_stripe, acme)

    errors = [_fail_once(fake_stripe, event) for _ in range(WEBHOOK_MAX_ATTEMPTS)]

    assert [e.retry_in for e in errors] == [10 * 2**n for n in range(WEBHOOK_MAX_ATTEMPTS - 1)] + [None]
    event.refresh_from_db()
    assert (event.status, event.attempts, event.next_attempt_at) == (
        WebhookEventStatus.FAILED,
        WEBHOOK_MAX_ATTEMPTS,
        None,
    )
    task = OpsTask.objects.get(kind="billing.webhook_failed")
    assert event.stripe_id in task.title and f"failed {WEBHOOK_MAX_ATTEMPTS} time(s)" in task.details
    assert task.target == event
    assert webhook_events_sweep(now=timezone.now() + timedelta(days=1)) == 0
    app.control.purge()


@pytest.mark.django_db
def test_a_lost_last_retry_is_swept_and_then_escalated(fake_stripe, stripe_company):
    acme = stripe_company("starter")
    event = _checkout_completed(fake_stripe, acme)
    for _ in range(WEBHOOK_MAX_ATTEMPTS - 1):
        _fail_once(fake_stripe, event)
    event.refresh_from_db()
    app.control.purge()

    with time_machine.travel(event.next_attempt_at + timedelta(minutes=6)):
        assert webhook_events_sweep() == 1
    app.control.purge()  # the sweep queued it; run it here, failing once more
    assert _fail_once(fake_stripe, event).retry_in is None

    assert OpsTask.objects.filter(kind="billing.webhook_failed").count() == 1
    assert webhook_events_sweep(now=timezone.now() + timedelta(days=1)) == 0
