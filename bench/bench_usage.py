"""Usage metering on PostgreSQL behind gunicorn (sync workers): batch ingestion (1,000
events a request), the usage summary at COMPANIES companies and EVENTS events, and the
nightly monitor's scan (dry run) at COMPANIES_BIG companies. Single-event ingestion is
bench_ingest's. Sizes: BENCH_USAGE_BATCHES (requests of 1,000 events, default 120),
BENCH_USAGE_BATCH_SIZE (default 1,000), BENCH_USAGE_EVENTS (default 10,000,000),
BENCH_USAGE_COMPANIES (default 10,000), BENCH_USAGE_COMPANIES_BIG (default 100,000),
BENCH_USAGE_ROUNDS (default 3), BENCH_USAGE_SECONDS (summary wrk turn, default 5),
BENCH_USAGE_CONNECTIONS (default 4)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

from benchdb import (
    Request,
    bench_database,
    check_status,
    gunicorn,
    http_client,
    merge,
    size,
    take_turns,
    warm_up,
    wrk,
)
from table import BenchFailure, Row

BASELINE = (
    "Batch ingestion: `COPY` of the same number of rows, same columns, into a table made "
    "`LIKE usage_usageevent INCLUDING ALL` (the same indexes, the unique event key among them) with "
    "the same foreign keys added (company, feature, API key), followed in the same transaction by the "
    "counter roll-up (`INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE` of the sums into a table "
    "made `LIKE usage_usagecounter`, its foreign keys too); one connection. It takes turns with the "
    "project's `POST /api/v1/usage/events/` (3 keep-alive Python clients, 1,000 events a request, "
    "every answer must be 200). The project's event table may be partitioned by month; the COPY "
    "target is one plain table. Summary: the yardstick server (`bench/yardstick_wsgi.py`, same "
    "gunicorn, same BENCH_WORKERS) answers `GET /summary` with one indexed read of the company's counters; "
    "wrk loads it and `GET /api/v1/usage/summary/` in turns with the same 50 companies' keys. "
    "Monitor: the bare SQL read of the same counters joined with companies and tier limits at the "
    "80 % level, taking turns with `usage_monitor_run(dry_run=True)`."
)
BATCHES = size("BENCH_USAGE_BATCHES", 120)
BATCH_SIZE = size("BENCH_USAGE_BATCH_SIZE", 1000)
EVENTS = size("BENCH_USAGE_EVENTS", 10_000_000)
COMPANIES = size("BENCH_USAGE_COMPANIES", 10_000)
COMPANIES_BIG = size("BENCH_USAGE_COMPANIES_BIG", 100_000)
ROUNDS = size("BENCH_USAGE_ROUNDS", 3)
SECONDS = size("BENCH_USAGE_SECONDS", 5)
CONNECTIONS = size("BENCH_USAGE_CONNECTIONS", 4)
CLIENTS = 3
FEATURES = ("quotes", "bulk_jobs", "directory_invites")
SUMMARY_P99_MS = 20.0
MONITOR_GOAL_S = 10.0


def _copy_fks(cursor, source: str, target: str) -> int:
    cursor.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
                   "AND contype = 'f' ORDER BY conname", [source])
    defs = [d for (d,) in cursor.fetchall()]
    for i, definition in enumerate(defs):
        cursor.execute(f"ALTER TABLE {target} ADD CONSTRAINT {target}_fk_{i} {definition}")
    return len(defs)


def bench_batch(base: str, secret: str, key_id: str, company_id: int, period_start: datetime) -> Row:
    from django.db import connection, transaction

    per_round = max(1, BATCHES // ROUNDS)
    headers = {"Authorization": f"Api-Key {secret}", "Content-Type": "application/json"}
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_copy (LIKE usage_usageevent INCLUDING ALL)")
        cursor.execute("CREATE TABLE bench_counter (LIKE usage_usagecounter INCLUDING ALL)")
        fks = _copy_fks(cursor, "usage_usageevent", "bench_copy") + _copy_fks(cursor, "usage_usagecounter",
                                                                               "bench_counter")
        cursor.execute("SELECT code, id FROM billing_feature WHERE code = ANY(%s)", [list(FEATURES)])
        feature_ids = dict(cursor.fetchall())

    def bodies(r: int) -> list[bytes]:
        return [json.dumps({"events": [
            {"feature": FEATURES[i % 3], "quantity": 1 + i % 5, "idempotency_key": f"batch-{r}-{b}-{i}"}
            for i in range(BATCH_SIZE)]}).encode() for b in range(per_round)]

    prepared = [bodies(r) for r in range(ROUNDS)]
    with http_client(headers=headers, timeout=120) as client:  # warm-up
        check_status(client.post(f"{base}/api/v1/usage/events/",
                                 content=json.dumps({"events": [{"feature": "quotes", "idempotency_key": "warm"}]})))

    def project(r: int) -> float:
        queue = list(prepared[r])
        lock = threading.Lock()
        errors: list[BaseException] = []

        def client_thread() -> None:
            try:
                with http_client(headers=headers, timeout=120) as client:
                    while True:
                        with lock:
                            if not queue:
                                return
                            body = queue.pop()
                        check_status(client.post(f"{base}/api/v1/usage/events/", content=body),
                                     what="batch ingest")
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                errors.append(exc)

        threads = [threading.Thread(target=client_thread) for _ in range(CLIENTS)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0] if isinstance(errors[0], BenchFailure) else BenchFailure(repr(errors[0]))
        return per_round * BATCH_SIZE / (time.perf_counter() - started)

    def baseline(r: int) -> float:
        now = datetime.now(UTC)
        rows = [(company_id, feature_ids[FEATURES[i % 3]], 1 + i % 5, f"copy-{r}-{b}-{i}", "x" * 64, now, now,
                 period_start, key_id) for b in range(per_round) for i in range(BATCH_SIZE)]
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            with cursor.cursor.copy(
                "COPY bench_copy (company_id, feature_id, quantity, idempotency_key, fingerprint, occurred_at, "
                "received_at, period_start, api_key_id) FROM STDIN"
            ) as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(
                """INSERT INTO bench_counter (company_id, feature_id, period_start, period_end, used, updated_at)
                   SELECT company_id, feature_id, period_start, period_start + interval '1 month', sum(quantity), now()
                   FROM bench_copy WHERE idempotency_key LIKE %s GROUP BY company_id, feature_id, period_start
                   ON CONFLICT (company_id, feature_id, period_start)
                   DO UPDATE SET used = bench_counter.used + EXCLUDED.used, updated_at = now()""",
                [f"copy-{r}-%"],
            )
        return len(rows) / (time.perf_counter() - started)

    got = take_turns(ROUNDS, project=project, baseline=baseline)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM usage_usageevent WHERE company_id = %s "
                       "AND idempotency_key LIKE 'batch-%%'", [company_id])
        stored = cursor.fetchone()[0]
        cursor.execute("DROP TABLE bench_copy, bench_counter")
    if stored != ROUNDS * per_round * BATCH_SIZE:
        raise BenchFailure(f"{stored} batch events stored, expected {ROUNDS * per_round * BATCH_SIZE}")

    def rate(samples: list[float]) -> float:
        return len(samples) / sum(1 / s for s in samples)

    p, b = rate(got["project"]), rate(got["baseline"])
    return Row("usage", f"batch ingest, {BATCH_SIZE:,} events a request, {CLIENTS} clients",
               f"{p:,.0f} events/s", f"fair COPY + roll-up: {b:,.0f} rows/s", p / b, "≥ 0.6 of the fair COPY",
               p / b >= 0.6, note=f"{fks} foreign keys on the COPY side, events and counters")


def _make_companies(n: int, start_no: int) -> list[int]:
    from accounts.models import Company
    from billing.plans.models import Tier

    tiers = list(Tier.objects.order_by("order"))
    Company.objects.bulk_create(
        [Company(name=f"Bench {i}", slug=f"bench-{i}", tier=tiers[i % len(tiers)])
         for i in range(start_no, start_no + n)], batch_size=5000)
    return list(Company.objects.filter(slug__startswith="bench-").order_by("id").values_list("id", flat=True))


def _generate_events(company_ids: list[int], lo: int, hi: int, period_start: datetime) -> None:
    """Events spread evenly over the companies and features, written by SQL (fast)."""
    from django.db import connection

    first, n = company_ids[0], len(company_ids)
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM billing_feature WHERE code = ANY(%s) ORDER BY id", [list(FEATURES)])
        f = [r[0] for r in cursor.fetchall()]
        step = 1_000_000
        for a in range(lo, hi, step):
            cursor.execute(
                """INSERT INTO usage_usageevent (company_id, feature_id, quantity, idempotency_key, fingerprint,
                       occurred_at, received_at, period_start)
                   SELECT %s + (g %% %s), (ARRAY[%s, %s, %s])[1 + (g / %s) %% 3], 1, 'gen-' || g, 'x',
                          %s, %s, %s
                   FROM generate_series(%s, %s) g""",
                [first, n, f[0], f[1], f[2], n, period_start, period_start, period_start, a, min(hi, a + step) - 1],
            )


def _rebuild_counters(period_start: datetime, period_end: datetime) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO usage_usagecounter (company_id, feature_id, period_start, period_end, used, updated_at)
               SELECT company_id, feature_id, period_start, %s, sum(quantity), now()
               FROM usage_usageevent WHERE period_start = %s GROUP BY company_id, feature_id, period_start
               ON CONFLICT (company_id, feature_id, period_start) DO UPDATE SET used = EXCLUDED.used""",
            [period_end, period_start],
        )
        cursor.execute("ANALYZE usage_usagecounter; ANALYZE billing_company; ANALYZE usage_usageevent")


