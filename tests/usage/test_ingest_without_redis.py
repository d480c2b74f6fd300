"""Redis down: ingestion goes on, because PostgreSQL is the source of truth. The throttle
counts in the process instead (the same limit per process), and says so once in the log;
when Redis is back it counts there again."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
import time_machine
from django.conf import settings as django_settings

from tests.own_redis import OwnRedis
from usage import throttles
from usage.models import UsageCounter, UsageEvent

pytestmark = pytest.mark.django_db
URL = "/api/v1/usage/events/"


@pytest.fixture
def redis_cache(settings):
    """The cache on a Redis of the test's own, which it may stop."""
    with OwnRedis() as redis:
        settings.CACHES = redis.caches()
        settings.REST_FRAMEWORK = {
            **django_settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"usage_ingest": "3/min"},
        }
        throttles._degraded.since = None
        throttles.throttle_forget()
        yield redis
        throttles._degraded.since = None
        throttles.throttle_forget()


def _post(client, key: str):
    return client.post(URL, {"events": [{"feature": "quotes", "idempotency_key": key}]}, format="json")


def test_with_redis_down_events_are_accepted_counted_once_and_throttled_per_process(
    acme, key_client, redis_cache, caplog
):
    client = key_client(acme)
    redis_cache.stop()
    caplog.set_level(logging.WARNING, logger="usage.throttles")

    with time_machine.travel(datetime(2026, 11, 25, 12, 0, 5, tzinfo=UTC), tick=False):
        codes = [_post(client, f"k{i}").status_code for i in range(4)]
        again = _post(client, "k0")

    assert codes == [200, 200, 200, 429]  # the limit still holds, counted in this process
    assert again.status_code == 429
    assert UsageEvent.objects.count() == 3
    assert UsageCounter.objects.get(feature__code="quotes").used == 3
    degraded = [r for r in caplog.records if "counting per process" in r.getMessage()]
    assert len(degraded) == 1  # said once, not once per request


def test_when_redis_returns_the_throttle_counts_there_again(acme, key_client, redis_cache, caplog):
    client = key_client(acme)
    redis_cache.stop()
    caplog.set_level(logging.WARNING, logger="usage.throttles")
    with time_machine.travel(datetime(2026, 11, 25, 12, 0, 5, tzinfo=UTC), tick=False):
        assert _post(client, "down").status_code == 200
    redis_cache.start()  # empty: a restarted Redis without persistence

    with time_machine.travel(datetime(2026, 11, 25, 12, 1, 5, tzinfo=UTC), tick=False):
        assert _post(client, "up").status_code == 200

    assert throttles._degraded.since is None
    assert any("recovered" in r.getMessage() for r in caplog.records)
    from django.core.cache import cache

    assert cache._cache.get_client().keys("*usage_ingest*")  # counted in Redis again
    assert UsageEvent.objects.count() == 2
