"""A database health check that costs no round trip per request.

With ``CONN_HEALTH_CHECKS`` Django sends ``SELECT 1`` before the first query of every
request that reuses a connection: on the ingest path that was one PostgreSQL round trip
in six. Here, as a request starts, each open connection's socket is polled first (zero
timeout, about a microsecond). An idle connection has nothing to read unless the server
closed it or is closing it: a restart, ``pg_terminate_backend`` or an idle timeout each
send an error and end the stream. A quiet socket counts as checked, so Django skips its
``SELECT 1``; anything else leaves Django's real check to run, which fails and drops the
connection, so the request opens a new one instead of failing.

A server that vanishes without a word (a cut cable) is caught neither way: the query's
own error, the outage middleware's 503, and the next request connects afresh. Celery
tasks keep Django's own check (``trans_bot.apps`` connects this to requests only).
"""

from __future__ import annotations

import select
from typing import Any

from django.db import connections


def socket_quiet(fileno: int) -> bool:
    """Nothing to read on the socket and no hang-up: the connection is as we left it."""
    poller = select.poll()
    poller.register(fileno, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
    return not poller.poll(0)


def check_quietly(**kwargs: Any) -> None:
    """``request_started`` receiver, connected after Django's ``close_old_connections``
    (which asks for a health check on the next query)."""
    for conn in connections.all(initialized_only=True):
        raw = conn.connection
        # The stubs' BaseDatabaseWrapper lacks the health-check attributes every backend has.
        wrapper: Any = conn
        if raw is None or conn.vendor != "postgresql" or not wrapper.health_check_enabled or wrapper.health_check_done:
            continue
        try:
            quiet = socket_quiet(raw.fileno())
        except (OSError, ValueError, wrapper.Database.Error):  # closed already: the real check says so
            continue
        if quiet:
            wrapper.health_check_done = True
