"""Monthly partitions of the usage events: made ahead by beat, an event for a month without
its partition still stored (DEFAULT) and moved out with an ops alert, and retention that
exports, verifies and only then drops, audited, keeping the counters."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from datetime import UTC, datetime, timedelta
from importlib import import_module

import pytest
import time_machine
from celery.contrib.testing.worker import start_worker
from django.apps import apps as global_apps
from django.db import connection
from django_celery_beat.models import PeriodicTask

from audit.models import AuditLog
from billing.plans.models import Feature
from ops.models import Notification
from tests.waiting import until
from trans_bot.celery import app
from usage import partitions
from usage.models import UsageCounter, UsageEvent

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="partitioning is PostgreSQL's")

EVENTS_URL = "/api/v1/usage/events/"
SUMMARY_URL = "/api/v1/usage/summary/"


def where(pk: int) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM usage_usageevent WHERE id = %s", [pk])
        row = cursor.fetchone()
    return row[0] if row else None


def table_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [name])
        return cursor.fetchone()[0] is not None


def add_events(company, feature, month: datetime, n: int) -> list[UsageEvent]:
    """Stored and checked now, as if an earlier transaction had committed them (a table with
    foreign-key checks still pending cannot be dropped)."""
    events = UsageEvent.objects.bulk_create(
        [
            UsageEvent(company=company, feature=feature, quantity=i + 1, idempotency_key=f"{month:%Y%m}-{i}",
                       fingerprint=f"{i:064x}", occurred_at=month + timedelta(hours=i),
                       received_at=month + timedelta(hours=i), period_start=month)
            for i in range(n)
        ]
    )
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    return events


@pytest.mark.django_db
def test_it_makes_this_month_and_the_next_two_once():
    now = datetime(2030, 5, 10, tzinfo=UTC)
    first = partitions.usage_partitions_ensure(now=now)
    assert first.created == ["usage_usageevent_p2030_05", "usage_usageevent_p2030_06", "usage_usageevent_p2030_07"]
    assert partitions.usage_partitions_ensure(now=now).created == []
    assert partitions.usage_partitions_ensure(now=now + timedelta(days=31)).created == ["usage_usageevent_p2030_08"]
    assert AuditLog.objects.filter(action="usage.partitions.create").count() == 2


@pytest.mark.django_db
def test_an_event_for_a_month_without_its_partition_is_stored_then_moved_and_ops_are_told(acme, key_client):
    client = key_client(acme)
    with time_machine.travel(datetime(2030, 9, 10, 12, tzinfo=UTC), tick=False):
        r = client.post(EVENTS_URL, {"events": [{"feature": "quotes", "quantity": 7, "idempotency_key": "far"}]},
                        format="json")
        assert r.status_code == 200, r.content
        event = UsageEvent.objects.get(company=acme, idempotency_key="far")
        assert where(event.pk) == "usage_usageevent_default"
        summary = client.get(SUMMARY_URL).json()

        report = partitions.usage_partitions_ensure()

        assert report.moved_from_default == 1
        assert "usage_usageevent_p2030_09" in report.created
        assert where(event.pk) == "usage_usageevent_p2030_09"
        assert UsageEvent.objects.get(pk=event.pk).quantity == 7
        alert = Notification.objects.get(kind="usage.partition_default")
        assert alert.severity == "warning" and "2030-09" in alert.text
        # The retry of the same event is still a duplicate, and the customer sees no change.
        again = client.post(EVENTS_URL, {"events": [{"feature": "quotes", "quantity": 7, "idempotency_key": "far"}]},
                            format="json")
        assert again.json()["duplicates"] == 1
        assert client.get(SUMMARY_URL).json() == summary


@pytest.mark.django_db
def test_retention_exports_verifies_then_drops_old_months_and_keeps_counters(acme, catalogue, tmp_path):
    quotes = Feature.objects.get(code="quotes")
    march, april = datetime(2031, 3, 1, tzinfo=UTC), datetime(2031, 4, 1, tzinfo=UTC)
    partitions.usage_partitions_ensure(now=march, ahead=1)
    old = add_events(acme, quotes, march, 5)
    kept = add_events(acme, quotes, april, 2)
    UsageCounter.objects.create(company=acme, feature=quotes, period_start=march, period_end=april, used=15,
                                updated_at=april)

    archives = partitions.usage_partitions_retire(now=datetime(2031, 6, 15, tzinfo=UTC), keep_months=2,
                                                  export_dir=tmp_path)

    # June, May and April are kept; March and anything older goes.
    assert all(a.month < "2031-04" for a in archives)
    (march_archive,) = [a for a in archives if a.month == "2031-03"]
    assert not table_exists("usage_usageevent_p2031_03")
    assert table_exists("usage_usageevent_p2031_04")
    assert set(UsageEvent.objects.filter(company=acme).values_list("pk", flat=True)) == {e.pk for e in kept}
    assert UsageCounter.objects.get(company=acme, period_start=march).used == 15

    path = tmp_path / "usage_usageevent_p2031_03.csv.gz"
    assert march_archive.path == str(path) and march_archive.rows == 5
    assert hashlib.sha256(path.read_bytes()).hexdigest() == march_archive.sha256
    with gzip.open(path, "rt", newline="") as f:
        exported = list(csv.DictReader(f))
    assert [(int(r["id"]), r["idempotency_key"], int(r["quantity"])) for r in exported] == [
        (e.pk, e.idempotency_key, e.quantity) for e in old
    ]
    manifest = json.loads((tmp_path / "usage_usageevent_p2031_03.json").read_text())
    assert (manifest["rows"], manifest["sha256"]) == (5, march_archive.sha256)
    record = AuditLog.objects.get(action="usage.partitions.retire", target_id="usage_usageevent_p2031_03")
    assert record.details["sha256"] == march_archive.sha256 and record.details["rows"] == 5

    # Nothing more is due.
    assert partitions.usage_partitions_retire(now=datetime(2031, 6, 15, tzinfo=UTC), keep_months=2,
                                              export_dir=tmp_path) == []


@pytest.mark.django_db
def test_a_failed_export_drops_nothing_and_the_next_run_finishes_it(acme, catalogue, tmp_path):
    quotes = Feature.objects.get(code="quotes")
    month = datetime(2032, 1, 1, tzinfo=UTC)
    partitions.usage_partitions_ensure(now=month, ahead=0)
    events = add_events(acme, quotes, month, 3)
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    now = datetime(2032, 6, 1, tzinfo=UTC)

    cutoff = datetime(2032, 4, 1, tzinfo=UTC)
    due = sorted(name for month, name in partitions.attached_partitions().items() if month < cutoff)
    with pytest.raises(OSError):
        partitions.usage_partitions_retire(now=now, keep_months=2, export_dir=blocked)
    # The first one due was detached (no longer read with the events) but nothing was dropped.
    assert list(partitions._detached_partitions().values()) == due[:1]
    assert all(table_exists(name) for name in due)
    assert not AuditLog.objects.filter(action="usage.partitions.retire").exists()

    archives = partitions.usage_partitions_retire(now=now, keep_months=2, export_dir=tmp_path / "exports")
    assert [a.partition for a in archives] == due
    (archive,) = [a for a in archives if a.month == "2032-01"]
    assert archive.rows == 3 and not table_exists("usage_usageevent_p2032_01")
    assert not UsageEvent.objects.filter(pk__in=[e.pk for e in events]).exists()


@pytest.mark.django_db
def test_a_corrupt_export_is_refused_and_ops_are_alerted(acme, catalogue, tmp_path):
    quotes = Feature.objects.get(code="quotes")
    month = datetime(2033, 2, 1, tzinfo=UTC)
    partitions.usage_partitions_ensure(now=month, ahead=0)
    add_events(acme, quotes, month, 4)
    archive = partitions._export(month=month, name="usage_usageevent_p2033_02", export_dir=tmp_path)
    path = tmp_path / "usage_usageevent_p2033_02.csv.gz"
    lines = gzip.decompress(path.read_bytes()).decode().splitlines(keepends=True)
    path.write_bytes(gzip.compress("".join(lines[:-1]).encode()))  # one record lost

    with pytest.raises(partitions.RetentionError, match="3 records in the file, 4 in the table"):
        partitions._verify(archive)
    alert = Notification.objects.get(kind="usage.partition_export_failed")
    assert alert.severity == "critical" and "nothing was dropped" in alert.title


@pytest.mark.django_db
def test_retention_of_one_month_is_refused():
    with pytest.raises(ValueError, match="at least 2"):
        partitions.usage_partitions_retire(now=datetime(2034, 1, 1, tzinfo=UTC), keep_months=1)


@pytest.mark.django_db(transaction=True)
def test_beat_schedules_both_jobs_and_the_worker_makes_the_partitions():
    # A transactional test flushes the rows data migrations made: make them again.
    import_module("usage.migrations.0006_partition_maintenance").schedule(global_apps, None)
    hours = dict(PeriodicTask.objects.filter(task__startswith="usage.tasks.").values_list("task", "crontab__hour"))
    assert (hours["usage.tasks.ensure_event_partitions"], hours["usage.tasks.retire_event_partitions"]) == ("0", "3")
    app.control.purge()
    with time_machine.travel(datetime(2035, 7, 4, tzinfo=UTC), tick=False), start_worker(
        app, pool="solo", perform_ping_check=False, shutdown_timeout=30, loglevel="WARNING"
    ):
        app.send_task("usage.tasks.ensure_event_partitions")
        assert until(lambda: table_exists("usage_usageevent_p2035_09")), "no partitions made"
    assert table_exists("usage_usageevent_p2035_07") and table_exists("usage_usageevent_p2035_08")


@pytest.mark.django_db
def test_an_earlier_export_of_the_same_month_is_never_overwritten(acme, tmp_path):
    quotes = Feature.objects.get(code="quotes")
    month = datetime(2033, 5, 1, tzinfo=UTC)
    partitions.usage_partitions_ensure(now=month, ahead=0)
    add_events(acme, quotes, month, 2)
    first = partitions._export(month=month, name="usage_usageevent_p2033_05", export_dir=tmp_path)
    kept = (tmp_path / "usage_usageevent_p2033_05.csv.gz").read_bytes()
    second = partitions._export(month=month, name="usage_usageevent_p2033_05", export_dir=tmp_path)
    assert second.path != first.path and (tmp_path / "usage_usageevent_p2033_05.2.json").exists()
    assert (tmp_path / "usage_usageevent_p2033_05.csv.gz").read_bytes() == kept
