"""The regions admin: the list ops look at, the confirmed failover action, the policy."""

from __future__ import annotations

import threading
from contextlib import contextmanager

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import connection
from django.db.models.signals import pre_save
from django_celery_beat.models import PeriodicTask

from audit.models import AuditLog
from audit.services import Actor
from regions.models import FailoverEvent, FailoverPolicy, Region
from regions.services import region_fail_over
from tests.regions.conftest import active_slug

CHANGELIST = "/admin/regions/region/"


def test_the_region_list_shows_status_colour_active_badge_and_latency(ops_client, primary, secondary):
    Region.objects.filter(pk=secondary.pk).update(status="unhealthy", last_latency_ms=212.4)
    html = ops_client.get(CHANGELIST).content.decode()
    assert "ACTIVE" in html
    assert "#cf222e" in html and "Unhealthy" in html  # red for the unhealthy standby
    assert "#1a7f37" in html  # green for the healthy primary
    assert "212 ms" in html


def test_the_failover_action_asks_for_confirmation_then_moves_traffic(ops_client, ops_user, primary, secondary):
    ask = ops_client.post(CHANGELIST, {"action": "fail_over_to", ACTION_CHECKBOX_NAME: [secondary.pk]})
    assert ask.status_code == 200
    assert "Yes, fail over to Secondary" in ask.content.decode()
    assert active_slug() == "primary"  # nothing yet

    no_reason = ops_client.post(
        CHANGELIST, {"action": "fail_over_to", ACTION_CHECKBOX_NAME: [secondary.pk], "confirm": "1", "reason": ""}
    )
    assert "This field is required" in no_reason.content.decode()
    assert active_slug() == "primary"

    done = ops_client.post(
        CHANGELIST,
        {
            "action": "fail_over_to",
            ACTION_CHECKBOX_NAME: [secondary.pk],
            "confirm": "1",
            "reason": "game day",
            "pin": "on",
        },
        follow=True,
    )
    assert "Traffic moved" in done.content.decode()
    assert active_slug() == "secondary"
    event = FailoverEvent.objects.get()
    assert event.kind == "manual" and event.pinned and event.actor_user == ops_user
    assert AuditLog.objects.get(action="region.failover.manual").actor_label == ops_user.username


def test_staff_without_the_permission_cannot_fail_over_from_admin(client, staff_user, primary, secondary):
    from django.contrib.auth.models import Permission

    staff_user.user_permissions.add(Permission.objects.get(codename="view_region"))
    client.force_login(staff_user)
    page = client.get(CHANGELIST).content.decode()
    assert "fail_over_to" not in page
    client.post(
        CHANGELIST, {"action": "fail_over_to", ACTION_CHECKBOX_NAME: [secondary.pk], "confirm": "1", "reason": "x"}
    )
    assert active_slug() == "primary"


def test_failover_history_is_read_only(ops_client, primary, secondary):
    from audit.services import Actor
    from regions.services import region_fail_over

    event = region_fail_over(to=secondary, reason="drill", actor=Actor.system("t"))
    page = ops_client.get(f"/admin/regions/failoverevent/{event.pk}/change/").content.decode()
    assert "drill" in page and 'name="_save"' not in page
    assert ops_client.get("/admin/regions/failoverevent/add/").status_code == 403


