"""The ingest hot path: what a call costs (no key or feature lookup once warm, one Redis
round trip), and that what is cached in-process follows a change made by another process
within a second, with Redis up and with Redis down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
import time_machine
from django.conf import settings as django_settings
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient

from accounts.auth import api_key_failure_key
from accounts.models import CompanyAPIKey
from billing.plans.models import LimitMode, TierLimit
from core import hotcache
from tests.own_redis import OwnRedis
from usage import throttles
from usage.models import UsageEvent

ROOT = Path(__file__).resolve().parents[2]
URL = "/api/v1/usage/events/"
_n = iter(range(10**6))


class CountingConnection(redis.Connection):
    """A Redis connection that counts what it sends: one send is one round trip."""

    sent = 0

    def send_packed_command(self, command, check_health=True):
        CountingConnection.sent += 1
        return super().send_packed_command(command, check_health)


def _post(client, feature: str = "quotes", quantity: int = 1):
    event = {"feature": feature, "quantity": quantity, "idempotency_key": f"hp-{next(_n)}"}
    return client.post(URL, {"events": [event]}, format="json")


def _key_client(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
    return client


def _in_another_process(code: str, *, cache_url: str | None = None) -> None:
    """Run ``code`` in a new process of the app (manage.py shell) on the test database."""
    s = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}",
        "CACHE_URL": cache_url or django_settings.CACHES["default"]["LOCATION"],
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def _revoke_elsewhere(key: CompanyAPIKey, **kwargs) -> None:
    _in_another_process(
        "from accounts.models import CompanyAPIKey; from accounts.services import company_api_key_revoke; "
        "from audit.services import Actor; "
        f"assert company_api_key_revoke(key=CompanyAPIKey.objects.get(prefix={key.prefix!r}), "
        "actor=Actor.system('test'))",
        **kwargs,
    )


@pytest.fixture
def own_redis(settings):
    """The cache on a Redis of the test's own, counting round trips, which the test may stop."""
    with OwnRedis() as server:
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": server.url(),
                "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1, "connection_class": CountingConnection},
            }
        }
        hotcache.reset_process_state()
        throttles._degraded.since = None
        throttles.throttle_forget()
        yield server
        hotcache.reset_process_state()
        throttles._degraded.since = None
        throttles.throttle_forget()


@pytest.mark.django_db
def test_a_warm_ingest_call_looks_up_no_key_and_no_feature_and_leaves_redis_alone(acme, make_key, own_redis):
    client = _key_client(make_key(acme))
    with time_machine.travel(time.time(), tick=False) as clock:  # no version check falls due in between
        assert _post(client).status_code == 200  # loads the key and the features, opens the throttle's window
        sent = CountingConnection.sent
        statements: list[str] = []

        def seen(execute, sql, params, many, context):  # each request resets Django's query log
            statements.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(seen):
            answers = [_post(client).status_code for _ in range(5)]
        warm = CountingConnection.sent - sent
        clock.shift(throttles.SETTLE_EVERY + 0.01)
        sent = CountingConnection.sent
        assert _post(client).status_code == 200
        settling = CountingConnection.sent - sent

    assert answers == [200] * 5
    assert warm == 0  # the throttle counted them here; the lockout's "no" is trusted for a second
    assert settling == 1  # then one round trip adds them all to the key's shared count
    (counter,) = redis.Redis.from_url(own_redis.url()).keys("*throttle_usage_ingest*")
    assert int(redis.Redis.from_url(own_redis.url()).get(counter)) == 7
    read = " ".join(statements)
    assert "billing_companyapikey" not in read  # the key, its company and tier came from memory
    assert "usage_usageevent" in read
    assert UsageEvent.objects.filter(company=acme).count() == 7


@pytest.mark.django_db
def test_the_rate_limit_counts_other_processes_hits_and_holds_exactly_near_the_limit(
    acme, make_key, own_redis, settings
):
    settings.REST_FRAMEWORK = {**django_settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"usage_ingest": "100/min"}}
    client = _key_client(make_key(acme))
    with time_machine.travel(datetime(2026, 11, 25, 12, 0, 5, tzinfo=UTC), tick=False) as clock:
        assert _post(client).status_code == 200  # this window's first hit: settled at once
        (counter,) = redis.Redis.from_url(own_redis.url()).keys("*throttle_usage_ingest*")
        redis.Redis.from_url(own_redis.url()).incrby(counter, 95)  # the key's hits in the other processes
        assert _post(client).status_code == 200  # far from the limit: counted here
        clock.shift(throttles.SETTLE_EVERY + 0.01)
        codes, trips = [], []
        for _ in range(5):
            sent = CountingConnection.sent
            codes.append(_post(client).status_code)
            trips.append(CountingConnection.sent - sent)

    assert codes == [200, 200, 200, 429, 429]  # 98, 99, 100 of 100; then over
    assert trips == [1, 1, 1, 0, 0]  # near the limit every hit settles; at it, Redis is not asked again
    assert int(redis.Redis.from_url(own_redis.url()).get(counter)) == 100
    assert UsageEvent.objects.filter(company=acme).count() == 5


