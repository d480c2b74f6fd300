"""Small in-process caches for the request hot path (API key → company → tier, the feature
map, a company's entitlements), kept honest by one version number in the shared cache.

Every process keeps what it looked up for ``TTL`` seconds, but re-reads the version in
Redis at most once per ``CHECK_EVERY`` seconds; a write that changes what is cached bumps
the version when its transaction commits (``invalidate``: saving or deleting a row of a
model a cache ``depends_on`` does so; a service that writes with ``QuerySet.update`` calls
it), and every process that sees a new version forgets everything. So a revoked key, a new tier or
a changed limit takes effect everywhere within ``CHECK_EVERY`` seconds (plus a request),
and immediately in the process that made the change.

Without Redis the version cannot be read, nor bumped: a process then keeps an entry only
``DEGRADED_TTL`` seconds (one database read per key per second), which keeps the same
promise, and forgets everything once Redis answers again (a bump may have been lost).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

from django.core.cache import cache
from django.db import transaction
from django.db.models import Model
from django.db.models.signals import post_delete, post_save

from core.outages import CACHE_ERRORS, Degraded

logger = logging.getLogger(__name__)

VERSION_KEY = "hotcache:version"
CHECK_EVERY = 0.5  # seconds between two reads of the shared version, per process
TTL = 30.0  # seconds an entry is kept while the version can be read
DEGRADED_TTL = 1.0  # ... and while it cannot (Redis down)
RETRY_SHARED_AFTER = 5.0  # seconds between two attempts to reach Redis while it is down
MAX_ENTRIES = 50_000  # per cache: beyond it, start afresh rather than grow without bound

T = TypeVar("T")
_MISSING = object()
_degraded = Degraded("hot-path cache: Redis unreachable, entries kept 1 s", logger)


class _Shared:
    """This process's view of the shared version (one per process, not per thread)."""

    def __init__(self) -> None:
        self.version: Any = _MISSING
        self.checked_at = float("-inf")
        self.lock = threading.Lock()


_shared = _Shared()
_caches: list[HotCache[Any]] = []
_dependents: defaultdict[type[Model], list[HotCache[Any]]] = defaultdict(list)


def _check_version(now: float) -> None:
    """Forget everything when the shared version moved (or Redis came back); at most once
    per ``CHECK_EVERY`` seconds, and one thread at a time."""
    if now - _shared.checked_at < CHECK_EVERY and now >= _shared.checked_at:
        return
    if not _shared.lock.acquire(blocking=False):
        return  # another thread is checking right now
    try:
        _shared.checked_at = now
        if not _degraded.worth_trying(now, every=RETRY_SHARED_AFTER):
            return
        was_degraded = _degraded.since is not None
        try:
            version = cache.get(VERSION_KEY)
        except CACHE_ERRORS as exc:
            # Invalidations cannot be seen from now on: keep nothing older than DEGRADED_TTL.
            clear_local()
            _degraded.failed(exc, now)
            _shared.version = _MISSING
            return
        _degraded.recovered(now)
        if version != _shared.version or was_degraded:
            clear_local()
            _shared.version = version
    finally:
        _shared.lock.release()


class HotCache(Generic[T]):
    """One named map of this process's cached values, built from rows of ``depends_on``:
    ``get(key, load)`` returns the cached value or calls ``load()`` (a database read) and
    keeps what it returns. ``None`` is never kept: a miss (an unknown API key) is looked up
    every time. A write to one of ``depends_on`` empties it in this process at once."""

    def __init__(self, name: str, *, depends_on: Iterable[type[Model]]) -> None:
        self.name = name
        self._entries: dict[Hashable, tuple[float, T]] = {}
        self._generation = 0
        _caches.append(self)
        for model in depends_on:
            _dependents[model].append(self)
            _watch(model)

    def get(self, key: Hashable, load: Callable[[], T | None]) -> T | None:
        now = time.time()
        _check_version(now)
        ttl = DEGRADED_TTL if _degraded.since is not None else TTL
        entry = self._entries.get(key)
        if entry is not None and 0 <= now - entry[0] < ttl:
            return entry[1]
        generation = self._generation
        value = load()
        # Kept only if nothing was invalidated while loading (it may have read old rows).
        if value is not None and generation == self._generation:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (now, value)
        return value

    def peek(self, key: Hashable) -> T | None:
        """The value kept for ``key`` if it is still fresh; never loads."""
        now = time.time()
        _check_version(now)
        ttl = DEGRADED_TTL if _degraded.since is not None else TTL
        entry = self._entries.get(key)
        return entry[1] if entry is not None and 0 <= now - entry[0] < ttl else None

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()


def clear_local(models: Iterable[type[Model]] | None = None) -> None:
    """Forget, in this process, what was built from rows of ``models`` (everything when
    None); the next lookups read the database."""
    if models is None:
        for one in _caches:
            one.clear()
        return
    for model in models:
        for one in _dependents.get(model, ()):
            one.clear()


def _bump() -> None:
    try:
        try:
            cache.incr(VERSION_KEY)
        except ValueError:  # no version yet (or Redis restarted empty): start from a random one
            cache.set(VERSION_KEY, secrets.randbits(48), timeout=None)
    except CACHE_ERRORS as exc:
        # The other processes cannot see this change until their entries expire: they are
        # without Redis too (1 s entries), or the next bump or a restart of Redis tells them.
        logger.warning("hot-path cache: could not publish an invalidation (%s); other processes may "
                       "serve the old value for up to %.0f s", exc, TTL)


def invalidate(*models: type[Model]) -> None:
    """Rows of ``models`` (any, when none is named) changed: forget what was built from
    them in this process now, and everything in every process once the change commits (a
    bump before the commit would let another process re-read the old rows and keep them).
    The services that write with ``QuerySet.update`` call this; saves and deletes of a
    watched model call it through their signals."""
    clear_local(models or None)

    def committed() -> None:
        clear_local(models or None)  # what was read meanwhile, in this process, may be old
        _bump()

    transaction.on_commit(committed)


def _on_change(sender: type[Model], **kwargs: Any) -> None:
    invalidate(sender)


def _watch(model: type[Model]) -> None:
    uid = f"hotcache:{model._meta.label}"
    post_save.connect(_on_change, sender=model, dispatch_uid=f"{uid}:save", weak=False)
    post_delete.connect(_on_change, sender=model, dispatch_uid=f"{uid}:delete", weak=False)


def reset_process_state() -> None:
    """Back to what a freshly started process knows: nothing (tests)."""
    clear_local()
    _shared.version = _MISSING
    _shared.checked_at = float("-inf")
    _degraded.since = None
