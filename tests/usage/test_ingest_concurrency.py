"""Eight product backends posting at once, retrying and racing on the same keys: the
counters must equal the ground truth exactly and every duplicate must be called one."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest
from django.db import connection
from rest_framework.test import APIClient

from usage.models import UsageCounter, UsageEvent

CLIENTS = 8
EVENTS_PER_CLIENT = 1000
BATCH = 50
SHARED_KEYS = 150
FEATURES = ["quotes", "bulk_jobs", "directory_invites"]


def content(key: str) -> dict:
    """Deterministic content per key, so a reused key is a true duplicate, never a conflict."""
    rnd = random.Random(key)
    return {"feature": rnd.choice(FEATURES), "quantity": rnd.randint(1, 9), "idempotency_key": key}


def plan(client_no: int) -> list[dict]:
    """1,000 events: 80 % new keys of this client, 20 % reusing keys sent before — its own
    earlier keys and keys every client shares (the same-key races)."""
    rnd = random.Random(client_no)
    events: list[dict] = []
    own: list[str] = []
    for n in range(EVENTS_PER_CLIENT):
        if n % 5 == 4:
            if own and rnd.random() < 0.5:
                key = rnd.choice(own)
            else:
                key = f"shared-{rnd.randrange(SHARED_KEYS)}"
        else:
            key = f"c{client_no}-{n}"
            own.append(key)
        events.append(content(key))
    return events


@pytest.mark.django_db(transaction=True)
def test_concurrent_clients_count_exactly_once(acme, make_key):
    secrets = [make_key(acme, name=f"backend-{i}") for i in range(CLIENTS)]
    plans = [plan(i) for i in range(CLIENTS)]
    results: list[list[tuple[int, dict]]] = [[] for _ in range(CLIENTS)]
    start = threading.Barrier(CLIENTS)

    def run(i: int) -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secrets[i]}")
            start.wait()
            for b in range(0, EVENTS_PER_CLIENT, BATCH):
                r = client.post("/api/v1/usage/events/", {"events": plans[i][b : b + BATCH]}, format="json")
                results[i].append((r.status_code, r.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    statuses = Counter(code for res in results for code, _ in res)
    assert statuses == {200: CLIENTS * EVENTS_PER_CLIENT // BATCH}, statuses

    distinct = {e["idempotency_key"]: e for p in plans for e in p}
    truth = Counter()
    for e in distinct.values():
        truth[e["feature"]] += e["quantity"]
    stored = {c.feature.code: c.used for c in UsageCounter.objects.select_related("feature")}
    assert stored == dict(truth)
    assert UsageEvent.objects.count() == len(distinct)

    accepted = sum(body["accepted"] for res in results for _, body in res)
    duplicates = sum(body["duplicates"] for res in results for _, body in res)
    assert accepted == len(distinct)
    assert duplicates == CLIENTS * EVENTS_PER_CLIENT - len(distinct)
    # every key reported as a duplicate was in fact sent more than once
    sent = Counter(e["idempotency_key"] for p in plans for e in p)
    reported = Counter(k for res in results for _, body in res for k in body["duplicate_keys"])
    assert all(sent[k] - 1 == n for k, n in reported.items())
    assert sum(reported.values()) == duplicates
