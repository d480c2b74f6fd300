"""Prepared statements for the few statements every request runs (the usage summary's,
ingestion's, the entitlement check's, the audit append).

Django binds parameters on the client (psycopg's ``ClientCursor``): every execution sends
a new statement text, which PostgreSQL parses and plans anew. For the summary's join of
seven tables the plan costs three times the execution. ``fetchall_prepared`` runs a
statement with server-side binding and ``prepare=True``: psycopg prepares it once per
connection, and after a few runs PostgreSQL keeps a generic plan for it. As a
transaction's first statement it travels with the ``BEGIN`` (psycopg's pipeline mode):
one round trip instead of two.

It goes through the connection's execute wrappers (the tenant scope that row-level
security reads, ``core.tenant_scope``), Django's error translation and, under
``CaptureQueriesContext`` or DEBUG, its query log, like any statement. On SQLite (the
demo) it is a plain ``cursor.execute``. Server-side binding is not made the default:
Django's schema editor sends DDL with parameters, which only client-side binding allows.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg.pq import TransactionStatus


def fetchall_prepared(
    sql: str, params: Sequence[Any] | Mapping[str, Any], *, using: str = DEFAULT_DB_ALIAS
) -> list[Any]:
    """The rows of ``sql`` with ``params`` (``%s`` or ``%(name)s`` placeholders), run as a
    prepared statement on PostgreSQL."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def run(sql: str, params: Any, many: bool, context: dict[str, Any]) -> list[Any]:
        raw = connection.connection
        with psycopg.Cursor(raw) as prepared:
            if raw.autocommit or raw.info.transaction_status != TransactionStatus.IDLE:
                prepared.execute(sql, params, prepare=True)
                return prepared.fetchall()
            # The transaction's first statement: its BEGIN goes in the same round trip.
            with raw.pipeline():
                prepared.execute(sql, params, prepare=True)
                return prepared.fetchall()

    executor: Any = run
    for wrapper in reversed(connection.execute_wrappers):
        executor = functools.partial(wrapper, executor)
    # What connection.cursor() checks and does first (the health check of a reused
    # connection too), without making a cursor of Django's: the statement has its own.
    connection.validate_thread_sharing()
    connection.validate_no_broken_transaction()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    started = time.monotonic()
    with connection.wrap_database_errors:
        rows = executor(sql, params, False, {"connection": connection, "cursor": None})
    if connection.queries_logged:
        connection.queries_log.append(
            {"sql": f"{sql} -- prepared, params {params!r}", "time": f"{time.monotonic() - started:.3f}"}
        )
    return rows
