"""Single-event ingest: ``POST /api/v1/usage/events/`` with one event per request, each
with a new idempotency key, under wrk with 16 connections, against the bare WSGI
yardstick (``bare_wsgi.py``: gunicorn -w 3, the same INSERT … ON CONFLICT and counter
upsert in one autocommit statement on psycopg, served the same way). The two take turns
(``BENCH_INGEST_ROUNDS`` rounds of ``BENCH_INGEST_SECONDS`` each, after a warm-up), in a
database of the bench's own; the routing state and the bench's counters in Redis are
cleared before and after. Any answer but 2xx (3xx included), or a stored row count that
does not match the 2xx count, fails the run.

Goal (issue #13): ≥ 0.5 of the yardstick's requests per second and p99 ≤ 25 ms.
Run: ``make bench BENCH=ingest``.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

from benchdb import (
    WrkResult,
    bench_database,
    merge,
    routing_state_clear,
    size,
    start_gunicorn,
    stop,
    take_turns,
)
from table import BenchFailure, Row

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "wrk_ingest.lua"
CONNECTIONS = 16
ROUNDS = size("BENCH_INGEST_ROUNDS", 3)
SECONDS = size("BENCH_INGEST_SECONDS", 8)
GOAL_RATIO, GOAL_P99_MS = 0.5, 25.0


def _wrk(base: str, *, secret: str, tag: str, seconds: int) -> tuple[WrkResult, int]:
    """One turn of wrk; returns the figures and the number of 2xx answers."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "-s", str(SCRIPT),
         "-H", f"Authorization: Api-Key {secret}", "-H", "Content-Type: application/json", base, "--", tag],
        capture_output=True, text=True, timeout=seconds + 60,
    )
    if out.returncode != 0 or "WRK " not in out.stdout:
        raise BenchFailure(f"wrk failed ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}")
    stats = {k: int(v) for k, v in (item.split("=") for item in out.stdout.split("WRK ", 1)[1].split())}
    bad = {k: stats[k] for k in ("s1xx", "s3xx", "s4xx", "s5xx", "errors") if stats[k]}
    if bad or not stats["s2xx"]:
        raise BenchFailure(f"{base} ({tag}): {stats['requests']} requests, unexpected answers {bad or 'no 2xx'} "
                           f"(first bad status {stats['first_bad']}); only 2xx counts")
    result = WrkResult(requests=stats["s2xx"], seconds=stats["duration_us"] / 1e6, p50_ms=stats["p50_us"] / 1000,
                       p90_ms=stats["p90_us"] / 1000, p99_ms=stats["p99_us"] / 1000)
    return result, stats["s2xx"]


def _stored(tag: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM usage_usageevent WHERE idempotency_key LIKE %s", [f"{tag}-%"])
        return cursor.fetchone()[0]


def _check_stored(tag: str, answered: int) -> None:
    """Every 2xx stored its event; at most one request per connection was cut off by the
    end of the turn after storing."""
    stored = _stored(tag)
    if not answered <= stored <= answered + CONNECTIONS:
        raise BenchFailure(f"turn {tag}: {answered} events acknowledged but {stored} stored")


def _clear_shared_state(prefix: str | None) -> None:
    """The routing state, this bench's throttle counters and the hot-path cache version
    (bumped by the bench's own writes) in the shared cache."""
    from django.core.cache import caches

    from core import hotcache

    routing_state_clear()
    backend = caches["default"]
    backend.delete(hotcache.VERSION_KEY)
    if prefix and hasattr(backend, "_cache") and hasattr(backend._cache, "get_client"):
        client = backend._cache.get_client(write=True)
        for key in client.scan_iter(match=f"*throttle_usage_ingest_key:{prefix}*"):
            client.delete(key)


def main() -> list[Row]:
    run = uuid.uuid4().hex[:6]
    routing_state_clear()
    prefix: str | None = None
    with bench_database() as db_name:
        from accounts.models import Company, CompanyAPIKey
        from accounts.selectors import company_period

        home = Company.objects.create(name="Ingest Co", slug="ingest-co")
        key, secret = CompanyAPIKey.objects.create_key(company=home, name="bench")
        prefix = key.prefix
        start, end = company_period(home)
        project, base = start_gunicorn(db_name, env={"USAGE_INGEST_RATE": "100000000/min"})
        bare, bare_base = start_gunicorn(db_name, app="bare_wsgi:app", env={
            "BARE_COMPANY_ID": str(home.pk), "BARE_API_KEY_ID": str(key.pk),
            "BARE_PERIOD_START": start.isoformat(), "BARE_PERIOD_END": end.isoformat(),
        })
        try:
            def turn(url: str, name: str, seconds: int):
                def one(r: int) -> WrkResult:
                    tag = f"{name}{run}r{r}s{seconds}"
                    result, answered = _wrk(url, secret=secret, tag=tag, seconds=seconds)
                    _check_stored(tag, answered)
                    return result
                return one

            take_turns(1, project=turn(base, "p", 2), bare=turn(bare_base, "b", 2))  # warm-up
            results = take_turns(ROUNDS, project=turn(base, "p", SECONDS), bare=turn(bare_base, "b", SECONDS))
        finally:
            stop(project)
            stop(bare)
            _clear_shared_state(prefix)
    routing_state_clear()

    ours, yardstick = merge(results["project"]), merge(results["bare"])
    ratio = ours.rate / yardstick.rate
    pairs = list(zip(results["project"], results["bare"], strict=True))
    per_turn = ", ".join(f"{p.rate:,.0f}/{b.rate:,.0f}" for p, b in pairs)
    p99s = ", ".join(f"{p.p99_ms:.1f}/{b.p99_ms:.1f}" for p, b in pairs)
    return [
        Row(
            bench="ingest",
            figure=f"single-event ingest, wrk {CONNECTIONS} connections",
            value=ours.text(),
            baseline=f"bare WSGI + psycopg: {yardstick.text()}",
            ratio=ratio,
            goal=f"≥ {GOAL_RATIO} of baseline, p99 ≤ {GOAL_P99_MS:.0f} ms",
            ok=ratio >= GOAL_RATIO and ours.p99_ms <= GOAL_P99_MS,
            note=f"{ROUNDS} turns of {SECONDS} s each, taking turns (req/s project/baseline: {per_turn}; "
                 f"p99 ms project/baseline: {p99s}); p99 is the worst turn's",
        ),
    ]


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trans_bot.settings")
    for row in main():
        print(row)
