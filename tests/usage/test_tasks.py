"""The nightly monitor as beat runs it: a task on the Redis broker, run by a real worker."""

from __future__ import annotations

import pytest
import time_machine
from celery.contrib.testing.worker import start_worker

from ops.models import OpsTask
from tests.usage.test_monitor import NIGHT, tenants  # noqa: F401  (fixture)
from tests.waiting import until
from trans_bot.celery import app
from usage.models import MonitorRun
from usage.tasks import run_usage_monitor


@pytest.mark.django_db(transaction=True)
def test_the_worker_runs_the_nightly_monitor_and_reports_the_run(tenants):  # noqa: F811
    app.control.purge()
    with time_machine.travel(NIGHT, tick=False), start_worker(
        app, pool="solo", perform_ping_check=False, shutdown_timeout=30, loglevel="WARNING"
    ):
        run_usage_monitor.delay(trigger="beat")
        assert until(lambda: MonitorRun.objects.filter(status="succeeded").exists()), "no finished run"

    run = MonitorRun.objects.get()
    assert (run.trigger, run.dry_run, run.companies_scanned) == ("beat", False, 4)
    assert (run.new_warnings, run.new_breaches) == (1, 1)
    assert set(OpsTask.objects.values_list("kind", "company__name")) == {("usage.breach", "Over Inc")}
