"""Usage events at scale: 100 million events in the month-partitioned table, against the
same back office on a small table, measured in one run taking turns.

- usage summary p99 over HTTP (gunicorn, wrk with 4 connections, the load the usage bench
  reads the summary under): at 100 M events vs at the small table (goal: p99 ≤ 20 ms,
  ratio ≈ 1: the summary reads counters, never events);
- single-event ingest (one event per request, wrk, 16 connections) at 100 M events vs
  at an empty table (ratio ≈ 1: an insert touches this month's partition only);
- the table's size per 100 M events and the load rate, for the README's Scaling numbers.

The 100 M events take long to build on this machine, so they live in a database of their
own that is kept between runs: ``make bench-scale-data`` builds it (resumable, month by
month, at low priority), ``make bench-scale-clean`` drops it. Without it ``make bench`` reports
the figure as not measured (FAIL) and goes on with the other benches. Sizes:
BENCH_SCALE_EVENTS (100,000,000; 2 M or fewer is a tiny run that builds and drops its own
database), BENCH_SCALE_COMPANIES (1,000), BENCH_SCALE_MONTHS (12), BENCH_SCALE_SECONDS (8),
BENCH_SCALE_ROUNDS (3), BENCH_SCALE_CONNECTIONS (16, ingest), BENCH_SCALE_SUMMARY_CONNECTIONS (4).
The database: BENCH_SCALE_DATABASE_URL, or the configured DATABASE_URL's name + ``_scale``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from table import BenchFailure, Row  # noqa: E402

EVENTS = int(os.environ.get("BENCH_SCALE_EVENTS", 100_000_000))
COMPANIES = int(os.environ.get("BENCH_SCALE_COMPANIES", 1_000))
MONTHS = int(os.environ.get("BENCH_SCALE_MONTHS", 12))
SLUG = "scale-"
CONNECTIONS = int(os.environ.get("BENCH_SCALE_CONNECTIONS", 16))
SUMMARY_CONNECTIONS = int(os.environ.get("BENCH_SCALE_SUMMARY_CONNECTIONS", 4))
ROUNDS = int(os.environ.get("BENCH_SCALE_ROUNDS", 3))  # turns taken between the big and the small database


def _scale_url() -> str:
    explicit = os.environ.get("BENCH_SCALE_DATABASE_URL")
    if explicit:
        return explicit
    base = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/transbot"))
    if not base.scheme.startswith("postgres"):
        raise BenchFailure("bench_scale needs PostgreSQL (DATABASE_URL=postgres://...)")
    # A tiny run (a test of the bench) never touches the kept 100 M database.
    suffix = "_scale" if not _tiny() else "_scale_tiny"
    return urlunsplit(base._replace(path=base.path.rstrip("/") + suffix))


def _tiny() -> bool:
    return EVENTS <= 2_000_000


def _small_url() -> str:
    scale = urlsplit(_scale_url())
    return urlunsplit(scale._replace(path=scale.path + "_small"))


def _admin_dsn(url: str) -> tuple[str, str]:
    """(a DSN of the server's postgres database, the database name) for CREATE/DROP DATABASE."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/postgres")), parts.path.lstrip("/")


def _psql(url: str):
    import psycopg

    return psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True)


def _exists(url: str) -> bool:
    admin, name = _admin_dsn(url)
    with _psql(admin) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def _create(url: str) -> None:
    if not _exists(url):
        admin, name = _admin_dsn(url)
        with _psql(admin) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')


def _drop(url: str) -> None:
    admin, name = _admin_dsn(url)
    with _psql(admin) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _manage(url: str, *args: str) -> None:
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "false"}
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def _months(now: datetime, n: int) -> list[datetime]:
    """The n months up to and including the current one, oldest first."""
    out = []
    year, month = now.year, now.month
    for _ in range(n):
        out.append(datetime(year, month, 1, tzinfo=UTC))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out[::-1]


_SEED = """
from accounts.models import Company
from billing.plans.models import Tier
n, slug = {n}, {slug!r}
have = Company.objects.filter(slug__startswith=slug).count()
tiers = list(Tier.objects.filter(is_public=True).order_by("order"))
Company.objects.bulk_create(
    [Company(name=f"Scale {{i}}", slug=f"{{slug}}{{i}}", tier=tiers[i % len(tiers)], billing_anchor_day=1 + i % 28)
     for i in range(have, n)],
    batch_size=2000,
)
"""


def _seed_companies(url: str, n: int) -> None:
    """n companies on the public tiers in turn (``scale-2`` is on Enterprise), anchor days
    1..28 (billing periods start mid-month), made through the model in a process of their
    own (so new columns get their defaults, and this process's Django stays where it is)."""
    _manage(url, "shell", "-c", _SEED.format(n=n, slug=SLUG))