@pytest.mark.django_db(transaction=True)
def test_a_key_revoked_by_another_process_is_refused_here_within_a_second(acme, make_key):
    secret = make_key(acme)
    key = CompanyAPIKey.objects.get(prefix=secret.split(".")[0])
    client = _key_client(secret)
    with time_machine.travel(time.time(), tick=False) as clock:
        assert _post(client).status_code == 200
        _revoke_elsewhere(key)
        assert _post(client).status_code == 200  # this process has not looked at the version yet
        clock.shift(hotcache.CHECK_EVERY)
        refused = _post(client)

    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "authentication_failed"
    assert UsageEvent.objects.filter(company=acme).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_tier_change_made_by_another_process_applies_here_within_a_second(acme, make_key):
    TierLimit.objects.filter(tier__code="starter", feature__code="bulk_jobs").update(mode=LimitMode.HARD)
    client = _key_client(make_key(acme))
    with time_machine.travel(time.time(), tick=False) as clock:
        assert _post(client, "bulk_jobs", 10).status_code == 200
        assert _post(client, "bulk_jobs", 1).status_code == 422  # Starter's hard 10
        _in_another_process(
            "from accounts.models import Company; from accounts.services import company_set_tier; "
            "from audit.services import Actor; from billing.plans.models import Tier; "
            f"assert company_set_tier(company=Company.objects.get(pk={acme.pk}), tier=Tier.objects.get(code='pro'), "
            "actor=Actor.system('test'))"
        )
        clock.shift(hotcache.CHECK_EVERY)
        on_pro = _post(client, "bulk_jobs", 1)

    assert on_pro.status_code == 200, on_pro.content  # Pro includes 100, soft


@pytest.mark.django_db(transaction=True)
def test_with_redis_down_a_revoked_key_is_still_refused_within_a_second(acme, make_key, own_redis):
    secret = make_key(acme)
    key = CompanyAPIKey.objects.get(prefix=secret.split(".")[0])
    client = _key_client(secret)
    own_redis.stop()
    with time_machine.travel(time.time(), tick=False) as clock:
        assert _post(client).status_code == 200  # PostgreSQL is what ingestion needs
        _revoke_elsewhere(key, cache_url=own_redis.url())  # its invalidation cannot be published
        clock.shift(hotcache.DEGRADED_TTL)
        refused = _post(client)

    assert refused.status_code == 401
    assert UsageEvent.objects.filter(company=acme).count() == 1


@pytest.mark.django_db
def test_when_redis_comes_back_empty_every_process_forgets_what_it_cached(acme, make_key, own_redis):
    client = _key_client(make_key(acme))
    cache.set(hotcache.VERSION_KEY, 7, timeout=None)  # as another process's invalidation left it
    with time_machine.travel(time.time(), tick=False) as clock:
        assert _post(client).status_code == 200
        own_redis.stop()
        own_redis.start()  # the version is gone with everything else
        # Revoked behind the cache's back (no signal, no service): only forgetting helps.
        CompanyAPIKey.objects.filter(company=acme).update(revoked=True)
        clock.shift(hotcache.CHECK_EVERY)
        assert _post(client).status_code == 401


def test_an_address_locked_out_for_guessing_is_refused_on_ingest_even_with_a_known_key(
    db, acme, make_key, settings
):
    settings.API_KEY_FAILURES_PER_IP = 3
    guesser, neighbour = "203.0.113.77", "198.51.100.77"
    window = int(time.time() // django_settings.API_KEY_FAILURE_WINDOW_SECONDS)
    for address in (guesser, neighbour):
        for w in (window, window + 1):
            cache.delete(api_key_failure_key(address, w))
    secret = make_key(acme)
    prefix = secret.split(".")[0]

    def call(key: str, address: str):
        body = {"events": [{"feature": "quotes", "idempotency_key": f"lock-{next(_n)}"}]}
        return APIClient().post(URL, body, format="json", HTTP_AUTHORIZATION=f"Api-Key {key}", REMOTE_ADDR=address)

    with time_machine.travel(time.time(), tick=False):
        assert call(secret, guesser).status_code == 200  # the key is now in this process's memory
        assert [call(f"{prefix}.wrong", guesser).status_code for _ in range(3)] == [401] * 3
        refused = call(secret, guesser)
        neighbour_ok = call(secret, neighbour)

    assert refused.status_code == 429
    assert refused.json()["error"]["message"].startswith("Too many failed API-key attempts from this address.")
    assert 1 <= int(refused.headers["Retry-After"]) <= django_settings.API_KEY_FAILURE_WINDOW_SECONDS
    assert neighbour_ok.status_code == 200
    assert UsageEvent.objects.filter(company=acme).count() == 2


def test_a_call_the_lean_view_does_not_take_gets_the_same_answers_from_drf(db, acme, make_key):
    client = _key_client(make_key(acme))
    body = json.dumps({"events": [{"feature": "quotes", "idempotency_key": "drf-1"}]})
    taken = client.post(URL, body, content_type="application/json", HTTP_ACCEPT="application/json; version=1")
    again = client.post(URL, body, content_type="application/json")
    unknown = client.post(URL, json.dumps({"events": [{"feature": "nope", "idempotency_key": "drf-2"}]}),
                          content_type="application/json", HTTP_ACCEPT="application/json; version=1")
    lean_unknown = client.post(URL, json.dumps({"events": [{"feature": "nope", "idempotency_key": "drf-2"}]}),
                               content_type="application/json")

    assert taken.status_code == 200 and taken.json() == {"accepted": 1, "duplicates": 0, "duplicate_keys": []}
    assert again.json() == {"accepted": 0, "duplicates": 1, "duplicate_keys": ["drf-1"]}
    assert unknown.status_code == lean_unknown.status_code == 400
    assert unknown.json() == lean_unknown.json()
    assert unknown.json()["error"]["fields"][0]["field"] == "events.0.feature"
    assert taken["Allow"] == again["Allow"] == "POST, OPTIONS"