def bench_summary(project: str, yardstick: str, secrets: list[str], events: int) -> Row:
    loads = {
        "project": [Request("GET", "/api/v1/usage/summary/", {"Authorization": f"Api-Key {s}"}) for s in secrets],
        "baseline": [Request("GET", "/summary", {"Authorization": f"Api-Key {s}"}) for s in secrets],
    }
    bases = {"project": project, "baseline": yardstick}

    def load(side: str, seconds: float = SECONDS):
        return lambda r: wrk(bases[side], loads[side], connections=CONNECTIONS, seconds=seconds,
                             what=f"usage summary ({side})")

    warm_up(project, loads["project"])
    warm_up(yardstick, loads["baseline"])
    got = take_turns(ROUNDS, project=load("project"), baseline=load("baseline"))
    p, b = merge(got["project"]), merge(got["baseline"])
    return Row("usage", f"summary at {events:,} events, {len(secrets)} companies' keys, wrk {CONNECTIONS} "
               "connections", p.text(), b.text(), p.rate / b.rate, f"p99 ≤ {SUMMARY_P99_MS:.0f} ms",
               p.p99_ms <= SUMMARY_P99_MS)


def bench_monitor(companies: int) -> Row:
    from django.db import connection

    from usage.monitor import usage_monitor_run

    def project(r: int) -> float:
        started = time.perf_counter()
        usage_monitor_run(dry_run=True, trigger="bench")
        return time.perf_counter() - started

    def bare(r: int) -> float:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                """SELECT c.company_id, c.feature_id, c.period_start, c.used, l.included
                   FROM usage_usagecounter c JOIN billing_company co ON co.id = c.company_id
                   JOIN billing_tierlimit l ON l.tier_id = co.tier_id AND l.feature_id = c.feature_id
                   WHERE c.period_end > now() - interval '2 days' AND l.included IS NOT NULL
                     AND c.used * 100 >= l.included * 80
                   ORDER BY c.company_id, c.feature_id, c.period_start"""
            )
            cursor.fetchall()
        return time.perf_counter() - started

    got = take_turns(ROUNDS, project=project, bare=bare)
    p, b = max(got["project"]), max(got["bare"])
    return Row("usage", f"monitor scan (dry run), {companies:,} companies", f"{p:.2f} s (worst of {ROUNDS})",
               f"bare SQL read: {b:.2f} s", p / b, f"≤ {MONITOR_GOAL_S:.0f} s", p <= MONITOR_GOAL_S)


