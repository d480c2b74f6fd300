"""The dashboard as ops console: what it tells (availability window, probe settings, why
writes are refused, the nightly monitor apart from runs by hand), what it hides from who
may not see it, and its "Fail over to…" control (reason, confirmation, permission, audit)."""

from __future__ import annotations

import datetime as dt
import re
from html import unescape

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.utils import timezone

from accounts.models import Company
from audit.models import AuditLog
from billing.plans.catalogue import install_default_catalogue
from billing.plans.models import Feature, Tier, TierLimit
from billing.stripe.models import BillingEvent
from ops.models import Notification
from regions.models import FailoverEvent, FailoverPolicy, Probe, Region, RegionStatus
from usage.models import MonitorRun

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2025, 6, 2, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def two_regions(db):
    FailoverPolicy.objects.update_or_create(pk=1, defaults={"multi_region_enabled": True})
    primary = Region.objects.create(
        name="EU primary", slug="primary", base_url="http://127.0.0.1:9", order=0, is_active=True,
        status=RegionStatus.HEALTHY, consecutive_successes=5,
    )
    secondary = Region.objects.create(
        name="US standby", slug="secondary", base_url="http://127.0.0.1:10", order=1,
        status=RegionStatus.HEALTHY, consecutive_successes=5,
    )
    return primary, secondary


def dashboard(client) -> str:
    """The dashboard part of the admin index (the app list follows it)."""
    page = client.get("/admin/").content.decode()
    start = page.index('id="executive-dashboard"') if 'id="executive-dashboard"' in page else page.index("dash-no")
    return page[start : page.index('id="content-main"', start)]


def text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def test_the_header_names_the_back_office_and_view_site_leads_to_the_customer_pages(ops_client, client):
    page = ops_client.get("/admin/").content.decode()
    assert "<title>Operations | Trans Bot back office</title>" in page
    assert "Trans Bot back office" in page and "Django administration" not in page
    assert '<a href="/">View site</a>' in page
    landing = ops_client.get("/", follow=True)
    assert landing.status_code == 200 and landing.redirect_chain[-1][0] == "/login/"  # ops have no company


def test_availability_is_labelled_with_the_window_it_covers(ops_client, two_regions, clock):
    primary, _ = two_regions
    for minutes in range(0, 180, 1):  # three hours of probes of the serving region
        Probe.objects.create(
            region=primary, checked_at=NOW - dt.timedelta(minutes=minutes), ok=minutes >= 10, was_active=True
        )
    FailoverPolicy.objects.filter(pk=1).update(probe_interval_seconds=60)
    line = text(re.search(r'<p id="dash-availability">(.*?)</p>', dashboard(ops_client), re.S).group(1))
    assert "Availability over the last 3 h:" in line
    assert "30 d" not in line  # (the targets card's "Trial → paid (30 days)" is not about availability)


def test_probe_settings_come_from_the_failover_policy(ops_client, two_regions):
    FailoverPolicy.objects.filter(pk=1).update(
        probe_interval_seconds=15, failure_threshold=4, recovery_threshold=2, cooldown_seconds=900, auto_failback=True
    )
    part = text(dashboard(ops_client))
    assert (
        "Probes every 15 s · unhealthy after 4 failed in a row · healthy again after 2 good · "
        "cooldown 15 min between failovers · automatic failback on"
    ) in part


def test_a_red_line_says_why_writes_are_refused_and_what_to_do(ops_client, two_regions, clock):
    primary, secondary = two_regions
    Region.objects.filter(pk=primary.pk).update(status=RegionStatus.UNHEALTHY, consecutive_failures=4)
    FailoverPolicy.objects.filter(pk=1).update(last_failover_at=NOW - dt.timedelta(minutes=3))  # cooldown 10 min
    part = text(dashboard(ops_client))
    assert "Writes are refused (503): EU primary is failing its probes (4 in a row) and traffic stays on it: " in part
    assert "cooldown after the last failover until 12:07:00 UTC" in part
    assert "What to do: wait 7 min of cooldown (until 12:07:00 UTC): the gate then fails over to US standby" in part

    FailoverPolicy.objects.filter(pk=1).update(
        last_failover_at=None, pinned_region=primary, pinned_by="olivia"
    )
    part = text(dashboard(ops_client))
    assert "What to do: release the pin (failover policy page → 'Release the pin')" in part

    Region.objects.filter(pk=primary.pk).update(status=RegionStatus.HEALTHY, consecutive_failures=0)
    assert "Writes are refused" not in text(dashboard(ops_client))


def test_the_nightly_monitor_is_kept_apart_from_runs_by_hand(ops_client, two_regions):
    now = timezone.now()
    MonitorRun.objects.create(
        started_at=now - dt.timedelta(hours=10), status="succeeded", trigger="beat", companies_scanned=120,
        warnings=7, breaches=2, new_tasks=3,
    )
    MonitorRun.objects.create(
        started_at=now - dt.timedelta(minutes=5), status="succeeded", trigger="admin", dry_run=True,
        companies_scanned=121, warnings=1, breaches=0,
    )
    part = text(dashboard(ops_client))
    nightly = part[part.index("Last nightly monitor") :]
    assert "120 companies, 7 warnings, 2 breaches, 3 new tasks" in nightly.split("Since then")[0]
    assert "Since then, by hand (admin, dry run: nothing created or sent)" in part
    assert "121 companies, 1 warnings, 0 breaches" in part