def _period_start_sql() -> str:
    """A company's billing period starting in month ``m`` (anchor day, capped at the month's end)."""
    last_day = "extract(day from (%(m)s::timestamptz + interval '1 month' - interval '1 day') AT TIME ZONE 'UTC')::int"
    return f"(%(m)s::timestamptz + make_interval(days => least(c.billing_anchor_day, {last_day}) - 1))"


def build() -> None:
    """Create (or finish) the 100 M event database; each month is one transaction, so an
    interrupted build resumes at the first month not done."""
    url = _scale_url()
    _create(url)
    _manage(url, "migrate", "--noinput", "-v0")
    now = datetime.now(UTC)
    months = _months(now, MONTHS)
    per_company = EVENTS // (COMPANIES * MONTHS)
    with _psql(url) as conn:
        try:  # the server does the work: give its backend our low priority too (root or postgres only)
            os.setpriority(os.PRIO_PROCESS, conn.info.backend_pid, os.getpriority(os.PRIO_PROCESS, 0))
        except OSError:
            pass
        conn.execute("CREATE TABLE IF NOT EXISTS bench_scale_progress (month timestamptz PRIMARY KEY, "
                     "events bigint, seconds float)")
        _seed_companies(url, COMPANIES)
        done = {row[0] for row in conn.execute("SELECT month FROM bench_scale_progress")}
        features = [row[0] for row in conn.execute("SELECT id FROM billing_feature ORDER BY id")]
        for month in months:
            if month in done:
                continue
            started = time.perf_counter()
            with conn.transaction():
                conn.execute("SET LOCAL synchronous_commit = off")
                # Bulk load of rows valid by construction: skip the per-row foreign-key
                # triggers (the ingest path under test keeps them).
                conn.execute("SET LOCAL session_replication_role = replica")
                conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
                _ensure_partition(conn, month)
                conn.execute(
                    f"""INSERT INTO usage_usageevent (company_id, feature_id, quantity, idempotency_key,
                                fingerprint, occurred_at, received_at, period_start, api_key_id)
                        SELECT c.id, (%(features)s::bigint[])[1 + g %% %(nf)s], 1 + g %% 5,
                               'ev-' || to_char(%(m)s::timestamptz, 'YYYYMM') || '-' || lpad(g::text, 8, '0'),
                               lpad(to_hex(c.id * 100000000 + g), 64, 'f'),
                               p.start + (g * interval '1 second'), p.start + (g * interval '1 second'),
                               p.start, NULL
                        FROM billing_company c
                        CROSS JOIN LATERAL (SELECT {_period_start_sql()} AS start) p
                        CROSS JOIN generate_series(1, %(per)s) g
                        WHERE c.slug LIKE %(slug)s
                        ORDER BY c.id, g""",  # noqa: S608 (no outside input)
                    {"features": features, "nf": len(features), "m": month, "per": per_company,
                     "slug": SLUG + "%"},
                )
                conn.execute(
                    """INSERT INTO usage_usagecounter (company_id, feature_id, period_start, period_end, used,
                                                       updated_at)
                       SELECT company_id, feature_id, period_start, period_start + interval '1 month',
                              sum(quantity), now()
                       FROM usage_usageevent
                       WHERE period_start >= %(m)s AND period_start < %(m)s::timestamptz + interval '1 month'
                       GROUP BY company_id, feature_id, period_start
                       ON CONFLICT (company_id, feature_id, period_start) DO UPDATE SET used = EXCLUDED.used""",
                    {"m": month},
                )
                seconds = time.perf_counter() - started
                conn.execute("INSERT INTO bench_scale_progress VALUES (%s, %s, %s)",
                             [month, per_company * COMPANIES, seconds])
            print(f"{month:%Y-%m}: {per_company * COMPANIES:,} events in {seconds:.0f} s "
                  f"({per_company * COMPANIES / seconds:,.0f} rows/s)", flush=True)
        conn.execute("VACUUM (ANALYZE) usage_usageevent")
        conn.execute("ANALYZE")
        total, size = _size(conn)
        print(f"done: {total:,} events, {size / 1e9:.1f} GB (heap + indexes)", flush=True)


def _ensure_partition(conn, month: datetime) -> None:
    name = f"usage_usageevent_p{month:%Y_%m}"
    if conn.execute("SELECT to_regclass(%s)", [name]).fetchone()[0] is None:
        end = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)
        conn.execute(
            f"CREATE TABLE {name} PARTITION OF usage_usageevent FOR VALUES FROM ('{month.isoformat()}') "
            f"TO ('{end.isoformat()}')"
        )


