"""A mail server that accepts and never answers: the delivery gives up after
``EMAIL_TIMEOUT`` (the worker is free again), and Slack, already sent, is never sent again,
neither by the retry nor when the hung worker's claim is handed back to another."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from ops.delivery import notification_deliver, notifications_deliver_due, notifications_reclaim_stuck
from ops.models import ChannelStatus, Notification, NotificationStatus
from ops.services import notify
from tests.silent_server import SilentServer
from tests.waiting import until


@pytest.fixture
def hung_smtp(settings):
    with SilentServer() as smtp:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp.port
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_TIMEOUT = 1
        yield smtp


def _alert() -> Notification:
    alert = notify(kind="region.failover", title="Failed over to standby", text="...", email_to=["ops@x.test"])
    assert alert is not None
    return alert


@pytest.mark.django_db
def test_a_hung_mail_server_fails_the_attempt_within_the_timeout_and_the_retry_skips_slack(fake_slack, hung_smtp):
    alert = _alert()

    started = time.monotonic()
    assert notification_deliver(notification_id=alert.pk) == NotificationStatus.PENDING
    assert time.monotonic() - started < 5  # EMAIL_TIMEOUT (1 s), not for ever

    alert.refresh_from_db()
    assert (alert.slack_status, alert.email_status) == (ChannelStatus.SENT, ChannelStatus.PENDING)
    assert "email: mail server error" in alert.last_error and "timed out" in alert.last_error
    with time_machine.travel(alert.next_attempt_at + timedelta(seconds=1)):
        assert notifications_deliver_due() == {NotificationStatus.PENDING: 1}
    assert len(fake_slack.messages) == 1
    assert hung_smtp.connections == 2


@pytest.mark.django_db(transaction=True)
def test_a_claim_handed_back_while_the_worker_hangs_on_smtp_never_repeats_slack(fake_slack, hung_smtp, settings):
    settings.EMAIL_TIMEOUT = 3
    alert = _alert()

    def hung_worker() -> None:
        try:
            notification_deliver(notification_id=alert.pk)
        finally:
            connection.close()

    first = threading.Thread(target=hung_worker)
    first.start()
    assert until(lambda: len(fake_slack.messages) == 1 and hung_smtp.connections == 1, timeout=10)
    # The first worker hangs on SMTP; its claim times out and another worker takes the alert.
    with time_machine.travel(timezone.now() + timedelta(seconds=settings.NOTIFY_SENDING_TIMEOUT + 1)):
        assert notifications_reclaim_stuck() == 1
        assert notification_deliver(notification_id=alert.pk) == NotificationStatus.PENDING
    first.join(timeout=10)

    alert.refresh_from_db()
    assert len(fake_slack.messages) == 1
    assert hung_smtp.connections == 2
    assert (alert.status, alert.slack_status, alert.email_status) == (
        NotificationStatus.PENDING,
        ChannelStatus.SENT,
        ChannelStatus.PENDING,
    )
    assert alert.attempts == 2
