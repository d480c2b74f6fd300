"""The ops spine: how fast alerts are queued (``notify`` in its own transaction, as a
caller does) and delivered to a Slack webhook (the loopback fake), by one worker and by
four racing workers. Also a storm: alerts past the threshold are folded at delivery instead of sent.

Run it with your own Redis database as the broker: each committed alert enqueues a
delivery task, and the queue is purged at the end.
"""

from __future__ import annotations

import threading
import time

from benchdb import bench_database, describe

ENQUEUE = 2000
DELIVER = 2000
WORKERS = 4


def _enqueue(n: int, *, kind: str, prefix: str, dedup: bool = False) -> list[float]:
    from django.db import transaction

    from ops.services import notify

    samples = []
    for i in range(n):
        started = time.perf_counter()
        with transaction.atomic():
            notify(
                kind=kind,
                title=f"{prefix} {i}: Acme Freight is over its quotes limit",
                text="Acme used 1,240 of 1,000 quotes.\nWhat to do: offer the Pro plan.",
                fields={"Feature": "quotes", "Used": "1240 / 1000"},
                dedup_key=f"{prefix}:{i}" if dedup else None,
                email_to=[],
            )
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _deliver(workers: int) -> tuple[float, int]:
    from django.db import connection

    from ops.delivery import notification_deliver
    from ops.selectors import notifications_due

    ids = notifications_due(limit=100_000)

    def worker() -> None:
        try:
            for pk in ids:
                notification_deliver(notification_id=pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(ids) / (time.perf_counter() - started), len(ids)


def main() -> None:
    with bench_database():
        from django.conf import settings
        from django.db import connection

        from ops.models import Notification, NotificationStatus
        from tests.ops.fake_slack import FakeSlack
        from trans_bot.celery import app

        print(
            f"database: {connection.vendor} {connection.settings_dict['NAME']}, broker: {settings.CELERY_BROKER_URL}"
        )
        settings.NOTIFY_STORM_THRESHOLD = 10**9
        with FakeSlack() as slack:
            settings.SLACK_WEBHOOK_URL = slack.url
            _enqueue(50, kind="bench.warmup", prefix="warmup")

            samples = _enqueue(ENQUEUE, kind="bench.alert", prefix="plain")
            print(
                f"notify (own transaction + enqueue): {1000 / (sum(samples) / len(samples)):7.0f} alerts/s; "
                f"{describe(samples)}"
            )
            samples = _enqueue(ENQUEUE, kind="bench.dedup", prefix="dedup", dedup=True)
            print(
                f"notify with a dedup key:            {1000 / (sum(samples) / len(samples)):7.0f} alerts/s; "
                f"{describe(samples)}"
            )
            samples = _enqueue(ENQUEUE, kind="bench.dedup", prefix="dedup", dedup=True)
            print(
                f"notify, dedup key already used:     {1000 / (sum(samples) / len(samples)):7.0f} calls/s; "
                f"{describe(samples)}"
            )

            # Deliver in two halves: one worker, then four racing over the same ids.
            due = Notification.objects.filter(status=NotificationStatus.PENDING).order_by("id")
            second_half = list(due.values_list("id", flat=True)[DELIVER:])
            Notification.objects.filter(pk__in=second_half).update(status=NotificationStatus.FOLDED)
            rate, count = _deliver(1)
            print(f"deliver to Slack, 1 worker:         {rate:7.0f} alerts/s ({count} alerts)")
            Notification.objects.filter(pk__in=second_half).update(status=NotificationStatus.PENDING)
            rate, count = _deliver(WORKERS)
            print(f"deliver to Slack, {WORKERS} racing workers: {rate:7.0f} alerts/s ({count} alerts)")
            sent = Notification.objects.filter(status=NotificationStatus.SENT).count()
            print(f"messages received by the fake Slack: {len(slack.messages)}; rows sent: {sent}")
            assert len(slack.messages) == sent

            settings.NOTIFY_STORM_THRESHOLD = 10
            _enqueue(ENQUEUE, kind="bench.storm", prefix="storm")
            rate, count = _deliver(1)
            folded = Notification.objects.filter(kind="bench.storm", status=NotificationStatus.FOLDED).count()
            print(
                f"deliver during a storm, 1 worker:   {rate:7.0f} alerts/s ({count} alerts, {folded} folded "
                f"into {Notification.objects.filter(is_summary=True).count()} summary)"
            )
        app.control.purge()
