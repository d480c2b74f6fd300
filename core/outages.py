"""When a part we depend on is down: which part, and the one answer every endpoint gives.

PostgreSQL, Redis (cache) and the Celery broker each fail with their own exception
types. ``outage_part`` names the part an exception says is unreachable (not a bug: a
``DataError`` or an integrity error is ours to fix and stays a 500). ``OutageMiddleware``
(``core.middleware``) turns such an exception, wherever it is raised, into a 503 in the API's
error shape with ``Retry-After``, never an HTML page or a traceback.

Code that can do without a part (the ingestion throttle without Redis, routing without
Redis) catches ``CACHE_ERRORS`` itself and says so once through ``Degraded``.
"""

from __future__ import annotations

import logging
import threading

import kombu.exceptions
import redis.exceptions
from django import db
from django.http import JsonResponse

from core.errors import ServiceUnavailable, error_response

# Seconds a client is asked to wait before trying again while a part is down.
OUTAGE_RETRY_AFTER = 10

# What the Django cache raises when Redis cannot be reached, or is still loading its data.
REDIS_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
)
# ... and what code that can do without the cache catches (a file cache that cannot be written too).
CACHE_ERRORS: tuple[type[BaseException], ...] = (*REDIS_ERRORS, OSError)

_PARTS: tuple[tuple[tuple[type[BaseException], ...], str], ...] = (
    ((db.OperationalError, db.InterfaceError), "database"),
    ((kombu.exceptions.OperationalError,), "broker"),
    (REDIS_ERRORS, "cache"),
)


def outage_part(exc: BaseException) -> str | None:
    """"database", "cache" or "broker" when ``exc`` (or what caused it) says that part is
    unreachable; None for anything else."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for types, part in _PARTS:
            if isinstance(current, types):
                return part
        current = current.__cause__ or current.__context__
    return None


def outage_response(part: str) -> JsonResponse:
    """The 503 every endpoint answers while ``part`` is down."""
    response = error_response(
        ServiceUnavailable(
            f"The service is temporarily unavailable ({part} unreachable); try again shortly.",
            code=f"{part}_unavailable",
        )
    )
    response["Retry-After"] = str(OUTAGE_RETRY_AFTER)
    return response


class Degraded:
    """One flag per thing that can run without a part: logs a warning when it starts doing
    without, and one line when the part is back, not one per request."""

    def __init__(self, what: str, logger: logging.Logger) -> None:
        self.what = what
        self.logger = logger
        self.since: float | None = None
        self.last_failure = 0.0
        self._lock = threading.Lock()

    def worth_trying(self, now: float, *, every: float) -> bool:
        """Whether to try the part again: always when it works, else once per ``every`` seconds."""
        return self.since is None or now - self.last_failure >= every

    def failed(self, exc: BaseException, now: float) -> None:
        with self._lock:
            first = self.since is None
            if first:
                self.since = now
            self.last_failure = now
        if first:
            self.logger.warning("%s: %s (%s: %s)", self.what, "degraded", exc.__class__.__name__, exc)

    def recovered(self, now: float) -> None:
        if self.since is None:
            return
        with self._lock:
            since, self.since = self.since, None
        if since is not None:
            self.logger.warning("%s: recovered after %.0f s", self.what, now - since)
