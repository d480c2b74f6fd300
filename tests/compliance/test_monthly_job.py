"""The monthly job: beat runs it on the 1st; a real worker stores last month's pack,
once however often it runs."""

from __future__ import annotations

import hashlib

import pytest
import time_machine
from celery.contrib.testing.worker import start_worker
from django_celery_beat.models import PeriodicTask

import compliance.tasks
from audit.models import AuditLog
from compliance.models import EvidencePack
from compliance.pack import zip_verify
from tests.waiting import until
from trans_bot.celery import app


@pytest.mark.django_db
def test_the_pack_is_scheduled_on_the_first_of_each_month():
    task = PeriodicTask.objects.get(task="compliance.tasks.store_monthly_evidence_pack")
    assert task.enabled and task.name == "Monthly SOC 2 evidence pack"
    crontab = task.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_month, str(crontab.timezone)) == ("0", "4", "1", "UTC")


@pytest.mark.django_db(transaction=True)
def test_the_worker_stores_last_months_pack_once(quarter):
    app.control.purge()
    with time_machine.travel("2026-11-01 04:00Z", tick=True):
        with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, loglevel="WARNING"):
            compliance.tasks.store_monthly_evidence_pack.delay()
            assert until(EvidencePack.objects.exists), "the worker did not store the pack"
        again = compliance.tasks.store_monthly_evidence_pack.apply().get()  # beat firing twice: a retry

    pack = EvidencePack.objects.get()
    assert again == pack.pk
    assert (str(pack.first_day), str(pack.last_day)) == ("2026-10-01", "2026-10-31")
    assert pack.created_by == "evidence-monthly"
    data = bytes(pack.file)
    assert hashlib.sha256(data).hexdigest() == pack.sha256 and len(data) == pack.size
    check = zip_verify(data)
    # October's records; the key revoked in November is not among them.
    assert check.period == "2026-10-01..2026-10-31" and check.audit_records == 8
    stored = AuditLog.objects.filter(action="compliance.evidence.store").get()
    assert stored.details["sha256"] == pack.sha256 and stored.actor_label == "evidence-monthly"
