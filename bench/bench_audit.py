"""Audit appends per second, one writer and eight, each append its own transaction (the
worst case: in real use the record rides in the transaction of the action it records);
the chain is verified after. Sizes: BENCH_AUDIT_APPENDS (per turn, default 1,000),
BENCH_AUDIT_ROUNDS (default 3)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from benchdb import bench_database, size, take_turns
from table import BenchFailure, Row

BASELINE = (
    "The floor is a one-row INSERT of the same columns into a table made with "
    "`CREATE TABLE … (LIKE audit_auditlog INCLUDING ALL)` — the same indexes (seq unique, "
    "created_at, action, target, company) but no chain and no append-only trigger — each "
    "committed alone over one Django connection, the same way an append is. Appends "
    "(`audit_record`, its own transaction) and floor inserts take turns in blocks of "
    "BENCH_AUDIT_APPENDS; eight writers are measured the same way with eight threads each."
)
APPENDS = size("BENCH_AUDIT_APPENDS", 1000)
ROUNDS = size("BENCH_AUDIT_ROUNDS", 3)
WRITERS = 8
_seq = iter(range(10**12))


def _append(n: int, label: str) -> None:
    from audit.services import Actor, audit_record

    for i in range(n):
        audit_record(action="bench.append", actor=Actor.system(label), details={"i": i})


def _floor(n: int, label: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for i in range(n):
            cursor.execute(
                """INSERT INTO bench_floor (seq, created_at, actor_type, actor_label, action, target_type,
                       target_id, target_repr, company_name, details, request_id, prev_hash, hash)
                   VALUES (%s, now(), 'system', %s, 'bench.append', '', '', '', '', %s, '', %s, %s)""",
                [next(_seq), label, f'{{"i": {i}}}', "0" * 64, "f" * 64],
            )


def _threads(n: int, work: Callable[[int, str], None], per: int) -> float:
    from django.db import connection

    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            work(per, f"writer-{k}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise BenchFailure(f"a writer failed: {errors[0]!r}")
    return n * per / (time.perf_counter() - started)


def _timed(work: Callable[[int, str], None], n: int) -> float:
    started = time.perf_counter()
    work(n, "single")
    return n / (time.perf_counter() - started)


def main() -> list[Row]:
    with bench_database():
        from django.db import connection

        from audit.models import AuditLog
        from audit.selectors import audit_verify_chain

        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE bench_floor (LIKE audit_auditlog INCLUDING ALL)")
        _append(100, "warmup")
        _floor(100, "warmup")

        one = take_turns(ROUNDS, append=lambda r: _timed(_append, APPENDS), floor=lambda r: _timed(_floor, APPENDS))
        per = max(1, APPENDS // WRITERS)
        many = take_turns(ROUNDS, append=lambda r: _threads(WRITERS, _append, per),
                          floor=lambda r: _threads(WRITERS, _floor, per))

        result = audit_verify_chain()
        total = AuditLog.objects.count()
        if not (result.ok and result.checked == total):
            raise BenchFailure(f"audit chain broken after the run: {result}")
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE bench_floor")

    def rate(samples: list[float]) -> float:
        # Total work over total time: every turn did the same number of writes.
        return len(samples) / sum(1 / s for s in samples)

    a1, f1 = rate(one["append"]), rate(one["floor"])
    a8, f8 = rate(many["append"]), rate(many["floor"])
    return [
        Row("audit", "append, 1 writer", f"{a1:,.0f} appends/s", f"{f1:,.0f} indexed inserts/s",
            a1 / f1, "≥ 0.75 of the indexed insert", a1 / f1 >= 0.75),
        Row("audit", f"append, {WRITERS} writers", f"{a8:,.0f} appends/s", f"{f8:,.0f} indexed inserts/s",
            a8 / f8, "report (writers queue on the chain head)", None,
            note=f"chain verified: {total:,} records"),
    ]
