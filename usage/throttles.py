"""Rate limits per API key: one noisy backend cannot starve the others.

The limit is a fixed window per key, counted in Redis and shared by every process; each
process settles its hits with Redis in batches (one round trip, ``INCRBY``, at most every
``SETTLE_EVERY`` seconds per key) and admits in between from the last shared count plus
its own hits since. Close to the limit (the last ``NEAR_LIMIT`` of it) every hit settles,
so the limit holds as exactly as a round trip per request would make it; far from it a
process may not yet see up to ``SETTLE_EVERY`` of the others' hits, which is the price of
the round trip the hot path no longer makes. Once the shared count is over the limit the
rest of the window is refused without asking Redis again.

Without Redis the throttle counts in this process instead (the same limit per process:
looser across N processes, never none) and says so once in the log: PostgreSQL, not Redis,
is what ingestion needs, so a Redis outage must not turn away events. It tries Redis again
every ``RETRY_SHARED_AFTER`` seconds.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, cast

from django.core.cache import DEFAULT_CACHE_ALIAS, BaseCache, caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from accounts.models import CompanyAPIKey
from core.outages import CACHE_ERRORS, Degraded

logger = logging.getLogger(__name__)

RETRY_SHARED_AFTER = 5.0
SETTLE_EVERY = 0.1  # seconds between a process's round trips for one key, far from the limit
NEAR_LIMIT = 0.1  # the share of the limit within which every hit settles
_MAX_TALLIES = 10_000
_degraded = Degraded("usage ingest throttle: Redis unreachable, counting per process", logger)
_local_lock = threading.Lock()
_local_counts: dict[str, tuple[int, int]] = {}  # key -> (window, hits), this process only, Redis down
SCOPE = "usage_ingest"
CACHE_FORMAT = SimpleRateThrottle.cache_format

# KEYS[1]: the hit counter of this window; ARGV[1] its expiry, ARGV[2] the hits to add.
# Returns the window's hits so far, every process's.
_SETTLE_LUA = """
local hits = redis.call('INCRBY', KEYS[1], ARGV[2])
if hits == tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return hits
"""
_scripts: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _shared_cache() -> BaseCache:
    """The cache itself, not Django's per-thread proxy (``isinstance`` sees through neither)."""
    return caches[DEFAULT_CACHE_ALIAS]


def _redis_script(backend: RedisCache) -> Any:
    """The settling script bound to a client of ``backend``'s pool (one per backend)."""
    client = backend._cache  # one RedisCacheClient per backend, holding the connection pools
    script = _scripts.get(client)
    if script is None:
        script = client.get_client(write=True).register_script(_SETTLE_LUA)
        _scripts[client] = script
    return script


def _add_shared(key: str, ttl: int, hits: int) -> int:
    """Add ``hits`` to ``key``'s count in the shared cache; the count after. Redis: one
    round trip. Other caches (the demo's file cache): as Django's cache API allows."""
    backend = _shared_cache()
    if isinstance(backend, RedisCache):
        return int(_redis_script(backend)(keys=[backend.make_and_validate_key(key)], args=[ttl, hits]))
    backend.add(key, 0, timeout=ttl)
    try:
        return backend.incr(key, hits)
    except ValueError:  # expired between add and incr: these hits open the window
        backend.set(key, hits, timeout=ttl)
        return hits


@dataclass
class _Tally:
    """One key's window as this process sees it."""

    window: int
    shared: int = 0  # the window's count in Redis at the last settle (this process's hits in it)
    pending: int = 0  # hits admitted here since, not yet added there
    settled_at: float = -math.inf


_tallies_lock = threading.Lock()
_tallies: dict[str, _Tally] = {}


