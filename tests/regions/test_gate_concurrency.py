"""Exactly once: many workers evaluating the same failing state make one failover."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from audit.models import AuditLog
from ops.models import Notification, OpsTask
from regions.gate import gate_evaluate
from regions.models import FailoverEvent, Region, RegionStatus

THREADS = 8


@pytest.mark.django_db(transaction=True)
def test_eight_workers_on_the_same_failing_state_fail_over_once(primary, secondary):
    Region.objects.filter(pk=primary.pk).update(
        status=RegionStatus.UNHEALTHY, consecutive_failures=3, consecutive_successes=0
    )
    barrier = threading.Barrier(THREADS)
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def worker():
        try:
            barrier.wait()
            outcomes.append(gate_evaluate().action)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert outcomes.count("failover") == 1
    assert FailoverEvent.objects.count() == 1
    assert Notification.objects.filter(kind="region.failover").count() == 1
    assert AuditLog.objects.filter(action="region.failover.automatic").count() == 1
    assert OpsTask.objects.filter(kind="region.failover").count() == 1
    assert list(Region.objects.filter(is_active=True).values_list("slug", flat=True)) == ["secondary"]
