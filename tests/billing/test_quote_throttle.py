"""The public pricing calculator (GET /api/v1/plans/quote/) is limited per client address,
in Redis; with Redis down it answers without a limit rather than not at all."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
import time_machine
from django.core.cache import cache
from rest_framework.test import APIClient

from billing.plans import throttles
from billing.plans.catalogue import install_default_catalogue
from billing.plans.models import Feature, Tier, TierLimit
from tests.own_redis import OwnRedis

pytestmark = pytest.mark.django_db
URL = "/api/v1/plans/quote/"
NOON = datetime(2031, 3, 4, 12, 0, 5, tzinfo=UTC)


@pytest.fixture
def catalogue(db):
    install_default_catalogue(Tier=Tier, Feature=Feature, TierLimit=TierLimit)


def _limit(settings, rate: str) -> None:
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "quote": rate}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}


def _quote(address: str):
    return APIClient(REMOTE_ADDR=address).get(URL, {"quotes": 500})


def test_an_address_gets_its_quota_then_a_429_saying_when_and_other_addresses_are_unaffected(catalogue, settings):
    _limit(settings, "3/min")
    for address in ("198.51.100.7", "198.51.100.8"):
        cache.delete(f"throttle_quote_{address}")  # Redis outlives a test

    with time_machine.travel(NOON, tick=False):
        answers = [_quote("198.51.100.7") for _ in range(4)]
        other = _quote("198.51.100.8")

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert 0 < int(refused["Retry-After"]) <= 60
    assert refused.json()["error"]["code"] == "throttled"
    assert other.status_code == 200 and other.json()["cheapest"]


def test_with_redis_down_quotes_are_answered_without_a_limit_and_that_is_said_once(catalogue, settings, caplog):
    _limit(settings, "2/min")
    with OwnRedis() as redis:
        settings.CACHES = redis.caches()
        redis.stop()
        throttles._degraded.since = None
        caplog.set_level(logging.WARNING, logger="billing.plans.throttles")

        codes = [_quote("198.51.100.9").status_code for _ in range(4)]
        redis.start()
        back = [_quote("198.51.100.9").status_code for _ in range(3)]

    assert codes == [200] * 4
    assert back == [200, 200, 429]  # counted again once Redis is back
    messages = [r.getMessage() for r in caplog.records]
    assert sum("quotes not limited: degraded" in m for m in messages) == 1
    assert any("recovered" in m for m in messages)
