"""Storm damping: past N alerts of one kind in a window, the rest become one summary."""

from datetime import UTC, datetime

import pytest
import time_machine

from ops.models import Notification, NotificationStatus
from ops.services import notifications_deliver_due, notify

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
        notifications_deliver_due()
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
        notifications_deliver_due()

    titles = [m["text"].splitlines()[0] for m in fake_slack.messages]
    assert titles.count("[Info] Near limit") == 2
    assert titles.count("[Info] Near limit again") == 1
    assert [t for t in titles if t.startswith("[Info] Alert storm")] == [
        "[Info] Alert storm: 1 more usage.warning alerts folded"
    ]
    assert len(titles) == 4
