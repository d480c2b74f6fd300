"""POST /api/v1/usage/events/: all-or-nothing batches, idempotency, limits on input."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import time_machine
from django.test import override_settings
from rest_framework.test import APIClient

from accounts.models import CompanyAPIKey
from usage.models import UsageCounter, UsageEvent

pytestmark = pytest.mark.django_db
URL = "/api/v1/usage/events/"


def post(client, events):
    return client.post(URL, {"events": events}, format="json")


def counters(company):
    return {
        (c.feature.code, c.period_start): c.used
        for c in UsageCounter.objects.filter(company=company).select_related("feature")
    }


def error_fields(response):
    return [f["field"] for f in response.json()["error"]["fields"]]


def test_it_stores_and_counts_a_batch(acme, key_client):
    client = key_client(acme)
    r = post(client, [
        {"feature": "quotes", "quantity": 3, "idempotency_key": "q-1"},
        {"feature": "quotes", "idempotency_key": "q-2"},
        {"feature": "bulk_jobs", "quantity": 2, "idempotency_key": "b-1"},
    ])
    assert r.status_code == 200, r.content
    assert r.json() == {"accepted": 3, "duplicates": 0, "duplicate_keys": []}
    assert UsageEvent.objects.filter(company=acme).count() == 3
    used = {code: n for (code, _), n in counters(acme).items()}
    assert used == {"quotes": 4, "bulk_jobs": 2}


def test_a_retried_batch_is_acknowledged_and_not_counted_again(acme, key_client):
    client = key_client(acme)
    batch = [
        {"feature": "quotes", "quantity": 5, "idempotency_key": "k1"},
        {"feature": "quotes", "quantity": 7, "idempotency_key": "k2", "occurred_at": "2026-11-10T10:00:00Z"},
    ]
    with time_machine.travel(datetime(2026, 11, 10, 12, tzinfo=UTC), tick=False):
        assert post(client, batch).json()["accepted"] == 2
        again = post(client, batch)
    assert again.status_code == 200
    assert again.json() == {"accepted": 0, "duplicates": 2, "duplicate_keys": ["k1", "k2"]}
    assert list(counters(acme).values()) == [12]
    assert UsageEvent.objects.count() == 2


def test_the_same_timestamp_written_differently_is_still_a_duplicate(acme, key_client):
    client = key_client(acme)
    with time_machine.travel(datetime(2026, 11, 10, 12, tzinfo=UTC), tick=False):
        post(client, [{"feature": "quotes", "idempotency_key": "t", "occurred_at": "2026-11-10T10:00:00Z"}])
        r = post(
            client, [{"feature": "quotes", "idempotency_key": "t", "occurred_at": "2026-11-10T11:00+01:00"}]
        )
    assert r.json()["duplicates"] == 1


def test_a_reused_key_with_different_content_is_a_409_naming_the_key(acme, key_client):
    client = key_client(acme)
    post(client, [{"feature": "quotes", "quantity": 1, "idempotency_key": "order-17"}])
    r = post(client, [
        {"feature": "quotes", "quantity": 1, "idempotency_key": "fresh"},
        {"feature": "quotes", "quantity": 2, "idempotency_key": "order-17"},
    ])
    message = (
        "Idempotency key 'order-17' was already used for a different event (feature, quantity or "
        "occurred_at differ)."
    )
    assert r.status_code == 409
    assert r.json()["error"] == {
        "status": 409,
        "code": "conflict",
        "message": message,
        "fields": [{"field": "events.1.idempotency_key", "code": "conflict", "message": message}],
    }
    # all or nothing: the fresh event of the rejected batch is not stored either
    assert list(UsageEvent.objects.values_list("idempotency_key", flat=True)) == ["order-17"]
    assert list(counters(acme).values()) == [1]


def test_a_key_is_unique_per_billing_period(acme, key_client):
    """Events are partitioned by billing period, and so is the key: the same key in the next
    period is a new event, and a retry or a reuse is judged against its own period's event."""
    client = key_client(acme)
    late_november = {"feature": "quotes", "quantity": 1, "idempotency_key": "run-1",
                     "occurred_at": "2026-11-30T23:00:00Z"}
    early_december = {"feature": "quotes", "quantity": 4, "idempotency_key": "run-1",
                      "occurred_at": "2026-12-01T11:00:00Z"}
    with time_machine.travel(datetime(2026, 12, 1, 12, tzinfo=UTC), tick=False):
        assert post(client, [late_november]).json()["accepted"] == 1
        assert post(client, [early_december]).json() == {"accepted": 1, "duplicates": 0, "duplicate_keys": []}
        for retry in (early_december, late_november):
            assert post(client, [retry]).json()["duplicates"] == 1
        reused = post(client, [dict(early_december, quantity=5)])
    assert reused.status_code == 409
    assert error_fields(reused) == ["events.0.idempotency_key"]
    assert sorted(counters(acme).values()) == [1, 4]


