"""Ingestion honours hard limits and overage caps: a batch that would pass one is refused
whole (422, limit_reached, naming the event and feature); soft features are counted as
always; replays of stored events are never refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from billing.plans.models import EntitlementOverride, Feature, LimitMode, TierLimit
from usage.models import UsageCounter, UsageEvent

pytestmark = pytest.mark.django_db

MID_NOVEMBER = datetime(2026, 11, 16, tzinfo=UTC)
URL = "/api/v1/usage/events/"
_n = iter(range(10**6))


@pytest.fixture(autouse=True)
def _mid_november():
    with time_machine.travel(MID_NOVEMBER, tick=False):
        yield


def limit(tier: str, feature: str, **terms):
    TierLimit.objects.filter(tier__code=tier, feature__code=feature).update(**terms)


def send(client, *quantities, feature="bulk_jobs", keys=None):
    keys = keys or [f"k{next(_n)}" for _ in quantities]
    events = [{"feature": feature, "quantity": q, "idempotency_key": k} for q, k in zip(quantities, keys, strict=True)]
    return client.post(URL, {"events": events}, format="json")


def used(company, feature="bulk_jobs") -> int:
    counter = UsageCounter.objects.filter(company=company, feature__code=feature).first()
    return counter.used if counter else 0


@pytest.mark.parametrize("before, allowed", [(8, True), (9, True), (10, False)])
def test_a_hard_limit_at_just_below_and_at_the_limit(acme, key_client, before, allowed):
    limit("starter", "bulk_jobs", mode=LimitMode.HARD)  # 10 included
    client = key_client(acme)
    if before:
        assert send(client, before).status_code == 200
    r = send(client, 1)
    assert r.status_code == (200 if allowed else 422)
    assert used(acme) == before + (1 if allowed else 0)


def test_a_batch_passing_a_hard_limit_is_refused_whole_naming_the_event(acme, key_client):
    limit("starter", "bulk_jobs", mode=LimitMode.HARD)
    client = key_client(acme)
    assert send(client, 6).status_code == 200
    r = client.post(
        URL,
        {"events": [
            {"feature": "quotes", "quantity": 5, "idempotency_key": "q1"},
            {"feature": "bulk_jobs", "quantity": 3, "idempotency_key": "b1"},
            {"feature": "bulk_jobs", "quantity": 2, "idempotency_key": "b2"},  # 6 + 3 + 2 = 11 > 10
        ]},
        format="json",
    )
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "limit_reached"
    assert error["fields"][0]["field"] == "events.2.feature"
    assert "Event 2" in error["message"] and "bulk_jobs" in error["message"] and "hard limit of 10" in error["message"]
    # Nothing of the batch was stored or counted, the soft quotes included.
    assert used(acme) == 6 and used(acme, "quotes") == 0
    assert not UsageEvent.objects.filter(idempotency_key__in=["q1", "b1", "b2"]).exists()


def test_a_single_event_larger_than_the_limit_is_refused(acme, key_client):
    limit("starter", "bulk_jobs", mode=LimitMode.HARD)
    r = send(key_client(acme), 11)
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "events.0.feature"
    assert used(acme) == 0


def test_replaying_accepted_events_at_the_limit_answers_as_before(acme, key_client):
    limit("starter", "bulk_jobs", mode=LimitMode.HARD)
    client = key_client(acme)
    first = send(client, 4, 6, keys=["a", "b"])
    assert first.status_code == 200 and first.json()["accepted"] == 2
    again = send(client, 4, 6, keys=["a", "b"])
    assert again.status_code == 200
    assert again.json() == {"accepted": 0, "duplicates": 2, "duplicate_keys": ["a", "b"]}
    assert used(acme) == 10
    # A replay with one new event past the limit is refused whole.
    assert send(client, 4, 1, keys=["a", "c"]).status_code == 422


@pytest.mark.parametrize("before, quantity, allowed", [(14, 1, True), (15, 1, False), (10, 5, True), (10, 6, False)])
def test_capped_overage_accepts_up_to_the_cap(acme, key_client, before, quantity, allowed):
    # 10 included, $2 each beyond, $10 cap: 15 units in all.
    limit("starter", "bulk_jobs", mode=LimitMode.CAPPED, overage_cap=1_000)
    client = key_client(acme)
    assert send(client, before).status_code == 200
    r = send(client, quantity)
    assert r.status_code == (200 if allowed else 422)
    if not allowed:
        assert "overage cap" in r.json()["error"]["message"]
    assert used(acme) == before + (quantity if allowed else 0)


@pytest.mark.parametrize("quantity", [9, 10, 11, 500])
def test_soft_limits_accept_everything_as_before(acme, key_client, quantity):
    r = send(key_client(acme), quantity)
    assert r.status_code == 200 and r.json()["accepted"] == 1
    assert used(acme) == quantity


def test_an_override_raises_a_hard_limit_while_in_force(acme, key_client):
    limit("starter", "bulk_jobs", mode=LimitMode.HARD)
    EntitlementOverride.objects.create(
        company=acme, feature=Feature.objects.get(code="bulk_jobs"), included=20, mode=LimitMode.HARD,
        starts_at=MID_NOVEMBER - timedelta(days=1), ends_at=MID_NOVEMBER + timedelta(days=1),
    )
    client = key_client(acme)
    assert send(client, 15).status_code == 200
    assert send(client, 6).status_code == 422
    with time_machine.travel(MID_NOVEMBER + timedelta(days=2), tick=False):
        # Back on Starter's hard 10: already past it, nothing more is accepted.
        assert send(client, 1).status_code == 422
    assert used(acme) == 15


def test_another_companys_use_does_not_count_against_the_limit(acme, globex, key_client, catalogue):
    limit("starter", "bulk_jobs", mode=LimitMode.HARD)
    assert send(key_client(acme), 10).status_code == 200
    other = globex
    other.tier = catalogue["starter"]
    other.save(update_fields=["tier"])
    assert send(key_client(other), 10).status_code == 200


def test_the_portable_path_refuses_the_same_way(acme, key_client, monkeypatch):
    """The embedded demo's path (SQLite), run here on PostgreSQL through the same service."""
    from usage import services

    monkeypatch.setattr(services, "_insert_postgresql", services._insert_portable)
    limit("starter", "bulk_jobs", mode=LimitMode.HARD)
    client = key_client(acme)
    assert send(client, 9, feature="bulk_jobs").status_code == 200
    assert send(client, 3, feature="quotes").status_code == 200
    r = send(client, 1, 1)
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "events.1.feature"
    assert (used(acme), used(acme, "quotes")) == (9, 3)
    assert send(client, 1).status_code == 200 and used(acme) == 10


def test_the_ingest_schema_documents_the_refusal(client):
    spec = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    responses = spec["paths"]["/api/v1/usage/events/"]["post"]["responses"]
    assert "limit_reached" in responses["422"]["description"]