def test_a_part_the_user_may_not_see_is_left_out_not_printed_as_none(client, staff_user, two_regions):
    install_default_catalogue(Tier=Tier, Feature=Feature, TierLimit=TierLimit)
    acme = Company.objects.create(name="Acme Freight", slug="acme", tier=Tier.objects.get(code="starter"))
    BillingEvent.objects.create(
        kind="overage", status="sent", company=acme, units=10, amount=1250, currency="USD",
        identifier="tb-1", sent_at=timezone.now(), created_at=timezone.now(),
    )
    client.force_login(staff_user)
    part = text(dashboard(client))
    assert "The dashboard's figures need the view permission" in part

    staff_user.user_permissions.add(Permission.objects.get(codename="view_billingevent"))
    part = text(dashboard(client))
    assert "12.50 USD" in part and "Failed billing events 0" in part
    assert "None" not in part
    for hidden in ("Regions", "Open ops tasks", "Usage", "failed webhooks", "undelivered alerts"):
        assert hidden not in part


def test_the_failover_control_is_offered_per_healthy_standby_to_who_may_fail_over(
    client, staff_user, ops_client, two_regions
):
    part = dashboard(ops_client)
    assert f'action="/admin/regions/region/{two_regions[1].pk}/fail-over/"' in part
    assert "Fail over to US standby…" in part and "Fail over to EU primary" not in part  # the active one

    Region.objects.filter(pk=two_regions[1].pk).update(status=RegionStatus.UNHEALTHY, consecutive_failures=3)
    assert "Fail over to US standby" not in dashboard(ops_client)  # not healthy: no button

    staff_user.user_permissions.add(Permission.objects.get(codename="view_region"))
    Region.objects.filter(pk=two_regions[1].pk).update(status=RegionStatus.HEALTHY, consecutive_failures=0)
    client.force_login(staff_user)
    part = dashboard(client)
    assert "US standby" in part and "Fail over to" not in part
    response = client.post(
        f"/admin/regions/region/{two_regions[1].pk}/fail-over/", {"reason": "try", "confirm": "1"}
    )
    assert response.status_code == 403
    assert FailoverEvent.objects.count() == 0


def test_failing_over_from_the_dashboard_asks_a_reason_then_confirmation_and_is_audited(ops_client, two_regions):
    _, secondary = two_regions
    url = f"/admin/regions/region/{secondary.pk}/fail-over/"

    empty = ops_client.post(url, {"reason": "  ", "next": "/admin/"})
    assert empty.status_code == 200 and "This field is required" in empty.content.decode()

    confirm = ops_client.post(url, {"reason": "EU database maintenance", "next": "/admin/"})
    page = confirm.content.decode()
    assert "You are about to move it to <strong>US standby</strong>" in page
    assert "EU database maintenance" in page and 'name="confirm"' in page
    assert FailoverEvent.objects.count() == 0  # nothing moved before the confirmation

    done = ops_client.post(url, {"reason": "EU database maintenance", "confirm": "1", "next": "/admin/"})
    assert done.status_code == 302 and done["Location"] == "/admin/"
    assert Region.objects.get(is_active=True).slug == "secondary"
    event = FailoverEvent.objects.get()
    assert event.kind == "manual" and event.actor == "olivia" and event.reason == "EU database maintenance"
    audit = AuditLog.objects.get(action="region.failover.manual")
    assert audit.actor_label == "olivia" and audit.details["reason"] == "EU database maintenance"
    alert = Notification.objects.get(kind="region.failover")
    assert alert.title == "Manual failover by olivia: EU primary → US standby"
    after = ops_client.get("/admin/").content.decode()
    assert "Traffic moved: Manual EU primary → US standby" in after  # the message on the dashboard
    assert re.search(r"US standby ACTIVE", text(after))


def test_the_confirmation_never_redirects_off_site(ops_client, two_regions):
    response = ops_client.post(
        f"/admin/regions/region/{two_regions[1].pk}/fail-over/",
        {"reason": "x", "confirm": "1", "next": "https://evil.example/"},
    )
    assert response.status_code == 302 and response["Location"] == "/admin/"


def test_a_recovering_active_region_is_not_called_failing(ops_client, two_regions, clock):
    primary, _ = two_regions
    Region.objects.filter(pk=primary.pk).update(
        status=RegionStatus.UNHEALTHY, consecutive_failures=0, consecutive_successes=1
    )
    FailoverPolicy.objects.filter(pk=1).update(last_failover_at=NOW - dt.timedelta(seconds=20))
    part = text(dashboard(ops_client))
    assert "Writes are refused (503): EU primary is unhealthy and recovering (1 of 3 good probes in a row)." in part
    assert "What to do: wait about 1 min: writes are accepted once EU primary passes 2 more probe(s)" in part
    assert "0 in a row" not in part
