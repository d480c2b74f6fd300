"""The nightly monitor's first night: BENCH_CROSSINGS (default 10,000) new threshold
crossings found in one run, each recorded with its audit record and owners' e-mail in the
outbox, each breach with its ops task, ops alert and the task's own audit record. Half the
counters are at 90 % of their limit (the 80 % level), half at 130 % with 80 % recorded
already (the 100 % level, a breach). Rounds: BENCH_CROSSINGS_ROUNDS (default 2)."""

from __future__ import annotations

import time

from benchdb import bench_database, size, take_turns
from table import BenchFailure, Row

BASELINE = (
    "The floor writes the same rows the run leaves behind — one crossing per counter, the "
    "ops tasks, the outbox alerts and the audit records (same counts) — into tables made "
    "with `CREATE TABLE … (LIKE … INCLUDING ALL)` (the same indexes and unique constraints), "
    "as multi-row INSERTs of 1,000 rows, in one transaction, with no reading, no deciding "
    "and no audit chain. The monitor run and the floor take turns; between turns the run's "
    "crossings, tasks and alerts are deleted and the floor tables truncated."
)
CROSSINGS = size("BENCH_CROSSINGS", 10_000)
ROUNDS = size("BENCH_CROSSINGS_ROUNDS", 2)
GOAL_SECONDS = 10.0
CHUNK = 1000


