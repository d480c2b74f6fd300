"""Reused database connections are checked by polling their socket (core.dbhealth), not
by a SELECT 1 before every request's first query; a connection the server closed is
still replaced before that query runs."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest
from django.db import connection, connections
from psycopg import pq

from core.dbhealth import socket_quiet

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def production_connection():
    """CONN_HEALTH_CHECKS and CONN_MAX_AGE as in production; a fresh connection after."""
    connection.close()
    saved = {k: connection.settings_dict[k] for k in ("CONN_HEALTH_CHECKS", "CONN_MAX_AGE")}
    connection.settings_dict.update(CONN_HEALTH_CHECKS=True, CONN_MAX_AGE=60)
    connection.ensure_connection()
    yield
    connection.settings_dict.update(saved)
    connection.close()


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _next_request() -> None:
    """What Django does as a request starts and ends (request_started/finished)."""
    connection.close_if_unusable_or_obsolete()


def _terminate(pid: int) -> None:
    """Another session ends ours, as a restart or pg_terminate_backend does."""
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()


def test_a_quiet_connection_is_reused_without_a_check_query(production_connection):
    pid = _backend_pid()
    _next_request()
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "wire.txt"
        with trace.open("w") as out:
            connection.connection.pgconn.trace(out.fileno())
            connection.connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
            try:
                same = _backend_pid()
            finally:
                connection.connection.pgconn.untrace()
        sent = [line for line in trace.read_text().splitlines() if line.startswith("F\t")]  # to the server

    assert same == pid
    assert any("pg_backend_pid" in line for line in sent)  # the trace saw the request's query ...
    assert not any('Query\t "SELECT 1"' in line for line in sent)  # ... and no health-check query


def test_a_connection_the_server_closed_is_replaced_before_the_first_query(production_connection):
    pid = _backend_pid()
    _next_request()
    _terminate(pid)
    deadline = time.monotonic() + 5
    while socket_quiet(connection.connection.fileno()):  # the server's goodbye is on its way
        assert time.monotonic() < deadline, "the server never closed the connection"
        time.sleep(0.01)

    assert _backend_pid() != pid  # no error: the check saw the goodbye and reconnected
