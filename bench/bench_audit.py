"""Audit appends per second, one writer and eight concurrent writers, chain verified after.

Each append is its own transaction (the realistic case: one audited action each).
"""

from __future__ import annotations

import threading
import time

from benchdb import bench_database

SINGLE = 3000
THREADS, PER_THREAD = 8, 750


def _append(n: int, label: str) -> None:
    from audit.services import Actor, audit_record

    for i in range(n):
        audit_record(action="bench.append", actor=Actor.system(label), details={"i": i})


def main() -> None:
    with bench_database():
        from django.db import connection

        from audit.models import AuditLog
        from audit.selectors import audit_verify_chain

        print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
        _append(100, "warmup")

        # Baseline: the cheapest durable write there is, a one-row INSERT committed alone.
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE bench_floor (n int)")
            started = time.perf_counter()
            for i in range(SINGLE):
                cursor.execute("INSERT INTO bench_floor VALUES (%s)", [i])
            floor = SINGLE / (time.perf_counter() - started)
            cursor.execute("DROP TABLE bench_floor")
        print(f"baseline:        {floor:8.0f} bare one-row INSERT commits/s")

        started = time.perf_counter()
        _append(SINGLE, "single")
        single = SINGLE / (time.perf_counter() - started)
        print(f"single writer:   {single:8.0f} appends/s ({SINGLE} appends, {single / floor:.2f}x the baseline)")

        def worker(n: int) -> None:
            try:
                _append(PER_THREAD, f"writer-{n}")
            finally:
                connection.close()

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        concurrent = THREADS * PER_THREAD / (time.perf_counter() - started)
        print(f"{THREADS} writers:       {concurrent:8.0f} appends/s ({THREADS * PER_THREAD} appends)")

        started = time.perf_counter()
        result = audit_verify_chain()
        verify = result.checked / (time.perf_counter() - started)
        total = AuditLog.objects.count()
        print(f"chain intact: {result.ok} ({result.checked} of {total} records), verify {verify:,.0f} records/s")
        assert result.ok and result.checked == total
