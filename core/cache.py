"""Django's Redis cache backend, without its per-call cost.

Django's ``RedisCacheClient`` builds a new ``redis.Redis`` for every cache call (on the
same connection pool); constructing one sets up a few hundred response callbacks, which
costs more than the round trip itself on a hot path such as the API-key lockout read.
This backend keeps one ``redis.Redis`` per connection pool (it is thread-safe: each
command takes a connection from the pool) and is otherwise Django's.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends import redis as django_redis


class _ReusingClient(django_redis.RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]  # private to Django, not in its stubs
        client = self._clients.get(id(pool))  # pools live as long as this object
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)  # type: ignore[attr-defined]  # (as above)
        return client


class RedisCache(django_redis.RedisCache):
    """``django.core.cache.backends.redis.RedisCache`` with one client per pool."""

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _ReusingClient
