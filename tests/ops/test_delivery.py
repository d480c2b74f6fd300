"""Delivery: retries with backoff, gives up visibly, never sends a channel twice."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from audit.models import AuditLog
from audit.services import Actor
from ops.delivery import (
    notification_deliver,
    notification_retry_now,
    notifications_deliver_due,
    notifications_reclaim_stuck,
)
from ops.models import ChannelStatus, Notification, NotificationStatus, OpsTask
from ops.services import notify

START = datetime(2026, 3, 4, 9, 0, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_slack_failing_three_times_then_answering_delivers_exactly_one_message(
    fake_slack, ops_emails, mailoutbox
):
    fake_slack.fail_next(3, status=500)
    with time_machine.travel(START, tick=False) as clock:
        notification = notify(kind="region.failover", title="Failed over to standby", text="...")

        assert notifications_deliver_due() == {"pending": 1}
        notification.refresh_from_db()
        assert notification.attempts == 1
        assert "HTTP 500" in notification.last_error
        assert notification.next_attempt_at == START + timedelta(seconds=30)
        assert notifications_deliver_due() == {}, "not due again before the backoff is over"

        for wait, attempts in ((30, 2), (60, 3)):
            clock.shift(wait)
            assert notifications_deliver_due() == {"pending": 1}
            notification.refresh_from_db()
            assert notification.attempts == attempts
        assert notification.next_attempt_at == START + timedelta(seconds=30 + 60 + 120)

        clock.shift(120)
        assert notifications_deliver_due() == {"sent": 1}

    notification.refresh_from_db()
    assert notification.status == NotificationStatus.SENT
    assert notification.attempts == 4
    assert notification.last_error == ""
    assert [r["status"] for r in fake_slack.requests] == [500, 500, 500, 200]
    assert len(fake_slack.messages) == 1
    assert len(mailoutbox) == 1, "the e-mail went out on the first attempt and was not repeated"


@pytest.mark.django_db
def test_it_gives_up_after_the_configured_time_with_a_failed_record_and_an_ops_task(
    fake_slack, settings, acme
):
    settings.NOTIFY_GIVE_UP_AFTER = 3600
    fake_slack.fail_next(1000, status=503)
    with time_machine.travel(START, tick=False) as clock:
        notification = notify(
            kind="usage.breach", title="Acme is over its limit", text="...", company=acme, email_to=[]
        )
        while True:
            outcome = notifications_deliver_due()
            notification.refresh_from_db()
            if notification.status != NotificationStatus.PENDING:
                break
            assert outcome == {"pending": 1}
            clock.move_to(notification.next_attempt_at)

    assert notification.status == NotificationStatus.FAILED
    assert notification.slack_status == ChannelStatus.FAILED
    assert notification.attempts == 8  # 0, 30, 90, 210, 450, 930, 1890 s, then 3810 s > 1 h
    assert "HTTP 503" in notification.last_error
    task = OpsTask.objects.get(kind="ops.alert_undelivered")
    assert task.target == notification and task.company == acme
    assert "Acme is over its limit" in task.title and "HTTP 503" in task.details
    assert AuditLog.objects.filter(action="ops.notification.failed", target_id=str(notification.pk)).exists()
    assert fake_slack.messages == []


@pytest.mark.django_db
def test_a_revoked_webhook_fails_at_once_because_retrying_cannot_help(fake_slack):
    fake_slack.fail_next(1, status=404, body="no_service")
    notification = notify(kind="region.failover", title="Failed over", text="...", email_to=[])

    assert notifications_deliver_due() == {"failed": 1}

    notification.refresh_from_db()
    assert notification.attempts == 1 and "no_service" in notification.last_error
    assert OpsTask.objects.filter(kind="ops.alert_undelivered").count() == 1


@pytest.mark.django_db
def test_retry_now_sends_a_failed_alert_and_is_audited(fake_slack, ops_user):
    fake_slack.fail_next(1, status=404, body="no_service")
    notification = notify(kind="region.failover", title="Failed over", text="...", email_to=[])
    notifications_deliver_due()

    assert notification_retry_now(notification=notification, actor=Actor.of_user(ops_user)) is True
    assert notifications_deliver_due() == {"sent": 1}

    notification.refresh_from_db()
    assert notification.status == NotificationStatus.SENT and notification.slack_status == ChannelStatus.SENT
    assert len(fake_slack.messages) == 1
    log = AuditLog.objects.get(action="ops.notification.retry")
    assert log.actor_label == "olivia" and log.details == {"from": "failed", "to": "pending"}
    assert notification_retry_now(notification=notification, actor=Actor.of_user(ops_user)) is False


@pytest.mark.django_db
def test_an_alert_claimed_by_a_worker_that_died_is_handed_back_and_sent(fake_slack, settings):
    settings.NOTIFY_SENDING_TIMEOUT = 300
    with time_machine.travel(START, tick=False) as clock:
        notification = notify(kind="region.failover", title="Failed over", text="...", email_to=[])
        Notification.objects.filter(pk=notification.pk).update(
            status=NotificationStatus.SENDING, claimed_at=START
        )
        clock.shift(299)
        assert notifications_reclaim_stuck() == 0
        clock.shift(2)
        assert notifications_reclaim_stuck() == 1
        assert notifications_deliver_due() == {"sent": 1}
    assert len(fake_slack.messages) == 1


@pytest.mark.django_db
def test_a_second_delivery_of_a_sent_alert_does_nothing(fake_slack):
    notification = notify(kind="region.failover", title="Failed over", text="...", email_to=[])
    assert notification_deliver(notification_id=notification.pk) == "sent"
    assert notification_deliver(notification_id=notification.pk) == "skipped"
    assert len(fake_slack.messages) == 1
