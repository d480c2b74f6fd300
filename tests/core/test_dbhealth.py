"""Reused database connections are checked by polling their socket as a request starts
(core.dbhealth), not by a SELECT 1 per request; a connection the server closed is still
replaced before the request's first query."""

from __future__ import annotations

import time

import pytest
from django.core.signals import request_started
from django.db import connection, connections

from core.dbhealth import socket_quiet

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def health_checks():
    """CONN_HEALTH_CHECKS on this connection, as in production; a fresh connection after."""
    connection.close()
    connection.settings_dict["CONN_HEALTH_CHECKS"] = True
    connection.ensure_connection()
    yield
    connection.settings_dict["CONN_HEALTH_CHECKS"] = False
    connection.close()


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _terminate(pid: int) -> None:
    """Another session ends ours, as a restart or pg_terminate_backend does."""
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()


def _wait_for_goodbye(timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while socket_quiet(connection.connection.fileno()):
        assert time.monotonic() < deadline, "the server never closed the connection"
        time.sleep(0.01)


def test_a_quiet_connection_is_reused_without_a_check_query(health_checks):
    pid = _backend_pid()
    request_started.send(sender=None)

    assert connection.health_check_done  # Django will not send its SELECT 1
    assert _backend_pid() == pid


def test_a_connection_the_server_closed_is_replaced_before_the_first_query(health_checks):
    pid = _backend_pid()
    _terminate(pid)
    _wait_for_goodbye()
    request_started.send(sender=None)

    assert not connection.health_check_done  # the socket spoke: Django's real check runs ...
    assert _backend_pid() != pid  # ... fails, and the query runs on a new connection
