"""Several workers delivering the same outbox: each alert goes out once."""

import threading
from collections import Counter

import pytest
from django.db import connection, transaction

from ops.delivery import notification_deliver
from ops.models import Notification, NotificationStatus
from ops.services import notify


@pytest.mark.django_db(transaction=True)
def test_four_workers_racing_over_200_pending_alerts_deliver_each_exactly_once(fake_slack, settings):
    settings.NOTIFY_STORM_THRESHOLD = 100_000  # this test is about claiming, not storms
    with transaction.atomic():
        ids = [
            notify(kind="race.test", title=f"alert {i:03d}", text="...", email_to=[]).pk for i in range(200)
        ]
    barrier = threading.Barrier(4)
    outcomes: Counter[str] = Counter()
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            barrier.wait()
            mine = Counter(notification_deliver(notification_id=pk) for pk in ids)
            with lock:
                outcomes.update(mine)
        except BaseException as exc:  # surfaced below; a thread's exception would vanish
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    titles = [m["text"].splitlines()[0] for m in fake_slack.messages]
    assert len(titles) == 200
    assert sorted(titles) == sorted(f"[Info] alert {i:03d}" for i in range(200))
    assert outcomes == {"sent": 200, "skipped": 600}
    assert set(Notification.objects.values_list("status", "attempts")) == {(NotificationStatus.SENT, 1)}


@pytest.mark.django_db(transaction=True)
def test_four_workers_racing_through_a_storm_send_exactly_the_threshold_and_one_summary(fake_slack, settings):
    settings.NOTIFY_STORM_THRESHOLD = 10
    settings.NOTIFY_STORM_WINDOW_SECONDS = 3600  # the whole test falls in one window
    with transaction.atomic():
        ids = [notify(kind="usage.breach", title=f"over {i}", text="...", email_to=[]).pk for i in range(50)]
    barrier = threading.Barrier(4)

    def worker() -> None:
        try:
            barrier.wait()
            for pk in ids:
                notification_deliver(notification_id=pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(fake_slack.messages) == 10
    (summary,) = Notification.objects.filter(is_summary=True)
    assert summary.folded.count() == 40
    assert Notification.objects.filter(status=NotificationStatus.FOLDED, folded_into=summary).count() == 40
