"""A monitor run's pages read as people write: who started it, how long it took, lists
as lists (never a Python repr), shares in percent."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from usage.models import MonitorRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(db) -> MonitorRun:
    now = timezone.now()
    return MonitorRun.objects.create(
        started_at=now - timedelta(minutes=2), finished_at=now, duration_ms=68_125, status="succeeded",
        trigger="beat", companies_scanned=4, warnings=1, breaches=1, new_warnings=1, new_breaches=1, new_tasks=2,
        report={
            "worst_offenders": [
                {"company": "Over The Road", "feature": "quotes", "level": "exceeded", "percent": 124.0,
                 "used": 12400, "included": 10000},
            ],
            "new_crossings": [
                {"company": "Over The Road", "feature": "quotes", "levels": ["warning", "exceeded"],
                 "percent": 124.0, "used": 12400, "included": 10000},
            ],
        },
    )


def test_the_run_page_shows_lists_as_lists_and_durations_in_words(ops_client, run):
    page = ops_client.get(f"/admin/usage/monitorrun/{run.pk}/change/").content.decode()
    assert "['warning', 'exceeded']" not in page and "[&#x27;warning&#x27;" not in page
    assert "<li>warning</li><li>exceeded</li>" in page
    assert "124 %" in page and "12,400" in page
    assert "1 min 8 s" in page and "68125" not in page
    assert "scheduled" in page


def test_the_run_list_says_who_started_it_and_how_long_it_took(ops_client, run):
    MonitorRun.objects.create(started_at=timezone.now(), status="succeeded", trigger="admin", dry_run=True)
    page = ops_client.get("/admin/usage/monitorrun/").content.decode()
    assert "run, scheduled" in page and "dry run, by hand (admin)" in page
    assert "1 min 8 s" in page
    assert "1 warnings · 1 breaches · 2 tasks" in page
