"""Guessing API keys is throttled per client address: after too many failures in a
window, every API-key call from that address is 429 until the window ends."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import time_machine
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.models import Company, CompanyAPIKey

pytestmark = pytest.mark.django_db
GUESSER, NEIGHBOUR = "203.0.113.7", "198.51.100.9"
URL = "/api/v1/plans/"


@pytest.fixture(autouse=True)
def three_tries(settings):
    settings.API_KEY_FAILURES_PER_IP = 3
    settings.API_KEY_FAILURE_WINDOW_SECONDS = 300
    window = int(time.time() // 300)
    for address in (GUESSER, NEIGHBOUR):
        for w in (window, window + 1):
            cache.delete(f"apikey-fail:{address}:{w}")


@pytest.fixture
def secret(db) -> str:
    company = Company.objects.create(name="Acme Freight", slug="acme")
    return CompanyAPIKey.objects.create_key(company=company, name="backend")[1]


def call(key: str, address: str):
    return APIClient().get(URL, HTTP_AUTHORIZATION=f"Api-Key {key}", REMOTE_ADDR=address)


def test_an_address_that_keeps_guessing_is_refused_even_with_a_good_key(secret):
    prefix = secret.split(".")[0]
    with time_machine.travel(time.time(), tick=False):
        for _ in range(3):
            assert call(f"{prefix}.wrong", GUESSER).status_code == 401
        refused = call(secret, GUESSER)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 300
        assert refused.json()["error"]["status"] == 429
        # Another address is not affected, and good keys never count as failures.
        for _ in range(5):
            assert call(secret, NEIGHBOUR).status_code == 200


def test_the_lockout_ends_with_the_window(secret):
    start = time.time()
    with time_machine.travel(start, tick=False):
        for _ in range(3):
            call("nope.nope", GUESSER)
        assert call(secret, GUESSER).status_code == 429
    with time_machine.travel(start + timedelta(seconds=301).total_seconds(), tick=False):
        assert call(secret, GUESSER).status_code == 200
