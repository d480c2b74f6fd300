"""Rate limits per API key: one noisy backend cannot starve the others.

The counters live in Redis: one round trip per request (a Lua script that counts the hit
and, for ingestion, also reads the address's API-key lockout). Without Redis the throttle
counts in this process instead (the same limit per process: looser across N processes,
never none) and says so once in the log: PostgreSQL, not Redis, is what ingestion needs,
so a Redis outage must not turn away events. It tries Redis again every
``RETRY_SHARED_AFTER`` seconds.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, cast

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, BaseCache, caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from accounts.auth import api_key_failure_key, api_key_lockout
from accounts.models import CompanyAPIKey
from core.outages import CACHE_ERRORS, Degraded

logger = logging.getLogger(__name__)

RETRY_SHARED_AFTER = 5.0
_degraded = Degraded("usage ingest throttle: Redis unreachable, counting per process", logger)
_local_lock = threading.Lock()
_local_counts: dict[str, tuple[int, int]] = {}  # key -> (window, hits), this process only
SCOPE = "usage_ingest"
CACHE_FORMAT = SimpleRateThrottle.cache_format

# KEYS[1]: the hit counter of this window; KEYS[2], if given: the failed API-key attempts
# of the caller's address, ARGV[2] the most it may have. Returns the hits so far, or -1
# when the address is locked out (then the hit is not counted).
_COUNT_LUA = """
if #KEYS > 1 then
  local failures = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
  if failures >= tonumber(ARGV[2]) then return -1 end
end
local hits = redis.call('INCR', KEYS[1])
if hits == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return hits
"""
_scripts: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _shared_cache() -> BaseCache:
    """The cache itself, not Django's per-thread proxy (``isinstance`` sees through neither)."""
    return caches[DEFAULT_CACHE_ALIAS]


def _redis_script(backend: RedisCache) -> Any:
    """The counting script bound to a client of ``backend``'s pool (one per backend)."""
    client = backend._cache  # one RedisCacheClient per backend, holding the connection pools
    script = _scripts.get(client)
    if script is None:
        script = client.get_client(write=True).register_script(_COUNT_LUA)
        _scripts[client] = script
    return script


def _count_shared(key: str, ttl: int, *, lockout_key: str | None = None, max_failures: int = 0) -> int:
    """Count one hit on ``key`` in the shared cache; -1 when ``lockout_key`` has reached
    ``max_failures``. Redis: one round trip. Other caches (the demo's file cache): as
    Django's cache API allows."""
    backend = _shared_cache()
    if isinstance(backend, RedisCache):
        keys = [backend.make_and_validate_key(key)]
        if lockout_key is not None:
            keys.append(backend.make_and_validate_key(lockout_key))
        return int(_redis_script(backend)(keys=keys, args=[ttl, max_failures]))
    if lockout_key is not None and (backend.get(lockout_key) or 0) >= max_failures:
        return -1
    backend.add(key, 0, timeout=ttl)
    try:
        return backend.incr(key)
    except ValueError:  # expired between add and incr: this request opens the window
        backend.set(key, 1, timeout=ttl)
        return 1


def _rate() -> tuple[int, int] | None:
    """(requests, seconds) of the ingest rate, read at request time (a changed setting applies)."""
    rate = cast(str | None, api_settings.DEFAULT_THROTTLE_RATES.get(SCOPE))
    if rate is None:
        return None
    num, period = rate.split("/")
    return int(num), {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]


def _throttle_key(prefix: str) -> str:
    return CACHE_FORMAT % {"scope": SCOPE, "ident": f"key:{prefix}"}


@dataclass(frozen=True)
class Admission:
    """What the ingest throttle says about one request: ``locked_out`` (seconds until the
    address may use an API key again) or ``throttled`` (seconds until the next window)."""

    locked_out: int = 0
    throttled: float | None = None


def ingest_admit(*, prefix: str, address: str | None) -> Admission:
    """For an ingest request with the valid key ``prefix`` from ``address``: is the address
    locked out for guessing keys (``accounts.auth.api_key_lockout``), and is the key over
    its rate? One Redis round trip for both; without Redis, the rate is counted in this
    process and the lockout is not checked (as ``api_key_lockout`` does)."""
    rate = _rate()
    now = time.time()
    if rate is None:
        wait = api_key_lockout(address)
        return Admission(locked_out=wait)
    num, duration = rate
    window = int(now // duration)
    key = f"{_throttle_key(prefix)}:{window}"
    length = settings.API_KEY_FAILURE_WINDOW_SECONDS
    lock_window = int(now // length)
    if _degraded.worth_trying(now, every=RETRY_SHARED_AFTER):
        try:
            hits = _count_shared(
                key,
                duration + 1,
                lockout_key=api_key_failure_key(address, lock_window),
                max_failures=settings.API_KEY_FAILURES_PER_IP,
            )
        except CACHE_ERRORS as exc:
            _degraded.failed(exc, now)
        else:
            _degraded.recovered(now)
            if hits < 0:
                return Admission(locked_out=max(math.ceil((lock_window + 1) * length - now), 1))
            return Admission() if hits <= num else Admission(throttled=max((window + 1) * duration - now, 0))
    hits = _count_local(_throttle_key(prefix), window)
    return Admission() if hits <= num else Admission(throttled=max((window + 1) * duration - now, 0))


class UsageIngestThrottle(SimpleRateThrottle):
    """A fixed-window counter per key: one atomic cache increment per request.

    DRF's own throttle keeps every request time of the window in one cache value and
    rewrites it on each request, which at thousands of requests a minute costs more than
    the ingestion itself. A fixed window may let up to twice the rate through across a
    window boundary; for a fairness limit that is fine.
    """

    scope = SCOPE
    # Set by SimpleRateThrottle.__init__ from the rate, which allow_request checks first.
    num_requests: int
    duration: int
    window_ends: float

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
        now = time.time()
        window = int(now // self.duration)
        self.window_ends = (window + 1) * self.duration
        self.now = now
        if _degraded.worth_trying(now, every=RETRY_SHARED_AFTER):
            try:
                count = self._count_hit(f"{key}:{window}")
            except CACHE_ERRORS as exc:
                _degraded.failed(exc, now)
            else:
                _degraded.recovered(now)
                return count <= self.num_requests
        return _count_local(key, window) <= self.num_requests

    def _count_hit(self, key: str) -> int:
        return _count_shared(key, int(self.duration) + 1)

    def wait(self) -> float:
        return max(self.window_ends - self.now, 0)


def _count_local(key: str, window: int) -> int:
    with _local_lock:
        seen_window, hits = _local_counts.get(key, (window, 0))
        hits = hits + 1 if seen_window == window else 1
        _local_counts[key] = (window, hits)
        if len(_local_counts) > 10_000:  # keys of past windows: forget them
            for stale in [k for k, (w, _) in _local_counts.items() if w != window]:
                del _local_counts[stale]
        return hits
