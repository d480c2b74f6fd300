"""End to end through a real Celery worker and Redis: the beat task fails over."""

from __future__ import annotations

import threading

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun

from ops.models import Notification
from regions.models import FailoverEvent, Probe
from regions.tasks import probe_regions
from tests.regions.conftest import active_slug
from trans_bot.celery import app


@pytest.fixture
def worker(settings):
    assert settings.CELERY_BROKER_URL.startswith("redis://"), "this test needs the Redis broker"
    app.control.purge()
    finished = threading.Semaphore(0)

    def on_done(sender=None, **kwargs):
        if sender is not None and sender.name == probe_regions.name:
            finished.release()

    task_postrun.connect(on_done, weak=False)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            yield finished
    finally:
        task_postrun.disconnect(on_done)


@pytest.mark.django_db(transaction=True)
def test_the_worker_fails_over_after_three_failed_cycles(worker, primary, secondary, fake_primary):
    fake_primary.set_mode("fail")
    for expected_active in ("primary", "primary", "secondary"):
        probe_regions.delay()
        assert worker.acquire(timeout=60), "the worker did not finish the probe task"
        assert active_slug() == expected_active

    assert Probe.objects.count() == 6
    event = FailoverEvent.objects.get()
    assert event.kind == "automatic" and event.to_region.slug == "secondary"
    assert Notification.objects.filter(kind="region.failover").count() == 1
