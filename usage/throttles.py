"""Rate limits per API key: one noisy backend cannot starve the others.

The counters live in Redis. Without Redis the throttle counts in this process instead
(the same limit per process: looser across N processes, never none) and says so once in
the log: PostgreSQL, not Redis, is what ingestion needs, so a Redis outage must not turn
away events. It tries Redis again every ``RETRY_SHARED_AFTER`` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import cast

from django.core.cache.backends.redis import RedisCache
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from accounts.models import CompanyAPIKey
from core.outages import CACHE_ERRORS, Degraded

logger = logging.getLogger(__name__)

RETRY_SHARED_AFTER = 5.0
_degraded = Degraded("usage ingest throttle: Redis unreachable, counting per process", logger)
_local_lock = threading.Lock()
_local_counts: dict[str, tuple[int, int]] = {}  # key -> (window, hits), this process only


class UsageIngestThrottle(SimpleRateThrottle):
    """A fixed-window counter per key: one atomic cache increment per request.

    DRF's own throttle keeps every request time of the window in one cache value and
    rewrites it on each request, which at thousands of requests a minute costs more than
    the ingestion itself. A fixed window may let up to twice the rate through across a
    window boundary; for a fairness limit that is fine.
    """

    scope = "usage_ingest"
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
        ttl = int(self.duration) + 1
        if isinstance(self.cache, RedisCache):
            # One round trip: INCR creates the counter at 1, EXPIRE NX sets its lifetime once.
            # (Django's cache.incr() costs an EXISTS first, and add() another trip.)
            full_key = self.cache.make_and_validate_key(key)
            client = self.cache._cache.get_client(full_key, write=True)
            pipe = client.pipeline()
            pipe.incr(full_key)
            pipe.expire(full_key, ttl, nx=True)
            count, _ = pipe.execute()
            return int(count)
        self.cache.add(key, 0, timeout=ttl)
        try:
            return self.cache.incr(key)
        except ValueError:  # expired between add and incr: this request opens the window
            self.cache.set(key, 1, timeout=ttl)
            return 1

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
