"""The region status API and manual failover over HTTP."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.contrib.auth.models import Permission

from audit.models import AuditLog
from ops.models import Notification
from regions.models import FailoverEvent, FailoverPolicy, Probe, Region, RegionStatus
from tests.regions.conftest import active_slug

NOW = dt.datetime(2025, 6, 30, 12, 0, tzinfo=dt.UTC)
URL = "/api/v1/regions/failover/"


def add_probes(region, *, start, count, ok, step=dt.timedelta(minutes=1), was_active=False):
    Probe.objects.bulk_create(
        Probe(region=region, checked_at=start + i * step, ok=ok, was_active=was_active) for i in range(count)
    )


@pytest.fixture
def can_fail_over(staff_user):
    staff_user.user_permissions.add(Permission.objects.get(codename="fail_over"))
    return staff_user


def test_status_lists_regions_with_uptime_policy_and_error_budget(ops_client, primary, secondary):
    # Primary: the last 24 h are 90 % good; the 6 days before all good.
    day = dt.timedelta(days=1)
    add_probes(primary, start=NOW - day + dt.timedelta(seconds=1), count=90, ok=True, was_active=True)
    add_probes(primary, start=NOW - day / 2, count=10, ok=False, was_active=True)
    add_probes(
        primary,
        start=NOW - 7 * day + dt.timedelta(seconds=1),
        count=100,
        ok=True,
        step=dt.timedelta(minutes=10),
        was_active=True,
    )
    add_probes(secondary, start=NOW - 40 * day, count=5, ok=False)  # outside every window

    with time_machine.travel(NOW, tick=False):
        response = ops_client.get("/api/v1/regions/")

    assert response.status_code == 200
    body = response.json()
    assert body["active_region"] == "primary"
    first, second = body["regions"]
    assert first["slug"] == "primary" and first["is_active"] is True and first["status"] == "healthy"
    assert first["uptime"] == {"24h": 90.0, "7d": 95.0, "30d": 95.0}
    assert second["uptime"] == {"24h": None, "7d": None, "30d": None}
    assert body["policy"]["failure_threshold"] == 3
    availability = body["availability"]
    assert availability["slo_target"] == 99.95
    assert availability["availability"] == 95.0
    # Each probe speaks for at most two 30 s intervals: 200 minutes are covered, 10 failed.
    assert availability["window_label"] == "over the last 7 d"
    assert (availability["window_minutes"], availability["downtime_minutes"]) == (200.0, 10.0)
    assert availability["error_budget_minutes"] == 0.1  # 0.05 % of the 200 minutes
    assert availability["error_budget_remaining_minutes"] == -9.9
    assert availability["meets_slo"] is False


def test_status_needs_a_login(client, primary):
    response = client.get("/api/v1/regions/")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Token"


def test_status_is_for_staff_who_may_see_regions(client, outsider, staff_user, primary):
    """Customers never see the internal base URLs and probe errors; nor does staff
    without the permission."""
    for user in (outsider, staff_user):
        client.force_login(user)
        response = client.get("/api/v1/regions/")
        assert response.status_code == 403
        assert "regions.view_region" in response.json()["error"]["message"]
        assert primary.base_url not in response.content.decode()
    staff_user.user_permissions.add(Permission.objects.get(codename="view_region"))
    staff_user = type(staff_user).objects.get(pk=staff_user.pk)  # fresh permission cache
    client.force_login(staff_user)
    response = client.get("/api/v1/regions/")
    assert response.status_code == 200
    assert response.json()["regions"][0]["base_url"] == primary.base_url


def test_failover_without_the_permission_is_403(client, staff_user, primary, secondary):
    client.force_login(staff_user)
    response = client.post(URL, {"to": "secondary", "reason": "drill"}, content_type="application/json")
    assert response.status_code == 403
    assert active_slug() == "primary"


def test_failover_without_a_reason_is_400_naming_it(client, can_fail_over, primary, secondary):
    client.force_login(can_fail_over)
    response = client.post(URL, {"to": "secondary"}, content_type="application/json")
    assert response.status_code == 400
    assert [f["field"] for f in response.json()["error"]["fields"]] == ["reason"]
    response = client.post(URL, {"to": "secondary", "reason": "   "}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"][0]["field"] == "reason"
    assert active_slug() == "primary"
    assert FailoverEvent.objects.count() == 0


def test_failover_by_hand_is_done_and_audited_with_the_actor(client, can_fail_over, primary, secondary):
    client.force_login(can_fail_over)
    response = client.post(URL, {"to": "secondary", "reason": "game day 2025-Q2"}, content_type="application/json")

    assert response.status_code == 201, response.content
    assert response.json()["kind"] == "manual"
    assert active_slug() == "secondary"
    audit = AuditLog.objects.get(action="region.failover.manual")
    assert audit.actor_label == "sam" and audit.actor_user_id == can_fail_over.pk
    assert audit.details["reason"] == "game day 2025-Q2"
    assert Notification.objects.get(kind="region.failover").title == "Manual failover by sam: Primary → Secondary"


def test_failover_to_an_unhealthy_region_needs_force(client, can_fail_over, primary, secondary):
    Region.objects.filter(pk=secondary.pk).update(status=RegionStatus.UNHEALTHY, consecutive_failures=4)
    client.force_login(can_fail_over)

    refused = client.post(URL, {"to": "secondary", "reason": "x"}, content_type="application/json")
    message = "Secondary is not healthy (status unhealthy, 4 failing probes); pass force to move traffic anyway."
    assert refused.status_code == 409
    assert refused.json()["error"] == {
        "status": 409,
        "code": "conflict",
        "message": message,
        "fields": [{"field": "to", "code": "conflict", "message": message}],
    }
    assert active_slug() == "primary"

    forced = client.post(
        URL, {"to": "secondary", "reason": "primary DB lost", "force": True}, content_type="application/json"
    )
    assert forced.status_code == 201
    assert forced.json()["forced"] is True
    assert active_slug() == "secondary"


def test_failover_with_pin_pins_the_region(client, can_fail_over, primary, secondary):
    client.force_login(can_fail_over)
    response = client.post(
        URL, {"to": "secondary", "reason": "hold here", "pin": True}, content_type="application/json"
    )
    assert response.status_code == 201
    policy = FailoverPolicy.objects.get()
    assert policy.pinned_region == Region.objects.get(slug="secondary")
    assert policy.pinned_by == "sam"
    assert client.get("/api/v1/regions/").json()["policy"]["pinned_region"] == "secondary"


@pytest.mark.django_db(transaction=True)
def test_the_failover_response_names_the_new_active_region(client, can_fail_over, primary, secondary):
    client.force_login(can_fail_over)
    response = client.post(URL, {"to": "secondary", "reason": "maintenance"}, content_type="application/json")
    assert response.status_code == 201
    assert response.headers["X-Active-Region"] == "secondary"
    assert client.get("/api/v1/regions/").headers["X-Active-Region"] == "secondary"


def test_failover_to_an_unknown_region_is_400_naming_to(client, can_fail_over, primary):
    client.force_login(can_fail_over)
    response = client.post(URL, {"to": "mars", "reason": "x"}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"][0]["field"] == "to"
