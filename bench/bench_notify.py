"""The ops spine: how fast alerts are queued (``notify`` in its own transaction, as a caller
does, its delivery task enqueued on the Redis broker after commit) and delivered to a Slack
webhook (the loopback fake, through the real ``slack_sdk``) by one worker and by four racing
over the same ids. Sizes: BENCH_NOTIFY_ALERTS (per turn, default 500), BENCH_NOTIFY_ROUNDS
(default 3). The broker queue is purged at the end."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

from benchdb import bench_database, size, take_turns
from table import BenchFailure, Row

BASELINE = (
    "Queueing: a one-row INSERT of the same columns into a table made `LIKE ops_notification "
    "INCLUDING ALL` (same indexes, the unique dedup key too), committed alone, then an RPUSH to "
    "the same Redis — the least a durable, queued alert costs; with a dedup key the insert is "
    "`ON CONFLICT (dedup_key) DO NOTHING` (a used key: nothing pushed). Delivery: for each row a "
    "conditional claim (`UPDATE … WHERE status = 'pending'`, row count checked), one httpx POST of "
    "the text to the same fake Slack, and an UPDATE to sent — with one worker, and with four workers "
    "racing over the same ids. Project and baseline take turns in blocks of BENCH_NOTIFY_ALERTS."
)
ALERTS = size("BENCH_NOTIFY_ALERTS", 500)
ROUNDS = size("BENCH_NOTIFY_ROUNDS", 3)
WORKERS = 4
QUEUE = "bench:notify:baseline"
TITLE = "{prefix} {i}: Acme Freight is over its quotes limit"
TEXT = "Acme used 1,240 of 1,000 quotes.\nWhat to do: offer the Pro plan."
_n = itertools.count()


def _notify(prefix: str, *, dedup: bool = False, reuse: bool = False) -> Callable[[int], float]:
    def run(r: int) -> float:
        from django.db import transaction

        from ops.services import notify

        started = time.perf_counter()
        for i in range(ALERTS):
            key = f"{prefix}:{i if reuse else next(_n)}"
            with transaction.atomic():
                notify(kind="bench.alert", title=TITLE.format(prefix=prefix, i=i), text=TEXT,
                       fields={"Feature": "quotes", "Used": "1240 / 1000"},
                       dedup_key=key if dedup else None, email_to=[])
        return ALERTS / (time.perf_counter() - started)
    return run


def _bare(prefix: str, *, dedup: bool = False, reuse: bool = False) -> Callable[[int], float]:
    def run(r: int) -> float:
        import redis
        from django.conf import settings
        from django.db import connection

        broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        started = time.perf_counter()
        with connection.cursor() as cursor:
            for i in range(ALERTS):
                key = f"{prefix}:{i if reuse else next(_n)}" if dedup else None
                cursor.execute(
                    """INSERT INTO bench_notification (kind, severity, title, text, link, fields, dedup_key,
                           slack_status, email_to, email_status, status, attempts, next_attempt_at, last_error,
                           created_at, is_summary)
                       VALUES ('bench.alert', 'info', %s, %s, '', '{"Feature": "quotes"}', %s, 'pending', '[]',
                               'none', 'pending', 0, now(), '', now(), false)
                       ON CONFLICT (dedup_key) DO NOTHING RETURNING id""",
                    [TITLE.format(prefix=prefix, i=i), TEXT, key],
                )
                row = cursor.fetchone()
                if row:
                    broker.rpush(QUEUE, row[0])
        return ALERTS / (time.perf_counter() - started)
    return run


def _threads(workers: int, work: Callable[[], None]) -> None:
    from django.db import connection

    errors: list[BaseException] = []

    def worker() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise BenchFailure(f"a delivery worker failed: {errors[0]!r}")


def _deliver_project(workers: int, ids_by_round: list[list[int]]) -> Callable[[int], float]:
    def run(r: int) -> float:
        from ops.delivery import notification_deliver

        ids = ids_by_round[r]
        started = time.perf_counter()
        _threads(workers, lambda: [notification_deliver(notification_id=pk) for pk in ids])
        return len(ids) / (time.perf_counter() - started)
    return run


def _deliver_bare(workers: int, ids_by_round: list[list[int]], url: str) -> Callable[[int], float]:
    def run(r: int) -> float:
        import httpx
        from django.db import connection

        ids = ids_by_round[r]

        def work() -> None:
            with httpx.Client(timeout=10) as http, connection.cursor() as cursor:
                for pk in ids:
                    cursor.execute("UPDATE bench_notification SET status = 'sending', claimed_at = now(), "
                                   "attempts = attempts + 1 WHERE id = %s AND status = 'pending' RETURNING title",
                                   [pk])
                    row = cursor.fetchone()
                    if row is None:
                        continue
                    response = http.post(url, json={"text": row[0]})
                    if response.status_code != 200:
                        raise BenchFailure(f"fake Slack answered {response.status_code}")
                    cursor.execute("UPDATE bench_notification SET status = 'sent', slack_status = 'sent', "
                                   "sent_at = now() WHERE id = %s", [pk])

        started = time.perf_counter()
        _threads(workers, work)
        return len(ids) / (time.perf_counter() - started)
    return run


def _rate(samples: list[float]) -> float:
    return len(samples) / sum(1 / s for s in samples)


def main() -> list[Row]:
    with bench_database():
        import redis
        from django.conf import settings
        from django.db import connection

        from ops.models import Notification, NotificationStatus
        from tests.ops.fake_slack import FakeSlack
        from trans_bot.celery import app

        settings.NOTIFY_STORM_THRESHOLD = 10**9
        broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE bench_notification (LIKE ops_notification INCLUDING ALL)")
        try:
            with FakeSlack() as slack:
                settings.SLACK_WEBHOOK_URL = slack.url
                _notify("warm")(0)
                _bare("warm")(0)
                _notify("used", dedup=True, reuse=True)(0)  # the keys the "already used" turns repeat
                _bare("used", dedup=True, reuse=True)(0)
                queue = {
                    "plain": take_turns(ROUNDS, project=_notify("plain"), baseline=_bare("plain")),
                    "dedup": take_turns(ROUNDS, project=_notify("dedup", dedup=True),
                                        baseline=_bare("dedup", dedup=True)),
                    "used": take_turns(ROUNDS, project=_notify("used", dedup=True, reuse=True),
                                       baseline=_bare("used", dedup=True, reuse=True)),
                }

                def pending(model_ids: list[int]) -> list[list[int]]:
                    chunk = max(1, len(model_ids) // ROUNDS)
                    return [model_ids[i * chunk:(i + 1) * chunk] for i in range(ROUNDS)]

                Notification.objects.filter(kind="bench.alert").update(status=NotificationStatus.FOLDED)
                with connection.cursor() as cursor:
                    cursor.execute("UPDATE bench_notification SET status = 'folded'")
                deliveries = {}
                for workers in (1, WORKERS):
                    project_ids = list(Notification.objects.filter(status=NotificationStatus.FOLDED)
                                       .order_by("id").values_list("id", flat=True)[: ALERTS * ROUNDS])
                    Notification.objects.filter(pk__in=project_ids).update(status=NotificationStatus.PENDING)
                    with connection.cursor() as cursor:
                        cursor.execute("UPDATE bench_notification SET status = 'pending' WHERE id IN (SELECT id "
                                       "FROM bench_notification WHERE status = 'folded' ORDER BY id LIMIT %s) "
                                       "RETURNING id", [ALERTS * ROUNDS])
                        bare_ids = sorted(r[0] for r in cursor.fetchall())
                    deliveries[workers] = take_turns(
                        ROUNDS, project=_deliver_project(workers, pending(project_ids)),
                        baseline=_deliver_bare(workers, pending(bare_ids), slack.url))

                sent = Notification.objects.filter(status=NotificationStatus.SENT).count()
                with connection.cursor() as cursor:
                    cursor.execute("SELECT count(*) FROM bench_notification WHERE status = 'sent'")
                    bare_sent = cursor.fetchone()[0]
                if len(slack.messages) != sent + bare_sent:
                    raise BenchFailure(f"fake Slack got {len(slack.messages)} messages for {sent} + {bare_sent} "
                                       "rows sent: some alert went twice or not at all")
        finally:
            app.control.purge()
            broker.delete(QUEUE)

    rows = []
    for key, label in (("plain", "notify, own transaction + enqueue"), ("dedup", "notify with a new dedup key"),
                       ("used", "notify, dedup key already used")):
        p, b = _rate(queue[key]["project"]), _rate(queue[key]["baseline"])
        rows.append(Row("notify", label, f"{p:,.0f} alerts/s", f"{b:,.0f} inserts/s", p / b, "report", None))
    for workers in (1, WORKERS):
        p, b = _rate(deliveries[workers]["project"]), _rate(deliveries[workers]["baseline"])
        rows.append(Row("notify", f"deliver to Slack, {workers} worker{'s racing' if workers > 1 else ''}",
                        f"{p:,.0f} alerts/s", f"{b:,.0f} bare deliveries/s", p / b, "report", None,
                        note=f"{sent:,} sent, none twice" if workers > 1 else ""))
    return rows
