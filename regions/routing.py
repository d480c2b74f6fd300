"""The routing state every process keeps in memory, so routing costs no query per request.

The state lives in the Django cache (Redis in production) under one key. A process
re-reads that key at most once per ``STALE_AFTER`` seconds; a failover writes the new
state to the cache as soon as it commits. So every process follows a failover within
about one second, and a request costs at most one cache read per second per process.
A request never reads the database: when the key is missing (cache flushed) a process
keeps its last state until the next probe cycle republishes it (every cycle does).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.core.cache import cache

from core.outages import CACHE_ERRORS
from regions.selectors import routing_state_build

log = logging.getLogger(__name__)

CACHE_KEY = "regions:routing:v1"
STALE_AFTER = 1.0


@dataclass(frozen=True)
class RoutingState:
    multi_region: bool = False
    active: str = ""
    active_url: str = ""
    active_healthy: bool = True
    read_policy: str = "serve"
    retry_after: int = 30


_state = RoutingState()
_loaded_at: float | None = None


def current() -> RoutingState:
    global _state, _loaded_at
    now = time.time()
    if _loaded_at is not None and 0 <= now - _loaded_at < STALE_AFTER:
        return _state
    try:
        data = cache.get(CACHE_KEY)
        if data is None:
            # Never the database in the request path: keep what we had (single-region
            # mode in a process that never saw a state) until the next probe cycle, a
            # failover or an admin edit publishes again.
            if _loaded_at is None:
                log.warning("regions: routing state missing from the cache; keeping the last one")
        else:
            _state = RoutingState(**data)
    except Exception:  # a cache outage must not take the site down: keep the last state
        log.exception("regions: could not refresh the routing state; keeping the last one")
    _loaded_at = now
    return _state


def publish() -> dict:
    """Build the state from the database and put it in this process and in the cache.

    Runs after a failover commits: it must not fail what is done. Without Redis the other
    processes keep their last state until the next probe cycle publishes again (every
    cycle does), so routing catches up within one probe interval of Redis returning."""
    global _state, _loaded_at
    data = routing_state_build()
    _state = RoutingState(**data)
    _loaded_at = time.time()
    try:
        cache.set(CACHE_KEY, data, timeout=None)
    except CACHE_ERRORS as exc:
        log.warning("regions: routing state not published (cache unreachable: %s); the next probe cycle will", exc)
    return data


def forget_local() -> None:
    """Make this process read the cache on its next request (tests, after a publish elsewhere)."""
    global _loaded_at
    _loaded_at = None


def reset_process_state() -> None:
    """Back to what a freshly started process knows: nothing (tests)."""
    global _state, _loaded_at
    _state, _loaded_at = RoutingState(), None
