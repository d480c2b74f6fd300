"""A throwaway database for a benchmark: Django's test-database machinery, so a
benchmark runs on the configured engine (PostgreSQL under ``make bench``) with every
migration applied, and never touches demo or test data."""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Iterator

import django


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
