"""A throwaway database for a benchmark: Django's test-database machinery, so a
benchmark runs on the configured engine (PostgreSQL under ``make bench``) with every
migration applied, and never touches demo or test data."""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlunsplit

import django

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def bench_database() -> Iterator[str]:
    django.setup()
    from django.db import connection

    # Benchmarks are allowed to TRUNCATE the audit table at teardown (see audit 0002).
    from django.db.backends.signals import connection_created

    def _maintenance(sender, connection, **kwargs):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET trans_bot.audit_maintenance = 'on'")

    connection_created.connect(_maintenance, dispatch_uid="bench_maintenance")
    old_name = connection.settings_dict["NAME"]
    name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        yield name
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def describe(samples_ms: list[float]) -> str:
    return (
        f"p50 {percentile(samples_ms, 50):.2f} ms, p99 {percentile(samples_ms, 99):.2f} ms, "
        f"mean {statistics.fmean(samples_ms):.2f} ms over {len(samples_ms)}"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(db_name: str, *, env: dict[str, str] | None = None, workers: int = 3):
    """gunicorn serving the back office on the benchmark database; returns (process, base URL)
    once it answers. The caller terminates the process."""
    import httpx
    from django.db import connection

    s = connection.settings_dict
    url = urlunsplit(("postgres", f"{s['USER']}@{s['HOST']}:{s['PORT']}", f"/{db_name}", "", ""))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "trans_bot.wsgi", "-b", f"127.0.0.1:{port}",
         "-w", str(workers), "--log-level", "warning"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url, "DEBUG": "false", "LOG_LEVEL": "WARNING",
             "CONN_MAX_AGE": "600", **(env or {})},
    )
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    return proc, f"http://127.0.0.1:{port}"