def test_editing_the_policy_interval_moves_the_beat_schedule_and_is_audited(ops_client, policy):
    form = {
        "multi_region_enabled": "on",
        "read_policy": "serve",
        "probe_interval_seconds": "10",
        "failure_threshold": "3",
        "recovery_threshold": "3",
        "probe_retention_days": "30",
        "cooldown_seconds": "600",
        "slo_target": "99.95",
    }
    response = ops_client.post("/admin/regions/failoverpolicy/1/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert PeriodicTask.objects.get(name="regions: probe all regions").interval.every == 10
    assert AuditLog.objects.filter(action="admin.regions.failoverpolicy.change").exists()


def test_releasing_the_pin_from_the_policy_page(ops_client, policy, primary):
    FailoverPolicy.objects.filter(pk=1).update(pinned_region=primary, pinned_by="olivia")
    form = {
        "multi_region_enabled": "on",
        "read_policy": "serve",
        "probe_interval_seconds": "30",
        "failure_threshold": "3",
        "recovery_threshold": "3",
        "probe_retention_days": "30",
        "cooldown_seconds": "600",
        "slo_target": "99.95",
        "release_pin": "on",
    }
    ops_client.post("/admin/regions/failoverpolicy/1/change/", form)
    assert FailoverPolicy.objects.get().pinned_region is None
    assert AuditLog.objects.filter(action="region.pin.release").exists()


# --- Admin edits never write back live state (a failover may commit meanwhile) --------

POLICY_FORM = {
    "multi_region_enabled": "on",
    "read_policy": "serve",
    "probe_interval_seconds": "10",
    "failure_threshold": "3",
    "recovery_threshold": "3",
    "probe_retention_days": "30",
    "cooldown_seconds": "600",
    "slo_target": "99.95",
}


@contextmanager
def failover_commits_while_saving(model, to_slug: str):
    """When the admin is about to write ``model`` (after it loaded the object and the
    form), another connection commits a real manual failover to ``to_slug``."""

    def commit_a_failover(sender, instance, **kwargs):
        pre_save.disconnect(commit_a_failover, sender=model)

        def other_worker():
            try:
                region_fail_over(to=Region.objects.get(slug=to_slug), reason="meanwhile", actor=Actor.system("t"))
            finally:
                connection.close()

        thread = threading.Thread(target=other_worker)
        thread.start()
        thread.join()

    pre_save.connect(commit_a_failover, sender=model, weak=False)
    try:
        yield
    finally:
        pre_save.disconnect(commit_a_failover, sender=model)


@pytest.mark.django_db(transaction=True)
def test_saving_the_policy_keeps_a_failover_committed_meanwhile(ops_client, primary, secondary):
    with failover_commits_while_saving(FailoverPolicy, "secondary"):
        response = ops_client.post("/admin/regions/failoverpolicy/1/change/", POLICY_FORM)
    assert response.status_code == 302, response.content.decode()[:2000]

    policy = FailoverPolicy.objects.get()
    assert policy.probe_interval_seconds == 10  # the edit landed
    assert policy.epoch == 1 and policy.last_failover_at is not None  # and the failover stayed
    assert active_slug() == "secondary"
    # The next failover is not blocked by a rolled-back epoch.
    region_fail_over(to=primary, reason="back", actor=Actor.system("t"))
    assert active_slug() == "primary"
    assert list(FailoverEvent.objects.order_by("epoch").values_list("epoch", flat=True)) == [1, 2]
    change = AuditLog.objects.get(action="admin.regions.failoverpolicy.change")
    assert change.details["changes"] == {"probe_interval_seconds": {"before": 30, "after": 10}}


@pytest.mark.django_db(transaction=True)
def test_editing_a_region_keeps_a_failover_committed_meanwhile(ops_client, primary, secondary):
    form = {
        "name": "Secondary (eu-west)",
        "slug": "secondary",
        "base_url": secondary.base_url,
        "order": "1",
        "enabled": "on",
        "health_path": "/healthz",
        "probe_timeout": "0.5",
        "expected_status": "2xx",
        "body_contains": "",
    }
    with failover_commits_while_saving(Region, "secondary"):
        response = ops_client.post(f"/admin/regions/region/{secondary.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]

    secondary.refresh_from_db()
    assert secondary.name == "Secondary (eu-west)"
    assert secondary.is_active  # not written back as the standby it was when the form loaded
    assert active_slug() == "secondary"
    change = AuditLog.objects.get(action="admin.regions.region.change")
    assert set(change.details["changes"]) == {"name"}


def region_form(region, **overrides):
    form = {
        "name": region.name,
        "slug": region.slug,
        "base_url": region.base_url,
        "order": str(region.order),
        "enabled": "on",
        "health_path": region.health_path,
        "probe_timeout": str(region.probe_timeout),
        "expected_status": region.expected_status,
        "body_contains": region.body_contains,
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def test_admin_refuses_to_disable_the_active_region(ops_client, primary, secondary):
    response = ops_client.post(f"/admin/regions/region/{primary.pk}/change/", region_form(primary, enabled=None))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "fail over to another region first" in errors["enabled"][0]
    primary.refresh_from_db()
    assert primary.enabled and primary.is_active

    # A standby may be disabled.
    response = ops_client.post(f"/admin/regions/region/{secondary.pk}/change/", region_form(secondary, enabled=None))
    assert response.status_code == 302
    assert not Region.objects.get(pk=secondary.pk).enabled


def test_admin_refuses_to_delete_the_active_region(ops_client, primary, secondary):
    response = ops_client.post(f"/admin/regions/region/{primary.pk}/delete/", {"post": "yes"}, follow=True)
    assert "Primary is the active region: fail over to another region first" in response.content.decode()
    assert Region.objects.filter(pk=primary.pk, is_active=True).exists()

    bulk = ops_client.post(
        CHANGELIST, {"action": "delete_selected", ACTION_CHECKBOX_NAME: [primary.pk, secondary.pk], "post": "yes"}
    )
    assert "Primary is the active region: fail over to another region first" in bulk.content.decode()
    assert Region.objects.count() == 2
    assert not AuditLog.objects.filter(action="admin.regions.region.delete").exists()


@pytest.mark.parametrize("typo", ["200;204", "ok", "2x", "200,,204", "600", "20"])
def test_admin_refuses_an_expected_status_no_answer_could_match(ops_client, primary, typo):
    response = ops_client.post(
        f"/admin/regions/region/{primary.pk}/change/", region_form(primary, expected_status=typo)
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["expected_status"]
    assert "such as 200" in errors["expected_status"][0]
    assert Region.objects.get(pk=primary.pk).expected_status == "2xx"


@pytest.mark.parametrize("spec", ["200", "2xx", "200, 204", "2XX,301"])
def test_admin_accepts_codes_and_classes(ops_client, primary, spec):
    response = ops_client.post(
        f"/admin/regions/region/{primary.pk}/change/", region_form(primary, expected_status=spec)
    )
    assert response.status_code == 302
    assert Region.objects.get(pk=primary.pk).expected_status == spec