def _zero_counters_for(company_ids: list[int], period_start: datetime, period_end: datetime) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO usage_usagecounter (company_id, feature_id, period_start, period_end, used, updated_at)
               SELECT c.id, f.id, %s, %s, 1 + (c.id %% 5), now()
               FROM billing_company c CROSS JOIN billing_feature f WHERE c.id = ANY(%s)
               ON CONFLICT DO NOTHING""",
            [period_start, period_end, company_ids],
        )
        cursor.execute("ANALYZE usage_usagecounter; ANALYZE billing_company")


def main() -> list[Row]:
    rows: list[Row] = []
    with bench_database() as db_name:
        from accounts.models import Company, CompanyAPIKey
        from accounts.selectors import company_period

        home = Company.objects.create(name="Ingest Co", slug="ingest-co")
        key, secret = CompanyAPIKey.objects.create_key(company=home, name="bench")
        period_start, period_end = company_period(home)
        with gunicorn(db_name, env={"USAGE_INGEST_RATE": "10000000/min"}) as project, \
                gunicorn(db_name, app="yardstick_wsgi:app") as yardstick:
            rows.append(bench_batch(project, secret, key.pk, home.pk, period_start))

            ids = _make_companies(COMPANIES, 0)
            _generate_events(ids, 0, EVENTS, period_start)
            _rebuild_counters(period_start, period_end)
            sample = list(Company.objects.filter(pk__in=ids[:: max(1, len(ids) // 50)]))
            secrets = [CompanyAPIKey.objects.create_key(company=c, name="bench")[1] for c in sample]
            rows.append(bench_summary(project, yardstick, secrets, EVENTS))

        more = _make_companies(max(0, COMPANIES_BIG - len(ids)), len(ids))
        _zero_counters_for(more[len(ids):], period_start, period_end)
        rows.append(bench_monitor(len(more)))
    return rows
