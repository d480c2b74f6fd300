"""The owners' monthly spend cap: at the cap, soft features refuse overage (422
limit_reached naming the cap) until the owners raise it or the period ends; usage within
the included quantity is never refused; concurrent batches never overshoot it together."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import time_machine
from django.db import connection
from rest_framework.test import APIClient

from usage.models import UsageCounter, UsageEvent

NOV_16 = datetime(2026, 11, 16, 12, tzinfo=UTC)
DEC_2 = datetime(2026, 12, 2, 12, tzinfo=UTC)
_keys = iter(range(10**9))


def post(client, quantity: int, feature: str = "quotes"):
    events = [{"feature": feature, "quantity": quantity, "idempotency_key": f"s{next(_keys)}"}]
    return client.post("/api/v1/usage/events/", {"events": events}, format="json")


def quotes_used(company) -> int:
    return sum(UsageCounter.objects.filter(company=company, feature__code="quotes").values_list("used", flat=True))


@pytest.fixture
def capped(acme):
    """Acme on Starter (1,000 quotes included, 5 cents each beyond), capped at $10 of
    overage a month: 200 quotes beyond the limit."""
    acme.spend_cap = 1_000
    acme.save()
    return acme


@pytest.mark.django_db
class TestTheCap:
    def test_overage_up_to_the_cap_is_accepted(self, capped, key_client):
        client = key_client(capped)
        with time_machine.travel(NOV_16, tick=False):
            assert post(client, 1000).status_code == 200
            assert post(client, 200).status_code == 200  # exactly $10.00 of overage
        assert quotes_used(capped) == 1200

    def test_just_past_the_cap_the_batch_is_refused_naming_the_cap(self, capped, key_client):
        client = key_client(capped)
        with time_machine.travel(NOV_16, tick=False):
            assert post(client, 1199).status_code == 200
            refused = post(client, 2)
        assert refused.status_code == 422
        error = refused.json()["error"]
        assert error["code"] == "limit_reached"
        assert "monthly spend cap of 10.00 USD (9.95 USD spent)" in error["message"]
        assert error["fields"][0]["field"] == "events.0.feature"
        assert quotes_used(capped) == 1199
        assert UsageEvent.objects.filter(company=capped).count() == 1

    def test_raising_the_cap_lets_overage_through_again(self, capped, key_client):
        client = key_client(capped)
        with time_machine.travel(NOV_16, tick=False):
            post(client, 1200)
            assert post(client, 1).status_code == 422
            capped.spend_cap = 2_000
            capped.save()
            assert post(client, 1).status_code == 200
            capped.spend_cap = None
            capped.save()
            assert post(client, 10_000).status_code == 200

    def test_the_next_period_starts_afresh(self, capped, key_client):
        client = key_client(capped)
        with time_machine.travel(NOV_16, tick=False):
            post(client, 1200)
            assert post(client, 1).status_code == 422
        with time_machine.travel(DEC_2, tick=False):
            assert post(client, 1100).status_code == 200

    def test_features_within_their_included_quantity_are_not_refused(self, capped, key_client):
        client = key_client(capped)
        with time_machine.travel(NOV_16, tick=False):
            post(client, 1200)
            assert post(client, 1).status_code == 422
            assert post(client, 5, feature="bulk_jobs").status_code == 200  # 10 included
            # ... but their overage counts against the same cap
            assert post(client, 6, feature="bulk_jobs").status_code == 422

    def test_overage_of_all_features_adds_up_to_the_cap(self, capped, key_client):
        client = key_client(capped)
        with time_machine.travel(NOV_16, tick=False):
            assert post(client, 1100).status_code == 200  # $5.00
            assert post(client, 12, feature="bulk_jobs").status_code == 200  # 2 beyond at $2: $4.00
            assert post(client, 21).status_code == 422  # $1.05 more would pass $10.00
            assert post(client, 20).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_eight_threads_never_overshoot_the_cap_together(capped, make_key):
    assert connection.vendor == "postgresql"
    secrets = [make_key(capped, name=f"backend-{i}") for i in range(8)]
    UsageCounter.objects.create(
        company=capped, feature_id=capped.tier.limits.get(feature__code="quotes").feature_id,
        period_start=datetime(2026, 11, 1, tzinfo=UTC), period_end=datetime(2026, 12, 1, tzinfo=UTC),
        used=1000, updated_at=NOV_16,
    )
    statuses: list[int] = []
    start = threading.Barrier(8)

    def run(i: int) -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secrets[i]}")
            start.wait()
            for _ in range(5):
                statuses.append(post(client, 10).status_code)
        finally:
            connection.close()

    with time_machine.travel(NOV_16, tick=True):
        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(set(statuses)) == [200, 422]
    assert statuses.count(200) == 20  # 200 quotes beyond the limit is exactly the cap
    assert quotes_used(capped) == 1200


@pytest.mark.django_db
def test_the_entitlement_check_says_the_spend_cap_refuses(capped, key_client):
    client = key_client(capped)
    with time_machine.travel(NOV_16, tick=False):
        post(client, 1199)
        fits = client.post("/api/v1/entitlements/check/", {"feature": "quotes", "quantity": 1}, format="json")
        past = client.post("/api/v1/entitlements/check/", {"feature": "quotes", "quantity": 2}, format="json")
        included = client.post("/api/v1/entitlements/check/", {"feature": "bulk_jobs", "quantity": 1}, format="json")
    assert fits.json()["allowed"] is True
    assert past.json()["allowed"] is False and past.json()["reason"].startswith("Spend cap:")
    assert "monthly spend cap of 10.00 USD" in past.json()["reason"]
    assert included.json()["allowed"] is True
