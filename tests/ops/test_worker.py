"""End to end through a real Celery worker on the Redis broker from settings."""

from datetime import timedelta

import pytest
import time_machine
from celery.contrib.testing.worker import start_worker
from django.db import transaction
from django.utils import timezone

import ops.tasks  # noqa: F401  (registers the tasks with the app)
from ops.delivery import notification_deliver
from ops.models import Notification, NotificationStatus
from ops.services import notify
from trans_bot.celery import app


@pytest.mark.django_db(transaction=True)
def test_an_alert_requested_in_a_committed_transaction_is_delivered_by_the_worker(fake_slack, settings):
    app.control.purge()  # leftovers from other tests' commits are not this test's business
    with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, loglevel="WARNING"):
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                notify(kind="region.failover", title="Rolled back failover", text="...", email_to=[])
                raise RuntimeError("rolled back")
        with transaction.atomic():
            alert = notify(
                kind="region.failover",
                title="Failed over to standby",
                text="Primary failed 3 probes.",
                email_to=[],
            )
            assert Notification.objects.get(pk=alert.pk).status == NotificationStatus.PENDING
        assert fake_slack.wait_for(1, timeout=60), "the worker did not deliver the alert"

    alert.refresh_from_db()
    assert alert.status == NotificationStatus.SENT and alert.attempts == 1
    assert [m["text"].splitlines()[0] for m in fake_slack.messages] == ["[Info] Failed over to standby"]


@pytest.mark.django_db
def test_the_outbox_sweep_is_scheduled_every_30_seconds():
    from django_celery_beat.models import PeriodicTask

    schedule = PeriodicTask.objects.get(task="ops.sweep_notifications")
    assert schedule.enabled and (schedule.interval.every, schedule.interval.period) == (30, "seconds")


@pytest.mark.django_db(transaction=True)
def test_the_beat_sweep_hands_a_due_retry_to_the_worker(fake_slack):
    fake_slack.fail_next(1, status=500)
    with transaction.atomic():
        alert = notify(kind="usage.breach", title="Acme over its limit", text="...", email_to=[])
    assert notification_deliver(notification_id=alert.pk) == NotificationStatus.PENDING  # Slack said 500
    app.control.purge()  # the after-commit message is spent; only the sweep can deliver it now
    with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, loglevel="WARNING"):
        with time_machine.travel(timezone.now() + timedelta(seconds=31)):
            ops.tasks.sweep_notifications.delay()  # what beat does every 30 s
            assert fake_slack.wait_for(1, timeout=60), "the sweep did not get the retry delivered"

    alert.refresh_from_db()
    assert alert.status == NotificationStatus.SENT and alert.attempts == 2
    assert [r["status"] for r in fake_slack.requests] == [500, 200]