def _build(n_companies: int) -> tuple[int, int]:
    """Companies on Starter, one owner each, two counters each: quotes at 90 % of 1,000,
    bulk jobs at 130 % of 10 (with its 80 % crossing recorded, as ingestion would have)."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from accounts.models import Company, Membership
    from accounts.selectors import company_period
    from billing.plans.models import Feature, Tier
    from usage.models import ThresholdCrossing, UsageCounter

    starter = Tier.objects.get(code="starter")
    features = {f.code: f for f in Feature.objects.all()}
    User = get_user_model()
    now = timezone.now()
    companies = Company.objects.bulk_create(
        [Company(name=f"Bench {i:05d}", slug=f"bench-{i:05d}", tier=starter) for i in range(n_companies)],
        batch_size=CHUNK,
    )
    users = User.objects.bulk_create(
        [
            User(username=f"bench-owner-{i:05d}", email=f"owner{i}@bench.example", password="!")
            for i in range(n_companies)
        ],
        batch_size=CHUNK,
    )
    Membership.objects.bulk_create(
        [Membership(user=u, company=c, role="owner") for u, c in zip(users, companies, strict=True)], batch_size=CHUNK
    )
    start, end = company_period(companies[0], now)
    counters, seen = [], []
    for c in companies:
        counters.append(UsageCounter(company=c, feature=features["quotes"], period_start=start, period_end=end,
                                     used=900, updated_at=now))
        counters.append(UsageCounter(company=c, feature=features["bulk_jobs"], period_start=start, period_end=end,
                                     used=13, updated_at=now))
        seen.append(ThresholdCrossing(company=c, feature=features["bulk_jobs"], period_start=start, level=80,
                                      used=8, included=10, source="ingest", created_at=now))
    UsageCounter.objects.bulk_create(counters, batch_size=CHUNK)
    ThresholdCrossing.objects.bulk_create(seen, batch_size=CHUNK)
    return len(counters), len(seen)


def _reset(marks: tuple[int, int]) -> None:
    """Undo a monitor run: its crossings, tasks and alerts (audit records are append-only
    and stay; the chain only grows)."""
    from ops.models import Notification, OpsTask
    from usage.models import ThresholdCrossing

    ThresholdCrossing.objects.filter(source="monitor").delete()
    OpsTask.objects.filter(pk__gt=marks[0]).delete()
    Notification.objects.filter(pk__gt=marks[1]).delete()


def _run_monitor(expected: dict[str, int]) -> float:
    from audit.models import AuditLog
    from ops.models import Notification, OpsTask
    from usage.models import ThresholdCrossing
    from usage.monitor import usage_monitor_run

    audits = AuditLog.objects.count()
    started = time.perf_counter()
    run = usage_monitor_run(trigger="bench")
    seconds = time.perf_counter() - started
    got = {
        "crossings": ThresholdCrossing.objects.filter(source="monitor").count(),
        "tasks": OpsTask.objects.filter(kind="usage.breach").count(),
        "alerts": Notification.objects.filter(kind__in=["usage.breach", "usage.warning"]).count(),
        "audits": AuditLog.objects.count() - audits,
    }
    if run.status != "succeeded" or run.missed_by_ingest != expected["crossings"] or got != expected:
        raise BenchFailure(f"monitor run {run.status}: missed {run.missed_by_ingest}, wrote {got}, expected {expected}")
    return seconds


_FLOOR_TABLES = {
    "bench_crossing": "usage_thresholdcrossing",
    "bench_task": "ops_opstask",
    "bench_alert": "ops_notification",
    "bench_audit": "audit_auditlog",
}


def _insert(cursor, table: str, columns: str, row: str, params: list[tuple], n: int) -> None:
    """``n`` rows as multi-row INSERTs of CHUNK rows (``row`` is one row's VALUES tuple)."""
    for lo in range(0, n, CHUNK):
        count = min(n, lo + CHUNK) - lo
        sql = f"INSERT INTO {table} ({columns}) VALUES " + ",".join([row] * count)  # noqa: S608 (constants)
        cursor.execute(sql, [v for p in params[lo : lo + count] for v in p])


def _floor(expected: dict[str, int]) -> float:
    """The same rows, inserted as plainly as PostgreSQL takes them."""
    from django.db import connection, transaction

    n_cross, n_tasks, n_alerts, n_audits = (expected[k] for k in ("crossings", "tasks", "alerts", "audits"))
    crossings = [(i,) for i in range(n_cross)]
    tasks = [("Bench used 13 of 10 jobs (130 %) in the period.", f"usage.100:{i}") for i in range(n_tasks)]
    alerts = [("Bench has used 13 of 10 jobs this billing period. " * 4, f"a:{i}") for i in range(n_alerts)]
    audits = [(i, "0" * 64, f"{i:064x}", '{"feature": "bulk_jobs", "level": 100}') for i in range(n_audits)]
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        _insert(
            cursor, "bench_crossing",
            "company_id, feature_id, period_start, level, used, included, notified, source, run_id, created_at",
            "(%s, 1, now(), 100, 13, 10, true, 'monitor', NULL, now())", crossings, n_cross,
        )
        _insert(
            cursor, "bench_task",
            "kind, title, details, severity, status, target_object_id, dedup_key, created_at, updated_at, "
            "resolution_note",
            "('usage.breach', 'Bench exceeded its bulk jobs limit', %s, 'high', 'open', '', %s, now(), now(), '')",
            tasks, n_tasks,
        )
        _insert(
            cursor, "bench_alert",
            "kind, severity, title, text, link, fields, dedup_key, slack_status, email_to, email_status, status, "
            "attempts, next_attempt_at, give_up_at, last_error, created_at, is_summary",
            "('usage.breach', 'critical', 'You have exceeded your bulk jobs limit', %s, '', '{}', %s, 'none', "
            "'[\"owner@bench.example\"]', 'pending', 'pending', 0, now(), now(), '', now(), false)",
            alerts, n_alerts,
        )
        _insert(
            cursor, "bench_audit",
            "seq, prev_hash, hash, created_at, actor_type, actor_label, action, target_type, target_id, "
            "target_repr, company_name, details, request_id, ip",
            "(%s, %s, %s, now(), 'system', 'usage-monitor', 'usage.threshold.exceeded', 'usage.thresholdcrossing', "
            "'1', 'Bench bulk jobs 100 %%', 'Bench', %s, '', NULL)",
            audits, n_audits,
        )
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE " + ", ".join(_FLOOR_TABLES))
    return seconds


def main() -> list[Row]:
    with bench_database():
        from django.db import connection

        from ops.models import Notification, OpsTask

        companies = max(1, CROSSINGS // 2)
        counters, _ = _build(companies)
        # Per company: quotes 80 % (owners' e-mail, audit) and bulk jobs 100 % (owners'
        # e-mail, ops alert, ops task, audit, the task's audit).
        expected = {
            "crossings": counters,
            "tasks": companies,
            "alerts": 3 * companies,
            "audits": 3 * companies,
        }
        with connection.cursor() as cursor:
            for floor, table in _FLOOR_TABLES.items():
                cursor.execute(f"CREATE TABLE {floor} (LIKE {table} INCLUDING ALL)")
        marks = (
            OpsTask.objects.order_by("-pk").values_list("pk", flat=True).first() or 0,
            Notification.objects.order_by("-pk").values_list("pk", flat=True).first() or 0,
        )

        def monitor_turn(r: int) -> float:
            seconds = _run_monitor(expected)
            _reset(marks)
            return seconds

        turns = take_turns(ROUNDS, monitor=monitor_turn, floor=lambda r: _floor(expected))
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE " + ", ".join(_FLOOR_TABLES))

    best_run, best_floor = min(turns["monitor"]), min(turns["floor"])
    runs = ", ".join(f"{s:.1f} s" for s in turns["monitor"])
    return [
        Row(
            "crossings",
            f"first night: {expected['crossings']:,} new crossings",
            f"{best_run:.1f} s (runs: {runs})",
            f"{best_floor:.2f} s bare inserts of the same rows",
            best_run / best_floor,
            f"≤ {GOAL_SECONDS:g} s",
            best_run <= GOAL_SECONDS,
            note=f"{expected['tasks']:,} tasks, {expected['alerts']:,} alerts, {expected['audits']:,} audit records",
        )
    ]

