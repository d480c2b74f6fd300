"""Redis down during a manual failover: the failover is committed and answered 201 (the
routing publish after commit must not fail it), and the next probe cycle publishes the
routing state once Redis is back."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from regions import routing
from regions.models import FailoverEvent
from tests.own_redis import OwnRedis
from tests.regions.conftest import active_slug

URL = "/api/v1/regions/failover/"
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def redis_cache(settings):
    with OwnRedis() as redis:
        settings.CACHES = redis.caches()
        yield redis


def test_a_failover_with_redis_down_is_201_and_routing_catches_up_on_the_next_cycle(
    client, ops_user, primary, secondary, cycle, redis_cache
):
    routing.publish()
    assert cache.get(routing.CACHE_KEY)["active"] == "primary"
    redis_cache.stop()
    client.force_login(ops_user)

    response = client.post(URL, {"to": "secondary", "reason": "primary DB lost"}, content_type="application/json")

    assert response.status_code == 201, response.content
    assert response["X-Active-Region"] == "secondary"  # this process knows at once
    assert active_slug() == "secondary" and FailoverEvent.objects.count() == 1

    redis_cache.start()  # back, and empty
    assert cache.get(routing.CACHE_KEY) is None
    cycle()

    assert cache.get(routing.CACHE_KEY)["active"] == "secondary"
    routing.reset_process_state()  # another process, freshly started, reads the cache
    assert routing.current().active == "secondary"
