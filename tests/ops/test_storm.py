"""Storm damping: past N alerts of one kind in a window, the rest become one summary."""

from datetime import UTC, datetime

import pytest
import time_machine

from ops.delivery import notification_deliver, notifications_deliver_due
from ops.models import Notification, NotificationStatus
from ops.services import notify

WINDOW_START = datetime(2026, 3, 4, 2, 0, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_fifty_alerts_of_one_kind_in_a_minute_send_ten_and_one_summary_not_fifty(
    fake_slack, ops_emails, mailoutbox, settings
):
    settings.NOTIFY_STORM_THRESHOLD = 10
    settings.NOTIFY_STORM_WINDOW_SECONDS = 60
    with time_machine.travel(WINDOW_START, tick=False) as clock:
        for i in range(50):
            notify(kind="usage.breach", title=f"Company {i:02d} is over its quotes limit", text="...")
            clock.shift(1)
        notify(kind="region.failover", title="Failed over to standby", text="another kind is not damped")
        assert notifications_deliver_due() == {"sent": 11, "folded": 40}
        assert len(fake_slack.messages) == 11, "the first ten breaches and the failover"

        clock.move_to(datetime(2026, 3, 4, 2, 1, 0, tzinfo=UTC))
        assert notifications_deliver_due() == {"sent": 1}

    assert len(fake_slack.messages) == 12
    assert len(mailoutbox) == 12
    summary_message = fake_slack.messages[-1]["text"]
    assert summary_message.startswith("[Info] Alert storm: 40 more usage.breach alerts folded")
    assert "40 more `usage.breach` alert(s) arrived within 60 seconds, after the first 10" in summary_message
    assert "• Company 10 is over its quotes limit" in summary_message
    assert "• … and 30 more" in summary_message
    assert "What to do:" in summary_message
    assert "Window: 2026-03-04 02:00:00–02:01:00 UTC" in summary_message
    assert "Open: http://127.0.0.1:8000/admin/ops/notification/?kind=usage.breach" in summary_message
    summary = Notification.objects.get(is_summary=True)
    assert summary.folded.count() == 40
    assert Notification.objects.filter(status=NotificationStatus.FOLDED).count() == 40
    assert "Alert storm" in mailoutbox[-1].subject


@pytest.mark.django_db
def test_the_next_window_starts_counting_again(fake_slack, settings):
    settings.NOTIFY_STORM_THRESHOLD = 2
    settings.NOTIFY_STORM_WINDOW_SECONDS = 60
    with time_machine.travel(WINDOW_START, tick=False) as clock:
        for _ in range(3):
            notify(kind="usage.warning", title="Near limit", text="...", email_to=[])
        clock.shift(60)
        notify(kind="usage.warning", title="Near limit again", text="...", email_to=[])
        assert notifications_deliver_due() == {"sent": 3, "folded": 1}
        assert notifications_deliver_due() == {"sent": 1}, "the summary, due at the end of its window"

    titles = [m["text"].splitlines()[0] for m in fake_slack.messages]
    assert titles.count("[Info] Near limit") == 2
    assert titles.count("[Info] Near limit again") == 1
    assert [t for t in titles if t.startswith("[Info] Alert storm")] == [
        "[Info] Alert storm: 1 more usage.warning alerts folded"
    ]
    assert len(titles) == 4


@pytest.mark.django_db
def test_notify_itself_folds_nothing_so_callers_hold_no_storm_lock(settings):
    settings.NOTIFY_STORM_THRESHOLD = 1
    for _ in range(3):
        notify(kind="usage.breach", title="Over", text="...", email_to=[])
    assert set(Notification.objects.values_list("status", flat=True)) == {NotificationStatus.PENDING}


@pytest.mark.django_db
def test_alerts_delivered_after_their_window_summary_went_out_get_a_follow_up_summary(fake_slack, settings):
    settings.NOTIFY_STORM_THRESHOLD = 1
    settings.NOTIFY_STORM_WINDOW_SECONDS = 60
    with time_machine.travel(WINDOW_START, tick=False) as clock:
        first = [notify(kind="usage.breach", title=f"Over {i}", text="...", email_to=[]) for i in range(3)]
        late = notify(kind="usage.breach", title="Over late", text="...", email_to=[])
        for n in first:
            notification_deliver(notification_id=n.pk)
        clock.move_to(datetime(2026, 3, 4, 2, 1, 0, tzinfo=UTC))
        summary = Notification.objects.get(is_summary=True)
        assert notification_deliver(notification_id=summary.pk) == "sent"  # before "late" got its turn
        assert notification_deliver(notification_id=late.pk) == "folded"
        assert notifications_deliver_due() == {}, "the follow-up waits a window for more late ones"
        clock.shift(60)
        assert notifications_deliver_due() == {"sent": 1}

    titles = [m["text"].splitlines()[0] for m in fake_slack.messages]
    assert titles == [
        "[Info] Over 0",
        "[Info] Alert storm: 2 more usage.breach alerts folded",
        "[Info] Alert storm: 1 more usage.breach alerts folded",
    ]
    late.refresh_from_db()
    assert late.status == NotificationStatus.FOLDED and late.folded_into.dedup_key.endswith(":1")


@pytest.mark.django_db
def test_a_storm_never_swallows_messages_to_customers(fake_slack, mailoutbox, settings):
    settings.NOTIFY_STORM_THRESHOLD = 3
    settings.NOTIFY_STORM_WINDOW_SECONDS = 60
    with time_machine.travel(WINDOW_START, tick=False):
        for i in range(20):
            notify(
                kind="usage.breach", title=f"You have exceeded your quotes limit ({i})", text="...",
                slack=False, email_to=[f"owner{i}@example.com"],
            )
        assert notifications_deliver_due() == {"sent": 20}
    assert sorted(m.to[0] for m in mailoutbox) == sorted(f"owner{i}@example.com" for i in range(20))
    assert not Notification.objects.filter(is_summary=True).exists()
