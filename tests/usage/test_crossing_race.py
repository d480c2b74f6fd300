"""Eight backends crossing the same level at the same moment, with real threads on
PostgreSQL: one crossing, one owners' e-mail, one ops task, one ops alert, one audit
record; every batch is stored."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from audit.models import AuditLog
from ops.models import Notification, OpsTask
from usage.models import ThresholdCrossing, UsageCounter

THREADS = 8


@pytest.mark.django_db(transaction=True)
def test_eight_requests_crossing_together_announce_once(acme, make_key):
    assert connection.vendor == "postgresql"
    secrets = [make_key(acme, name=f"backend-{i}") for i in range(THREADS)]
    statuses: list[int] = []
    start = threading.Barrier(THREADS)

    def run(i: int) -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secrets[i]}")
            start.wait()
            # Each batch alone would take quotes from 0 past both levels (80 % and 100 % of 1,000).
            events = [{"feature": "quotes", "quantity": 1000, "idempotency_key": f"t{i}"}]
            statuses.append(client.post("/api/v1/usage/events/", {"events": events}, format="json").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert statuses == [200] * THREADS
    assert UsageCounter.objects.get(company=acme, feature__code="quotes").used == 8000
    assert sorted(ThresholdCrossing.objects.values_list("level", "notified", "used")) == [
        (80, False, 1000), (100, True, 1000)
    ]
    assert Notification.objects.filter(email_to=[acme.owner.email]).count() == 1
    assert Notification.objects.filter(kind="usage.breach", dedup_key__endswith=":ops").count() == 1
    assert OpsTask.objects.filter(company=acme, kind="usage.breach").count() == 1
    assert AuditLog.objects.filter(action__startswith="usage.threshold.").count() == 1