def test_a_key_repeated_inside_one_batch(acme, key_client):
    client = key_client(acme)
    same = {"feature": "quotes", "quantity": 2, "idempotency_key": "x"}
    r = post(client, [same, dict(same)])
    assert r.json() == {"accepted": 1, "duplicates": 1, "duplicate_keys": ["x"]}
    r = post(client, [{**same, "idempotency_key": "y"}, {**same, "idempotency_key": "y", "quantity": 3}])
    assert r.status_code == 409
    assert error_fields(r) == ["events.1.idempotency_key"]
    assert list(counters(acme).values()) == [2]


def test_keys_are_per_company(acme, globex, key_client):
    event = [{"feature": "quotes", "quantity": 4, "idempotency_key": "shared-key"}]
    assert post(key_client(acme), event).json()["accepted"] == 1
    assert post(key_client(globex), [{**event[0], "quantity": 9}]).json()["accepted"] == 1
    assert list(counters(acme).values()) == [4]
    assert list(counters(globex).values()) == [9]


def _ok(**extra):
    return {"feature": "quotes", "quantity": 1, "idempotency_key": "ok-key", **extra}


NOW = datetime(2026, 11, 15, 12, tzinfo=UTC)

BAD_EVENTS = [
    ("unknown feature", {"feature": "teleports"}, "events.0.feature", "unknown_feature"),
    ("missing feature", {"feature": None}, "events.0.feature", "required"),
    ("zero quantity", {"quantity": 0}, "events.0.quantity", "min_value"),
    ("negative quantity", {"quantity": -5}, "events.0.quantity", "min_value"),
    ("fractional quantity", {"quantity": 1.5}, "events.0.quantity", "not_an_integer"),
    ("float quantity", {"quantity": 2.0}, "events.0.quantity", "not_an_integer"),
    ("string quantity", {"quantity": "3"}, "events.0.quantity", "not_an_integer"),
    ("boolean quantity", {"quantity": True}, "events.0.quantity", "not_an_integer"),
    ("absurd quantity", {"quantity": 10**12}, "events.0.quantity", "max_value"),
    ("missing key", {"idempotency_key": None}, "events.0.idempotency_key", "required"),
    ("blank key", {"idempotency_key": "  "}, "events.0.idempotency_key", "invalid"),
    ("numeric key", {"idempotency_key": 12}, "events.0.idempotency_key", "invalid"),
    ("long key", {"idempotency_key": "k" * 256}, "events.0.idempotency_key", "max_length"),
    ("NUL in key", {"idempotency_key": "k\x00"}, "events.0.idempotency_key", "null_character"),
    ("NUL in feature", {"feature": "quotes\x00"}, "events.0.feature", "null_character"),
    ("future time", {"occurred_at": "2026-11-15T12:06:00Z"}, "events.0.occurred_at", "in_future"),
    ("before period", {"occurred_at": "2026-10-31T23:59:59Z"}, "events.0.occurred_at", "before_period"),
    ("garbage time", {"occurred_at": "yesterday"}, "events.0.occurred_at", "invalid"),
    ("naive time", {"occurred_at": "2026-11-15T10:00:00"}, "events.0.occurred_at", "invalid"),
    ("unknown field", {"qty": 3}, "events.0.qty", "unknown_field"),
]


