"""Usage metering on PostgreSQL behind gunicorn: batch and single-event ingestion (with
a raw COPY of the same rows as the yardstick), the usage summary at 10,000 companies and
10 million events, and the nightly monitor at 10,000 and 100,000 companies.

Sizes can be lowered for a quick look: BENCH_USAGE_EVENTS, BENCH_USAGE_COMPANIES,
BENCH_USAGE_COMPANIES_BIG. Run: ``make bench BENCH=usage``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from benchdb import bench_database, describe, start_gunicorn

EVENTS = int(os.environ.get("BENCH_USAGE_EVENTS", 10_000_000))
COMPANIES = int(os.environ.get("BENCH_USAGE_COMPANIES", 10_000))
COMPANIES_BIG = int(os.environ.get("BENCH_USAGE_COMPANIES_BIG", 100_000))
BATCHES, BATCH_CLIENTS = 120, 3
SINGLE_CLIENTS, SINGLE_PER_CLIENT = 16, 250
ROOT = Path(__file__).resolve().parent.parent


def _run_threads(n: int, target) -> float:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def bench_ingestion(base: str, secret: str, company_id: int) -> None:
    import httpx
    from django.db import connection

    bodies = [
        json.dumps({"events": [
            {"feature": ("quotes", "bulk_jobs", "directory_invites")[i % 3], "quantity": 1 + i % 5,
             "idempotency_key": f"batch-{b}-{i}"}
            for i in range(1000)
        ]}).encode()
        for b in range(BATCHES)
    ]
    headers = {"Authorization": f"Api-Key {secret}", "Content-Type": "application/json"}
    statuses: list[int] = []

    def batch_client(n: int) -> None:
        with httpx.Client(headers=headers, timeout=60) as client:
            for body in bodies[n::BATCH_CLIENTS]:
                statuses.append(client.post(f"{base}/api/v1/usage/events/", content=body).status_code)

    # warm-up
    with httpx.Client(headers=headers) as client:
        client.post(f"{base}/api/v1/usage/events/", content=json.dumps(
            {"events": [{"feature": "quotes", "idempotency_key": "warm"}]}))
    elapsed = _run_threads(BATCH_CLIENTS, batch_client)
    rate = BATCHES * 1000 / elapsed
    assert set(statuses) == {200}, set(statuses)
    print(f"batch ingestion: {rate:,.0f} events/s ({BATCHES} requests x 1,000 events, "
          f"{BATCH_CLIENTS} clients, {elapsed:.2f} s)")

    # The yardstick: COPY of the same rows into a same-shaped table (same unique index).
    now = datetime.now(UTC)
    rows = [
        (company_id, 1 + i % 3, 1 + i % 5, f"copy-{b}-{i}", "x" * 32, now, now, now)
        for b in range(BATCHES) for i in range(1000)
    ]
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_copy (LIKE usage_usageevent INCLUDING ALL)")
        started = time.perf_counter()
        with cursor.cursor.copy(
            "COPY bench_copy (company_id, feature_id, quantity, idempotency_key, fingerprint, "
            "occurred_at, received_at, period_start) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)
        copy_rate = len(rows) / (time.perf_counter() - started)
        cursor.execute("DROP TABLE bench_copy")
    print(f"raw COPY of the same rows: {copy_rate:,.0f} rows/s -> ingestion is {rate / copy_rate:.0%} of COPY")

    latencies: list[float] = []
    codes: list[int] = []

    def single_client(n: int) -> None:
        with httpx.Client(headers=headers, timeout=30) as client:
            for i in range(SINGLE_PER_CLIENT):
                body = json.dumps({"events": [{"feature": "quotes", "idempotency_key": f"s-{n}-{i}"}]})
                started = time.perf_counter()
                r = client.post(f"{base}/api/v1/usage/events/", content=body)
                latencies.append((time.perf_counter() - started) * 1000)
                codes.append(r.status_code)

    elapsed = _run_threads(SINGLE_CLIENTS, single_client)
    assert set(codes) == {200}, set(codes)
    print(f"single-event requests, {SINGLE_CLIENTS} Python client threads: {len(codes) / elapsed:,.0f} requests/s; "
          f"{describe(latencies)}")
    if shutil.which("wrk"):
        # The same load from a C client, so the generator takes less of the 2 cores.
        out = subprocess.run(
            ["wrk", "-t2", f"-c{SINGLE_CLIENTS}", "-d10s", "-s", str(ROOT / "bench" / "wrk_single_event.lua"),
             "-H", f"Authorization: {headers['Authorization']}", "-H", "Content-Type: application/json",
             base],
            capture_output=True, text=True, check=True,
        ).stdout
        stats = dict(item.split("=") for item in out.split("WRK ", 1)[1].split())
        rate = int(stats["requests"]) / (int(stats["duration_us"]) / 1e6)
        print(f"single-event requests, wrk {SINGLE_CLIENTS} connections: {rate:,.0f} requests/s; "
              f"p50 {int(stats['p50_us']) / 1000:.2f} ms, p99 {int(stats['p99_us']) / 1000:.2f} ms, "
              f"non-2xx {stats['non2xx']}")
    else:
        print("single-event requests with wrk: skipped (apt-get install wrk)")


def _make_companies(n: int, start_no: int) -> list[int]:
    from accounts.models import Company
    from billing.plans.models import Tier

    tiers = list(Tier.objects.order_by("order"))
    objs = [
        Company(name=f"Bench {i}", slug=f"bench-{i}", tier=tiers[i % len(tiers)])
        for i in range(start_no, start_no + n)
    ]
    Company.objects.bulk_create(objs, batch_size=5000)
    return list(Company.objects.filter(slug__startswith="bench-").order_by("id").values_list("id", flat=True))


def _generate_events(company_ids: list[int], lo: int, hi: int, period_start: datetime) -> None:
    """Events spread evenly over the companies and features, written by SQL (fast)."""
    from django.db import connection

    first, n = company_ids[0], len(company_ids)
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM billing_feature WHERE code IN ('quotes','bulk_jobs','directory_invites') "
                       "ORDER BY id")
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
        # 1 % of companies over a limit, 1 % at warning level (the first night's work).
        cursor.execute(
            """UPDATE usage_usagecounter c SET used = CASE WHEN c.company_id % 100 = 0
                      THEN l.included * 13 / 10 ELSE l.included * 85 / 100 END
               FROM billing_company co, billing_tierlimit l
               WHERE co.id = c.company_id AND l.tier_id = co.tier_id AND l.feature_id = c.feature_id
                 AND l.included IS NOT NULL AND c.company_id % 100 IN (0, 1)"""
        )
        cursor.execute("ANALYZE usage_usagecounter; ANALYZE billing_company; ANALYZE usage_usageevent")


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


def _time_monitor(label: str, *, dry_run: bool) -> None:
    from usage.monitor import usage_monitor_run

    started = time.perf_counter()
    run = usage_monitor_run(dry_run=dry_run, trigger="bench")
    elapsed = time.perf_counter() - started
    print(f"monitor {label}: {elapsed:.2f} s ({'dry run' if dry_run else 'run'}; {run.companies_scanned:,} "
          f"companies, {run.warnings:,} warning, {run.breaches:,} over, {run.new_tasks:,} new tasks)")


def bench_summary(base: str, secrets: list[str]) -> None:
    import httpx

    latencies: list[float] = []
    with httpx.Client(timeout=30) as client:
        for i in range(2000):
            started = time.perf_counter()
            r = client.get(f"{base}/api/v1/usage/summary/",
                           headers={"Authorization": f"Api-Key {secrets[i % len(secrets)]}"})
            latencies.append((time.perf_counter() - started) * 1000)
            assert r.status_code == 200, r.text
    print(f"summary over HTTP (one client, {len(secrets)} companies' keys): {describe(latencies)}")


def main() -> None:
    with bench_database() as db_name:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from accounts.models import Company, CompanyAPIKey
        from accounts.selectors import company_period
        from usage.selectors import usage_summary

        print(f"database: {connection.vendor} {db_name}")
        home = Company.objects.create(name="Ingest Co", slug="ingest-co")
        _, secret = CompanyAPIKey.objects.create_key(company=home, name="bench")
        proc, base = start_gunicorn(db_name, env={"USAGE_INGEST_RATE": "10000000/min"})
        try:
            bench_ingestion(base, secret, home.pk)

            period_start, period_end = company_period(home)
            ids = _make_companies(COMPANIES, 0)
            started = time.perf_counter()
            _generate_events(ids, 0, EVENTS // 10, period_start)
            _rebuild_counters(period_start, period_end)
            print(f"generated {EVENTS // 10:,} events for {len(ids):,} companies in "
                  f"{time.perf_counter() - started:.0f} s")
            _time_monitor(f"{len(ids):,} companies, {EVENTS // 10:,} events", dry_run=True)

            started = time.perf_counter()
            _generate_events(ids, EVENTS // 10, EVENTS, period_start)
            _rebuild_counters(period_start, period_end)
            print(f"generated {EVENTS - EVENTS // 10:,} more events in {time.perf_counter() - started:.0f} s")
            _time_monitor(f"{len(ids):,} companies, {EVENTS:,} events", dry_run=True)
            _time_monitor(f"{len(ids):,} companies, {EVENTS:,} events, first night", dry_run=False)
            _time_monitor(f"{len(ids):,} companies, {EVENTS:,} events, next night", dry_run=False)

            companies = list(Company.objects.filter(pk__in=ids[:: max(1, len(ids) // 50)]))
            secrets = [CompanyAPIKey.objects.create_key(company=c, name="bench")[1] for c in companies]
            company = Company.objects.select_related("tier").get(pk=ids[1])
            with CaptureQueriesContext(connection) as ctx:
                usage_summary(company=company)
            print(f"summary queries: {len(ctx.captured_queries)} (in-process; plus the key lookup over HTTP)")
            bench_summary(base, secrets)

            more = _make_companies(COMPANIES_BIG - len(ids), len(ids))
            _zero_counters_for(more[len(ids):], period_start, period_end)
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE usage_usagecounter; ANALYZE billing_company")
            _time_monitor(f"{len(more):,} companies", dry_run=True)
            _time_monitor(f"{len(more):,} companies, next night", dry_run=False)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            connection.close()