def _admit_shared(key: str, *, num: int, duration: int, window: int, now: float) -> bool:
    """Whether one more hit on ``key`` fits the limit (``num`` per ``duration``), counted
    as the module says; raises the cache's errors when Redis cannot be reached."""
    with _tallies_lock:
        tally = _tallies.get(key)
        if tally is None or tally.window != window:
            if len(_tallies) >= _MAX_TALLIES:
                _tallies.clear()
            tally = _tallies[key] = _Tally(window)
        if tally.shared >= num:
            return False  # over already: the count only grows until the window ends
        hits = tally.shared + tally.pending + 1
        near = hits > num - max(int(num * NEAR_LIMIT), 1)
        if not near and now - tally.settled_at < SETTLE_EVERY:
            tally.pending += 1
            return True
        adding, tally.pending = tally.pending + 1, 0
    total = _add_shared(f"{key}:{window}", duration + 1, adding)
    with _tallies_lock:
        tally.shared = max(tally.shared, total)
        tally.settled_at = now
    return total <= num


def throttle_forget() -> None:
    """Forget this process's tallies (tests; a flushed Redis)."""
    with _tallies_lock:
        _tallies.clear()
    with _local_lock:
        _local_counts.clear()


def _rate() -> tuple[int, int] | None:
    """(requests, seconds) of the ingest rate, read at request time (a changed setting applies)."""
    rate = cast(str | None, api_settings.DEFAULT_THROTTLE_RATES.get(SCOPE))
    if rate is None:
        return None
    num, period = rate.split("/")
    return int(num), {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]


def _throttle_key(prefix: str) -> str:
    return CACHE_FORMAT % {"scope": SCOPE, "ident": f"key:{prefix}"}


def _admit(key: str, rate: tuple[int, int], now: float) -> float | None:
    """None when one more hit on ``key`` is within ``rate``; else the seconds until the
    next window."""
    num, duration = rate
    window = int(now // duration)
    if _degraded.worth_trying(now, every=RETRY_SHARED_AFTER):
        try:
            admitted = _admit_shared(key, num=num, duration=duration, window=window, now=now)
        except CACHE_ERRORS as exc:
            _degraded.failed(exc, now)
        else:
            _degraded.recovered(now)
            return None if admitted else max((window + 1) * duration - now, 0)
    hits = _count_local(key, window)
    return None if hits <= num else max((window + 1) * duration - now, 0)


def ingest_throttle_wait(prefix: str) -> float | None:
    """For an ingest request with the valid key ``prefix``: None when the key is within its
    rate, else the seconds until it may call again."""
    rate = _rate()
    return None if rate is None else _admit(_throttle_key(prefix), rate, time.time())


class UsageIngestThrottle(SimpleRateThrottle):
    """The ingest limit for the calls the DRF view serves, counted as ``ingest_throttle_wait``
    counts (the same tallies).

    DRF's own throttle keeps every request time of the window in one cache value and
    rewrites it on each request, which at thousands of requests a minute costs more than
    the ingestion itself. A fixed window may let up to twice the rate through across a
    window boundary; for a fairness limit that is fine.
    """

    scope = SCOPE
    # Set by SimpleRateThrottle.__init__ from the rate, which allow_request checks first.
    num_requests: int
    duration: int
    wait_seconds: float | None = None

    def get_rate(self) -> str | None:
        # Read at request time, so a changed setting applies without a restart of the class.
        # "6000/min"; DRF's stubs type the rates as numbers.
        return cast(str | None, api_settings.DEFAULT_THROTTLE_RATES.get(self.scope))

    def get_cache_key(self, request: Request, view: APIView) -> str:
        if isinstance(request.auth, CompanyAPIKey):
            ident = f"key:{request.auth.prefix}"
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request: Request, view: APIView) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        self.wait_seconds = _admit(key, (self.num_requests, self.duration), time.time())
        return self.wait_seconds is None

    def wait(self) -> float:
        return self.wait_seconds or 0.0


def _count_local(key: str, window: int) -> int:
    with _local_lock:
        seen_window, hits = _local_counts.get(key, (window, 0))
        hits = hits + 1 if seen_window == window else 1
        _local_counts[key] = (window, hits)
        if len(_local_counts) > 10_000:  # keys of past windows: forget them
            for stale in [k for k, (w, _) in _local_counts.items() if w != window]:
                del _local_counts[stale]
        return hits
