"""The admin lists ops read most, in headless Chromium at 1,400 px: nothing is cut off or
pushed out of sight (the table fits its column), a status reads on one line, and a long
title is shortened with the whole of it on hover."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import sync_playwright

from ops.services import notify, ops_task_open
from regions.models import FailoverEvent, FailoverPolicy, GameDay, Region
from usage.models import MonitorRun

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = os.environ.get("SCREENSHOT_DIR")
LONG = (
    "Find out why Primary (eu-west, the Frankfurt data centre) failed: olivia moved traffic to "
    "Secondary (us-east) at 09:01 UTC after the database on the primary stopped answering"
)
LISTS = {
    "regions": "/admin/regions/region/",
    "policy": "/admin/regions/failoverpolicy/",
    "tasks": "/admin/ops/opstask/",
    "outbox": "/admin/ops/notification/",
    "monitor": "/admin/usage/monitorrun/",
    "gamedays": "/admin/regions/gameday/",
    "failovers": "/admin/regions/failoverevent/",
}


@pytest.fixture
def busy_lists(db):
    now = timezone.now()
    primary = Region.objects.create(
        name="Primary (eu-west)", slug="primary", base_url="http://127.0.0.1:8101", order=0, is_active=True,
        status="unhealthy", consecutive_failures=12, last_latency_ms=2003.4, last_checked_at=now,
    )
    secondary = Region.objects.create(
        name="Secondary (us-east)", slug="secondary", base_url="http://127.0.0.1:8102", order=1,
        status="healthy", last_latency_ms=88.0, last_checked_at=now,
    )
    FailoverPolicy.objects.update_or_create(
        pk=1, defaults={"multi_region_enabled": True, "pinned_region": primary, "pinned_by": "olivia"}
    )
    for i in range(3):
        ops_task_open(kind="region.failover", title=f"{LONG} ({i})", severity="critical", details=LONG)
        notify(kind="region.failover", title=f"{LONG} ({i})", text=LONG, severity="critical", dedup_key=f"n{i}")
    FailoverEvent.objects.create(
        from_region=primary, to_region=secondary, kind="automatic", reason=LONG, actor="region-gate", epoch=1,
        failing_since=now - timedelta(minutes=2), decided_at=now - timedelta(minutes=1),
    )
    MonitorRun.objects.create(
        started_at=now - timedelta(hours=3), finished_at=now - timedelta(hours=3), duration_ms=68125,
        status="succeeded", trigger="beat", companies_scanned=120, warnings=7, breaches=2, new_tasks=3,
    )
    GameDay.objects.create(
        started_at=now - timedelta(days=1), region=primary, method="fake-region", detected_after_s=61.2,
        switched_after_s=68.125354, switched_to=secondary, succeeded=True,
    )
    GameDay.objects.create(
        started_at=now - timedelta(hours=5), region=primary, method="drill-switch", detected_after_s=None,
        switched_after_s=None, succeeded=False, notes="no failover within 180 s: Primary is pinned by olivia",
    )


@pytest.mark.django_db(transaction=True)
def test_admin_lists_fit_1400_px_and_long_titles_show_in_full_on_hover(live_server, ops_user, busy_lists, tmp_path):
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{live_server.url}/admin/login/?next=/admin/")
        page.fill("#id_username", "olivia")
        page.fill("#id_password", "pw-olivia-123")
        page.click("input[type=submit]")
        page.wait_for_selector("#executive-dashboard")

        for name, path in LISTS.items():
            page.goto(f"{live_server.url}{path}")
            page.wait_for_selector("#result_list")
            page.screenshot(path=os.path.join(SCREENSHOTS or str(tmp_path), f"list-{name}.png"), full_page=True)
            overflow = page.evaluate(
                """() => {
                    const table = document.querySelector('#result_list');
                    const box = table.closest('.results') || table.parentElement;
                    const page = document.documentElement.scrollWidth;
                    return {table: table.scrollWidth, room: box.clientWidth, page: page};
                }"""
            )
            assert overflow["table"] <= overflow["room"], (name, overflow)
            assert overflow["page"] <= 1400, (name, overflow)
            # Every header reads on one line: no column squeezed until its name breaks.
            headers = page.evaluate(
                """() => Array.from(document.querySelectorAll('#result_list thead th')).map(
                    th => [th.innerText.trim(), th.getBoundingClientRect().height])"""
            )
            tallest = max(height for _, height in headers)
            assert tallest < 40, (name, headers)

        for path in (LISTS["tasks"], LISTS["outbox"]):
            page.goto(f"{live_server.url}{path}")
            cell = page.locator(f'#result_list tbody [title="{LONG} (0)"]')
            assert cell.count() == 1
            assert cell.inner_text().endswith("…") and len(cell.inner_text()) < len(LONG)
            assert cell.bounding_box()["height"] < 25  # one line, not four
        browser.close()
