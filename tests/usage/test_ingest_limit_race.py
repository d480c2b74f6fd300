"""Eight backends racing on one hard limit with real threads: the counter never passes the
limit, exactly the events that fit are stored, and everything else is a 422."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection
from rest_framework.test import APIClient

from billing.plans.models import LimitMode, TierLimit
from usage.models import UsageCounter, UsageEvent

THREADS = 8
BATCHES = 5


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode, terms, ceiling", [
    (LimitMode.HARD, {}, 10),
    (LimitMode.CAPPED, {"overage_cap": 1_000}, 15),  # $2 each beyond 10, $10 cap
])
def test_eight_threads_never_overshoot_a_limit(acme, make_key, mode, terms, ceiling):
    assert connection.vendor == "postgresql"
    TierLimit.objects.filter(tier__code="starter", feature__code="bulk_jobs").update(mode=mode, **terms)
    secrets = [make_key(acme, name=f"backend-{i}") for i in range(THREADS)]
    statuses: list[list[int]] = [[] for _ in range(THREADS)]
    start = threading.Barrier(THREADS)

    def run(i: int) -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secrets[i]}")
            start.wait()
            for b in range(BATCHES):
                events = [
                    {"feature": "bulk_jobs", "quantity": 1, "idempotency_key": f"t{i}-b{b}-{n}"} for n in range(2)
                ] + [{"feature": "quotes", "quantity": 1, "idempotency_key": f"t{i}-b{b}-q"}]
                r = client.post("/api/v1/usage/events/", {"events": events}, format="json")
                statuses[i].append(r.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    seen = Counter(code for s in statuses for code in s)
    assert set(seen) == {200, 422}, seen
    assert seen[200] == ceiling // 2  # each accepted batch carries 2 bulk jobs
    bulk = UsageCounter.objects.get(company=acme, feature__code="bulk_jobs")
    quotes = UsageCounter.objects.get(company=acme, feature__code="quotes")
    assert bulk.used == UsageEvent.objects.filter(company=acme, feature__code="bulk_jobs").count()
    assert bulk.used == (ceiling // 2) * 2 <= ceiling
    # The soft quotes of refused batches were not counted either: the batch is all or nothing.
    assert quotes.used == seen[200] == UsageEvent.objects.filter(company=acme, feature__code="quotes").count()
