"""Game days in admin: durations in words, and pass or fail against the RTO target with
the reason, in the list and on the page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from regions.models import GameDay, Region

pytestmark = pytest.mark.django_db


@pytest.fixture
def drills(db):
    now = timezone.now()
    primary = Region.objects.create(name="Primary", slug="primary", base_url="http://127.0.0.1:9", order=0)
    secondary = Region.objects.create(name="Secondary", slug="secondary", base_url="http://127.0.0.1:10", order=1)
    passed = GameDay.objects.create(
        started_at=now - timedelta(days=1), region=primary, method="fake-region", detected_after_s=61.2,
        switched_after_s=68.125354, switched_to=secondary, succeeded=True,
        notes="RTO 1 min 8 s within the 15 min target",
    )
    failed = GameDay.objects.create(
        started_at=now, region=primary, method="drill-switch", succeeded=False,
        notes="no failover within 180 s: the gate kept traffic on Primary: Primary is pinned by olivia",
    )
    old = GameDay.objects.create(  # stored before game days kept a verdict
        started_at=now - timedelta(days=9), region=primary, method="fake-region", switched_after_s=1000.0,
        switched_to=secondary, succeeded=False,
    )
    return passed, failed, old


def test_the_list_shows_durations_and_the_verdict(ops_client, drills):
    page = ops_client.get("/admin/regions/gameday/").content.decode()
    assert "68.125354" not in page and "1 min 8 s" in page and "1 min 1 s" in page
    assert "Passed" in page and "RTO 1 min 8 s within the 15 min target" in page
    assert "Failed" in page and "no failover within 180 s" in page
    assert "RTO 16 min 40 s missed the 15 min target" in page  # judged now for the old one


def test_a_failed_game_day_page_gives_the_whole_reason(ops_client, drills):
    _, failed, _ = drills
    page = ops_client.get(f"/admin/regions/gameday/{failed.pk}/change/").content.decode()
    assert "no failover within 180 s: the gate kept traffic on Primary: Primary is pinned by olivia" in page
    assert "not detected" in page and "no failover" in page
    assert "15 min (REGIONS_RTO_TARGET_SECONDS)" in page
