"""The entitlement check the product backend calls before it acts: each mode at, just
below and just above its limit; overrides; bad input; the OpenAPI schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.plans.models import EntitlementOverride, Feature, LimitMode, TierLimit
from usage.models import UsageCounter

pytestmark = pytest.mark.django_db

MID_NOVEMBER = datetime(2026, 11, 16, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)
CHECK = "/api/v1/entitlements/check/"


@pytest.fixture(autouse=True)
def _mid_november():
    with time_machine.travel(MID_NOVEMBER, tick=False):
        yield


def use(company, feature: str, used: int):
    UsageCounter.objects.create(
        company=company, feature=Feature.objects.get(code=feature), period_start=NOV, period_end=DEC,
        used=used, updated_at=NOV,
    )


def limit(tier: str, feature: str, **terms):
    TierLimit.objects.filter(tier__code=tier, feature__code=feature).update(**terms)


def check(client, feature="bulk_jobs", quantity=1):
    r = client.post(CHECK, {"feature": feature, "quantity": quantity}, format="json")
    assert r.status_code == 200, r.content
    return r.json()


def test_it_lists_every_feature_with_its_terms_and_use(acme, key_client):
    limit("starter", "bulk_jobs", mode=LimitMode.HARD)
    use(acme, "bulk_jobs", 7)
    r = key_client(acme).get("/api/v1/entitlements/")
    assert r.status_code == 200
    features = {f["feature"]: f for f in r.json()["features"]}
    assert list(features) == ["quotes", "bulk_jobs", "directory_invites"]
    bulk = features["bulk_jobs"]
    assert (bulk["included"], bulk["used"], bulk["remaining"], bulk["mode"], bulk["accepts"]) == (10, 7, 3, "hard", 3)
    assert bulk["resets_at"] == "2026-12-01T00:00:00Z"
    quotes = features["quotes"]
    assert (quotes["included"], quotes["used"], quotes["remaining"], quotes["mode"], quotes["accepts"]) == (
        1000, 0, 1000, "soft", None,
    )


@pytest.mark.parametrize("used, allowed, remaining", [(8, True, 2), (9, True, 1), (10, False, 0)])
def test_a_hard_limit_refuses_what_would_pass_it(acme, key_client, used, allowed, remaining):
    limit("starter", "bulk_jobs", mode=LimitMode.HARD)  # 10 included
    use(acme, "bulk_jobs", used)
    answer = check(key_client(acme))
    assert (answer["allowed"], answer["remaining"]) == (allowed, remaining)
    if not allowed:
        assert "Hard limit" in answer["reason"] and "2026-12-01" in answer["reason"]


def test_a_hard_limit_weighs_the_quantity_asked_for(acme, key_client):
    limit("starter", "bulk_jobs", mode=LimitMode.HARD)
    use(acme, "bulk_jobs", 7)
    client = key_client(acme)
    assert check(client, quantity=3)["allowed"] is True
    assert check(client, quantity=4)["allowed"] is False


@pytest.mark.parametrize("used, allowed", [(14, True), (15, False), (9, True)])
def test_capped_overage_refuses_at_the_cap(acme, key_client, used, allowed):
    # 10 included, $2 each beyond, $10 cap: the 15th unit is the last accepted.
    limit("starter", "bulk_jobs", mode=LimitMode.CAPPED, overage_cap=1_000)
    use(acme, "bulk_jobs", used)
    answer = check(key_client(acme))
    assert answer["allowed"] is allowed
    assert answer["remaining"] == 15 - used
    if not allowed:
        assert "Overage cap" in answer["reason"]


@pytest.mark.parametrize("used, remaining, billed", [(9, 1, False), (10, 0, True), (11, 0, True)])
def test_soft_always_allows_and_says_when_overage_is_billed(acme, key_client, used, remaining, billed):
    use(acme, "bulk_jobs", used)
    answer = check(key_client(acme))
    assert (answer["allowed"], answer["remaining"]) == (True, remaining)
    assert ("billed as overage" in answer["reason"]) is billed


def test_an_override_in_force_decides_and_stops_when_it_ends(acme, key_client):
    EntitlementOverride.objects.create(
        company=acme, feature=Feature.objects.get(code="bulk_jobs"), included=20, mode=LimitMode.HARD,
        starts_at=MID_NOVEMBER - timedelta(days=1), ends_at=MID_NOVEMBER + timedelta(days=1),
    )
    use(acme, "bulk_jobs", 20)
    client = key_client(acme)
    answer = check(client)
    assert (answer["allowed"], answer["remaining"]) == (False, 0)
    with time_machine.travel(MID_NOVEMBER + timedelta(days=2), tick=False):
        answer = check(client)
    assert (answer["allowed"], answer["remaining"]) == (True, 0)  # back on Starter's soft 10


def test_it_reads_counters_in_a_fixed_number_of_queries(acme, key_client):
    client = key_client(acme)
    use(acme, "bulk_jobs", 3)
    check(client)  # warm-up: the key's last use is recorded once a minute
    with CaptureQueriesContext(connection) as ctx:
        check(client)
    assert len(ctx.captured_queries) <= 5
    assert not any("usage_usageevent" in q["sql"] for q in ctx.captured_queries)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"feature": "teleports", "quantity": 1}, "feature"),
        ({"quantity": 1}, "feature"),
        ({"feature": "bulk_jobs", "quantity": 0}, "quantity"),
        ({"feature": "bulk_jobs", "quantity": "many"}, "quantity"),
        ({"feature": "bulk_jobs", "quantity": 10**13}, "quantity"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(acme, key_client, body, field):
    r = key_client(acme).post(CHECK, body, format="json")
    assert r.status_code == 400
    assert [f["field"] for f in r.json()["error"]["fields"]] == [field]


def test_it_needs_an_api_key(acme, member_client):
    assert member_client(acme.owner).post(CHECK, {"feature": "quotes"}, format="json").status_code in (401, 403)
    assert member_client(acme.owner).get("/api/v1/entitlements/").status_code in (401, 403)


def test_both_operations_are_in_the_openapi_schema(client):
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    assert "get" in paths["/api/v1/entitlements/"]
    check_op = paths["/api/v1/entitlements/check/"]["post"]
    assert "EntitlementCheckIn" in str(check_op["requestBody"])


@pytest.mark.parametrize(
    "body",
    [
        {"feature": "bulk_jobs", "quantity": 2},
        {"feature": "bulk_jobs"},
        {"feature": " bulk_jobs ", "quantity": "2"},  # coerced as the serializer coerces
        {"feature": "bulk_jobs", "quantity": 0},
        {"feature": "teleports"},
        ["bulk_jobs"],
        {"feature": "bulk_jobs", "quantity": True},
    ],
)
def test_the_lean_check_answers_exactly_as_the_drf_view(acme, key_client, body):
    """A well-formed call is served without DRF (``usage.lean``); one the lean view does not
    take (another ``Accept``) goes through DRF. Both say the same, status and body."""
    limit("starter", "bulk_jobs", mode=LimitMode.HARD)
    use(acme, "bulk_jobs", 7)
    client = key_client(acme)
    lean = client.post(CHECK, body, format="json")
    drf = client.post(CHECK, body, format="json", HTTP_ACCEPT="application/json; version=1")
    assert (lean.status_code, lean.json()) == (drf.status_code, drf.json())
    assert lean["Allow"] == drf["Allow"] == "POST, OPTIONS"


@pytest.mark.django_db(transaction=True)
def test_an_address_locked_out_elsewhere_is_refused_within_a_second_and_at_once_after_its_own_guesses(
    acme, make_key, settings
):
    """A key this process holds skips the lockout read for a second after Redis said the
    address was clear; a lockout counted by another process applies within that second,
    one counted here at once."""
    import time

    from django.core.cache import cache
    from rest_framework.test import APIClient

    from accounts.auth import api_key_failure_key

    settings.API_KEY_FAILURES_PER_IP = 3
    guesser = "203.0.113.91"
    secret = make_key(acme)

    def call(key: str):
        return APIClient().post(CHECK, {"feature": "quotes"}, format="json",
                                HTTP_AUTHORIZATION=f"Api-Key {key}", REMOTE_ADDR=guesser)

    with time_machine.travel(time.time(), tick=False) as clock:
        window = int(time.time() // settings.API_KEY_FAILURE_WINDOW_SECONDS)
        for w in (window, window + 1):
            cache.delete(api_key_failure_key(guesser, w))
        assert call(secret).status_code == 200  # key and address now trusted by this process
        cache.set(api_key_failure_key(guesser, window), 3, timeout=120)  # another process's count
        assert call(secret).status_code == 200  # within the second this process trusts
        clock.shift(1.0)
        refused = call(secret)
        assert refused.status_code == 429
        assert refused.json()["error"]["message"].startswith("Too many failed API-key attempts")

        cache.delete(api_key_failure_key(guesser, window))
        clock.shift(1.0)
        assert call(secret).status_code == 200  # trusted again
        assert [call(f"{secret.split('.')[0]}.wrong").status_code for _ in range(3)] == [401] * 3
        assert call(secret).status_code == 429  # its own guesses: at once, no waiting
