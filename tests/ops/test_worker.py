"""End to end through a real Celery worker on the Redis broker from settings."""

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import transaction

import ops.tasks  # noqa: F401  (registers the tasks with the app)
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