def _size(conn) -> tuple[int, int]:
    total = conn.execute("SELECT coalesce(sum(events), 0) FROM bench_scale_progress").fetchone()[0]
    size = conn.execute(
        """SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)), 0) FROM pg_inherits i
           WHERE i.inhparent = 'usage_usageevent'::regclass"""
    ).fetchone()[0]
    return int(total), int(size)


def clean() -> None:
    _drop(_scale_url())
    _drop(_small_url())
    print("dropped the scale databases")


def _complete(url: str) -> bool:
    if not _exists(url):
        return False
    with _psql(url) as conn:
        if conn.execute("SELECT to_regclass('bench_scale_progress')").fetchone()[0] is None:
            return False
        done = conn.execute("SELECT count(*), coalesce(sum(events), 0) FROM bench_scale_progress").fetchone()
    return done[0] >= MONTHS and done[1] >= (EVENTS // (COMPANIES * MONTHS)) * COMPANIES * MONTHS


def _build_small(scale_url: str, small_url: str) -> None:
    """The yardstick: the same companies and counters (so the same summary), no events."""
    _drop(small_url)
    _create(small_url)
    _manage(small_url, "migrate", "--noinput", "-v0")
    _seed_companies(small_url, COMPANIES)
    with _psql(scale_url) as big, _psql(small_url) as small:
        rows = big.execute(
            """SELECT co.slug, f.code, c.period_start, c.period_end, c.used
               FROM usage_usagecounter c JOIN billing_company co ON co.id = c.company_id
               JOIN billing_feature f ON f.id = c.feature_id WHERE co.slug LIKE %s""",
            [SLUG + "%"],
        ).fetchall()
        with small.cursor() as cursor:
            cursor.executemany(
                """INSERT INTO usage_usagecounter (company_id, feature_id, period_start, period_end, used, updated_at)
                   SELECT co.id, f.id, %s, %s, %s, now() FROM billing_company co, billing_feature f
                   WHERE co.slug = %s AND f.code = %s""",
                [(start, end, used, slug, code) for slug, code, start, end, used in rows],
            )
        small.execute("ANALYZE")


BENCH_COMPANY = SLUG + "2"  # on Enterprise: directory invites are unlimited, so no limit or alert interferes
FEATURE = "directory_invites"
KEY_NAME = "bench-scale"


def _make_key(url: str) -> str:
    """An API key for the bench company, written straight into the database."""
    from rest_framework_api_key.crypto import KeyGenerator

    secret, prefix, hashed = KeyGenerator().generate()
    with _psql(url) as conn:
        conn.execute(
            """INSERT INTO billing_companyapikey (id, prefix, hashed_key, created, name, revoked, company_id)
               SELECT %s, %s, %s, now(), %s, false, id FROM billing_company WHERE slug = %s""",
            [f"{prefix}.{hashed}", prefix, hashed, KEY_NAME, BENCH_COMPANY],
        )
    return secret


def _snapshot(url: str) -> dict[str, Any]:
    with _psql(url) as conn:
        counters = conn.execute(
            """SELECT c.id, c.used FROM usage_usagecounter c JOIN billing_company co ON co.id = c.company_id
               WHERE co.slug = %s""",
            [BENCH_COMPANY],
        ).fetchall()
        return {"counters": counters, "at": conn.execute("SELECT now()").fetchone()[0]}


def _restore(url: str, before: dict[str, Any], run: str) -> None:
    """Undo what the run did to the kept database: its events, counters, key, crossings and
    alerts (audit records stay: the trail is append-only)."""
    with _psql(url) as conn, conn.transaction():
        company = conn.execute("SELECT id FROM billing_company WHERE slug = %s", [BENCH_COMPANY]).fetchone()[0]
        gone = conn.execute("DELETE FROM usage_usageevent WHERE company_id = %s AND idempotency_key LIKE %s",
                            [company, run + "-%"]).rowcount
        known = dict(before["counters"])
        conn.execute("DELETE FROM usage_usagecounter WHERE company_id = %s AND NOT (id = ANY(%s))",
                     [company, list(known)])
        with conn.cursor() as cursor:
            cursor.executemany("UPDATE usage_usagecounter SET used = %s WHERE id = %s",
                               [(used, pk) for pk, used in known.items()])
        for table in ("usage_thresholdcrossing", "ops_notification", "ops_opstask"):
            if conn.execute("SELECT to_regclass(%s)", [table]).fetchone()[0] is not None:
                conn.execute(f"DELETE FROM {table} WHERE company_id = %s AND created_at >= %s",  # noqa: S608
                             [company, before["at"]])
        conn.execute("DELETE FROM billing_companyapikey WHERE company_id = %s AND name = %s", [company, KEY_NAME])
    print(f"cleaned: {gone:,} events of this run deleted from the kept database, counters restored", flush=True)


def main() -> list[Row]:
    from benchdb import Request, merge, routing_state_clear, start_gunicorn, stop, take_turns, warm_up, wrk

    scale_url, small_url = _scale_url(), _small_url()
    built_here = False
    if not _complete(scale_url):
        if not _tiny():
            # Not a broken run (the other benches go on), but nothing shown either: fails.
            missing = (f"not measured: no {EVENTS:,}-event database ({urlsplit(scale_url).path.lstrip('/')}); "
                       "run `make bench-scale-data` first (kept between runs; about an hour on 2 shared cores)")
            return [Row("scale", "usage summary and single-event ingest at 100 M events", missing,
                        goal="summary p99 ≤ 20 ms; ratios ≥ 0.8", ok=False)]
        build()
        built_here = True
    else:
        _manage(scale_url, "migrate", "--noinput", "-v0")
    _build_small(scale_url, small_url)
    with _psql(scale_url) as conn:
        total, size = _size(conn)
        load_rate = conn.execute("SELECT sum(events) / sum(seconds) FROM bench_scale_progress").fetchone()[0]
    run = f"bench-scale-{int(time.time())}"
    before = _snapshot(scale_url)
    procs = []
    try:
        routing_state_clear()
        keys = {"big": _make_key(scale_url), "small": _make_key(small_url)}
        env = {"USAGE_INGEST_RATE": "100000000/min"}
        bases = {}
        for which, url in (("big", scale_url), ("small", small_url)):
            proc, base = start_gunicorn(urlsplit(url).path.lstrip("/"), env=env)
            procs.append(proc)
            bases[which] = base
        summary = {w: [Request("GET", "/api/v1/usage/summary/", {"Authorization": f"Api-Key {keys[w]}"})]
                   for w in bases}
        for w in bases:
            warm_up(bases[w], summary[w])

        def ingest(which: str):
            def turn(r: int):
                body = '{{"events":[{{"feature":"{f}","idempotency_key":"{run}-{w}-{r}-{i}"}}]}}'
                requests = [
                    Request("POST", "/api/v1/usage/events/",
                            {"Authorization": f"Api-Key {keys[which]}", "Content-Type": "application/json"},
                            body.format(f=FEATURE, run=run, w=which, r=r, i=i))
                    for i in range(INGEST_REQUESTS)
                ]
                return wrk(bases[which], requests, connections=CONNECTIONS, seconds=SECONDS,
                           what=f"ingest ({which} table)")
            return turn

        def read(which: str):
            return lambda r: wrk(bases[which], summary[which], connections=SUMMARY_CONNECTIONS, seconds=SECONDS,
                                 what=f"summary ({which} table)")

        turns = take_turns(ROUNDS, summary_big=read("big"), summary_small=read("small"),
                           ingest_big=ingest("big"), ingest_small=ingest("small"))
        results = {name: merge(values) for name, values in turns.items()}
    finally:
        for proc in procs:
            stop(proc)
        routing_state_clear()
        if built_here:
            _drop(scale_url)
        else:
            _restore(scale_url, before, run)
        _drop(small_url)

    sb, ss, ib, isml = (results[k] for k in ("summary_big", "summary_small", "ingest_big", "ingest_small"))
    summary_ratio = sb.rate / ss.rate
    ingest_ratio = ib.rate / isml.rate
    label = f"{total / 1e6:,.0f} M events" if total >= 1e6 else f"{total:,} events"
    return [
        Row("scale", f"usage summary at {label} ({SUMMARY_CONNECTIONS} connections, gunicorn -w 3)", sb.text(),
            f"no events: {ss.text()}", summary_ratio, "p99 ≤ 20 ms; ≥ 0.8 of the empty table's rate",
            sb.p99_ms <= 20 and summary_ratio >= 0.8),
        Row("scale", f"single-event ingest at {label} ({CONNECTIONS} connections)", ib.text(),
            f"empty table: {isml.text()}", ingest_ratio, "≥ 0.8 of the empty table's rate", ingest_ratio >= 0.8),
        Row("scale", f"table size at {label} (heap + indexes, {MONTHS} monthly partitions)",
            f"{size / 1e9:.1f} GB, {size / max(total, 1):.0f} B/event",
            note=f"{size / max(total, 1) * 1e8 / 1e9:.0f} GB per 100 M events"),
        Row("scale", "bulk load (INSERT … SELECT, one month per transaction, FK triggers off)",
            f"{float(load_rate or 0):,.0f} events/s", note="make bench-scale-data, nice 19, shared machine"),
    ]


INGEST_REQUESTS = int(os.environ.get("BENCH_SCALE_INGEST_REQUESTS", 40_000))
SECONDS = float(os.environ.get("BENCH_SCALE_SECONDS", 8))


if __name__ == "__main__":
    {"build": build, "clean": clean}[sys.argv[1]]()
