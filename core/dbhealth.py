"""A database health check that costs no round trip per request.

With ``CONN_HEALTH_CHECKS`` Django sends ``SELECT 1`` before the first query of every
request that reuses a connection: on the ingest path that was one PostgreSQL round trip
in six. ``SocketHealthCheck`` (mixed into ``core.postgresql``'s backend) first polls the
connection's socket (zero timeout, about a microsecond). An idle connection has nothing
to read unless the server closed it or is closing it: a restart, ``pg_terminate_backend``
or an idle timeout each send an error and end the stream. A quiet socket counts as
checked; anything else runs Django's real check, which fails and drops the connection,
so the request opens a new one instead of failing.

A server that vanishes without a word (a cut cable) is caught neither way: the query's
own error, the outage middleware's 503, and the next request connects afresh.
"""

from __future__ import annotations

import select
from typing import Any


def socket_quiet(fileno: int) -> bool:
    """Nothing to read on the socket and no hang-up: the connection is as we left it."""
    poller = select.poll()
    poller.register(fileno, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
    return not poller.poll(0)


class SocketHealthCheck:
    """For a Django database wrapper: Django's health check, skipped when the socket is quiet."""

    connection: Any
    health_check_enabled: bool
    health_check_done: bool
    Database: Any

    def close_if_health_check_failed(self) -> None:
        if self.connection is not None and self.health_check_enabled and not self.health_check_done:
            try:
                quiet = socket_quiet(self.connection.fileno())
            except (OSError, ValueError, self.Database.Error):  # closed already: the real check says so
                quiet = False
            if quiet:
                self.health_check_done = True
                return
        super().close_if_health_check_failed()  # type: ignore[misc]  # the wrapper this is mixed into