@pytest.mark.parametrize(
    "extra,field,code", [case[1:] for case in BAD_EVENTS], ids=[case[0] for case in BAD_EVENTS]
)
def test_a_bad_event_is_a_400_naming_the_field_and_nothing_is_stored(acme, key_client, extra, field, code):
    event = {k: v for k, v in _ok(**extra).items() if v is not None}
    with time_machine.travel(NOW, tick=False):
        r = post(key_client(acme), [event])
    assert r.status_code == 400, r.content
    assert {"field": field, "code": code} in [
        {"field": f["field"], "code": f["code"]} for f in r.json()["error"]["fields"]
    ]
    assert not UsageEvent.objects.exists()
    assert not UsageCounter.objects.exists()


def test_one_bad_event_rejects_the_whole_batch(acme, key_client):
    events = [_ok(idempotency_key=f"e{i}") for i in range(5)]
    events[3]["quantity"] = 0
    events[4]["feature"] = "nope"
    r = post(key_client(acme), events)
    assert r.status_code == 400
    assert error_fields(r) == ["events.3.quantity", "events.4.feature"]
    assert r.json()["error"]["message"].startswith("events.3.quantity:")
    assert not UsageEvent.objects.exists()
    assert not UsageCounter.objects.exists()


@pytest.mark.parametrize(
    "body,code",
    [
        ({}, "required"),
        ({"events": {"feature": "quotes"}}, "not_a_list"),
        ({"events": []}, "min_length"),
        ({"events": [_ok(idempotency_key=f"k{i}") for i in range(1001)]}, "max_length"),
        ([1, 2], "required"),
    ],
    ids=["no events", "not a list", "empty", "1001 events", "not an object"],
)
def test_a_bad_batch_shape_is_a_400_on_events(acme, key_client, body, code):
    r = key_client(acme).post(URL, body, format="json")
    assert r.status_code == 400
    assert r.json()["error"]["fields"][0]["field"] == "events"
    assert r.json()["error"]["fields"][0]["code"] == code
    assert not UsageEvent.objects.exists()


def test_a_batch_of_exactly_1000_is_accepted(acme, key_client):
    r = post(key_client(acme), [_ok(idempotency_key=f"k{i}") for i in range(1000)])
    assert r.json()["accepted"] == 1000
    assert list(counters(acme).values()) == [1000]


def test_malformed_json_is_a_400(acme, key_client):
    r = key_client(acme).post(URL, data='{"events": [', content_type="application/json")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "parse_error"
    assert not UsageEvent.objects.exists()


def test_a_non_json_body_is_a_415(acme, key_client):
    r = key_client(acme).post(URL, data="feature=quotes", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 415


@override_settings(USAGE_MAX_BODY_BYTES=10_000)
def test_an_oversized_body_is_a_413_in_the_error_shape(acme, key_client):
    events = [_ok(idempotency_key=f"key-{i}-" + "x" * 200) for i in range(60)]
    r = key_client(acme).post(URL, data=json.dumps({"events": events}), content_type="application/json")
    assert r.status_code == 413
    assert r.json()["error"] == {
        "status": 413,
        "code": "payload_too_large",
        "message": "The request body is larger than 10000 bytes.",
        "fields": [],
    }
    assert not UsageEvent.objects.exists()


def test_it_needs_a_valid_unrevoked_key(acme, make_key):
    anonymous = APIClient()
    assert post(anonymous, [_ok()]).status_code in (401, 403)
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Api-Key abcdefgh.not-the-secret")
    assert post(wrong, [_ok()]).status_code == 401
    secret = make_key(acme)
    CompanyAPIKey.objects.filter(company=acme).update(revoked=True)
    revoked = APIClient()
    revoked.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
    assert post(revoked, [_ok()]).status_code == 401
    assert not UsageEvent.objects.exists()


def test_a_session_user_cannot_post_events(acme, member_client):
    r = post(member_client(acme.owner), [_ok()])
    assert r.status_code in (401, 403)


def test_it_records_when_a_key_was_last_used(acme, make_key):
    secret = make_key(acme)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
    assert CompanyAPIKey.objects.get().last_used_at is None
    post(client, [_ok()])
    assert CompanyAPIKey.objects.get().last_used_at is not None


def test_too_many_requests_from_one_key_is_a_429_and_other_keys_go_on(acme, key_client):
    rates = {"DEFAULT_THROTTLE_RATES": {"usage_ingest": "3/min"}}
    from django.conf import settings

    # Inside one rate window (the limit is a fixed window per key), whatever the clock says.
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, **rates}), time_machine.travel(
        datetime(2026, 11, 25, 12, 0, 5, tzinfo=UTC), tick=False
    ):
        noisy, quiet = key_client(acme), key_client(acme)
        codes = [post(noisy, [_ok(idempotency_key=f"n{i}")]).status_code for i in range(4)]
        assert codes == [200, 200, 200, 429]
        r = post(noisy, [_ok(idempotency_key="n-late")])
        assert r.status_code == 429
        assert r.json()["error"]["code"] == "throttled"
        assert post(quiet, [_ok(idempotency_key="q0")]).status_code == 200
    assert UsageEvent.objects.count() == 4


