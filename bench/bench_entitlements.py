"""The entitlement check over HTTP (gunicorn, PostgreSQL): ``POST /api/v1/entitlements/check/``
and ``GET /api/v1/entitlements/`` latency from one client, with counters in place and a
contract override in force; the in-process query count. Aim: check p99 <= 5 ms.
Run: ``make bench BENCH=entitlements``.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

from benchdb import bench_database, describe, start_gunicorn

REQUESTS = int(os.environ.get("BENCH_ENTITLEMENT_REQUESTS", 2000))


def main() -> None:
    with bench_database() as db_name:
        import httpx
        from django.db import connection
        from django.test.utils import CaptureQueriesContext
        from django.utils import timezone

        from accounts.models import Company, CompanyAPIKey
        from accounts.selectors import company_period
        from billing.plans.models import EntitlementOverride, Feature, LimitMode, Tier, TierLimit
        from usage.models import UsageCounter
        from usage.selectors import entitlement_check, entitlement_standings

        print(f"database: {connection.vendor} {db_name}")
        starter = Tier.objects.get(code="starter")
        TierLimit.objects.filter(tier=starter, feature__code="bulk_jobs").update(mode=LimitMode.HARD)
        company = Company.objects.create(name="Check Co", slug="check-co", tier=starter)
        _, secret = CompanyAPIKey.objects.create_key(company=company, name="bench")
        start, end = company_period(company)
        for feature in Feature.objects.all():
            UsageCounter.objects.create(
                company=company, feature=feature, period_start=start, period_end=end, used=7, updated_at=start
            )
        EntitlementOverride.objects.create(
            company=company, feature=Feature.objects.get(code="quotes"), included=5_000, mode=LimitMode.CAPPED,
            overage_unit_price=2, overage_cap=10_000, starts_at=timezone.now() - timedelta(days=1),
        )
        with CaptureQueriesContext(connection) as ctx:
            entitlement_check(standing=entitlement_standings(company=company)["bulk_jobs"], quantity=1)
        print(f"check queries: {len(ctx.captured_queries)} (in-process; plus the key lookup over HTTP)")

        proc, base = start_gunicorn(db_name)
        try:
            headers = {"Authorization": f"Api-Key {secret}"}
            with httpx.Client(timeout=30) as client:
                for label, call in [
                    ("check", lambda: client.post(f"{base}/api/v1/entitlements/check/", headers=headers,
                                                  json={"feature": "bulk_jobs", "quantity": 1})),
                    ("list", lambda: client.get(f"{base}/api/v1/entitlements/", headers=headers)),
                    ("yardstick: usage summary", lambda: client.get(f"{base}/api/v1/usage/summary/", headers=headers)),
                ]:
                    for _ in range(50):
                        call()  # warm-up
                    latencies: list[float] = []
                    for _ in range(REQUESTS):
                        started = time.perf_counter()
                        r = call()
                        latencies.append((time.perf_counter() - started) * 1000)
                        assert r.status_code == 200, r.text
                    print(f"entitlements {label} over HTTP (one client): {describe(latencies)}")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            connection.close()