def test_the_drf_view_and_the_lean_view_count_one_limit_per_key(acme, key_client):
    """A call the lean view does not take (another Accept) is throttled by the DRF view,
    on the same tally."""
    rates = {"DEFAULT_THROTTLE_RATES": {"usage_ingest": "3/min"}}
    from django.conf import settings

    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, **rates}), time_machine.travel(
        datetime(2026, 11, 25, 12, 0, 5, tzinfo=UTC), tick=False
    ):
        client = key_client(acme)

        def send(key: str, accept: str):
            body = json.dumps({"events": [_ok(idempotency_key=key)]})
            return client.post(URL, body, content_type="application/json", HTTP_ACCEPT=accept)

        codes = [send("d0", "application/json; version=1").status_code, send("l0", "*/*").status_code,
                 send("d1", "application/json; version=1").status_code]
        refused = send("d2", "application/json; version=1")
        lean_refused = send("l1", "*/*")

    assert codes == [200, 200, 200]
    assert refused.status_code == lean_refused.status_code == 429
    assert refused.json()["error"]["code"] == lean_refused.json()["error"]["code"] == "throttled"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert UsageEvent.objects.count() == 3


class TestGraceWindow:
    """Late events for a closed period are accepted for USAGE_GRACE_HOURS (24 h) after it closes."""

    def test_a_late_event_counts_in_the_period_it_happened(self, acme, key_client):
        client = key_client(acme)
        with time_machine.travel(datetime(2026, 12, 1, 5, tzinfo=UTC), tick=False):
            r = post(client, [_ok(occurred_at="2026-11-30T23:00:00Z", quantity=6)])
        assert r.status_code == 200, r.content
        assert counters(acme) == {("quotes", datetime(2026, 11, 1, tzinfo=UTC)): 6}

    def test_after_the_grace_window_it_is_refused(self, acme, key_client):
        with time_machine.travel(datetime(2026, 12, 2, 0, 1, tzinfo=UTC), tick=False):
            r = post(key_client(acme), [_ok(occurred_at="2026-11-30T23:00:00Z")])
        assert r.status_code == 400
        assert error_fields(r) == ["events.0.occurred_at"]

    def test_the_anchor_day_sets_the_period(self, make_company, key_client):
        company = make_company("starter", billing_anchor_day=15)
        with time_machine.travel(datetime(2026, 11, 20, tzinfo=UTC), tick=False):
            post(key_client(company), [_ok(occurred_at="2026-11-15T00:00:00Z")])
            r = post(key_client(company), [_ok(idempotency_key="early", occurred_at="2026-11-14T23:59:00Z")])
        assert r.status_code == 400
        assert counters(company) == {("quotes", datetime(2026, 11, 15, tzinfo=UTC)): 1}
