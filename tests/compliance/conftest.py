"""A known quarter for the evidence pack: users and grants, admin and configuration
changes, a failover, game days, alerts, ops tasks and probes, each at a fixed moment.

The period is 2026-10-01..2026-11-30 (two months); the pack is built on 2026-12-02.
Something happens before and after the period too, so the pack must leave it out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
import time_machine
from django.contrib.auth.models import Group, Permission, User
from django.test import Client

from accounts.models import Company, Membership
from accounts.services import company_api_key_create, company_api_key_revoke
from audit.admin_mixins import diff
from audit.services import Actor, Target, audit_record
from billing.plans.catalogue import install_default_catalogue
from billing.plans.models import Feature, Tier, TierLimit
from ops.models import Notification, NotificationStatus, OpsTask, TaskStatus
from regions.models import FailoverEvent, FailoverKind, GameDay, Probe, Region
from regions.selectors import policy_get

PERIOD = "2026-10-01..2026-11-30"
BUILT_AT = "2026-12-02 10:00Z"
SWITCH_DATES = {
    "created_0": "2026-10-15", "created_1": "09:00:00", "modified_0": "2026-10-15", "modified_1": "09:00:00"
}


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class World:
    users: dict[str, User]
    company: Company
    primary: Region
    secondary: Region
    key_prefixes: dict[str, str]
    support: Group


def _user(username: str, *, joined: str, last_login: str | None, **flags) -> User:
    with time_machine.travel(joined, tick=False):
        user = User.objects.create_user(username, f"{username}@transbot.local", None, **flags)  # no hashing: fast
    user.last_login = at(last_login) if last_login else None
    user.save(update_fields=["last_login"])
    return user


def _admin_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def quarter(db) -> World:
    with time_machine.travel("2026-09-15 12:00Z", tick=False):
        audit_record(action="test.before_the_period", actor=Actor.system("test"))
    users = {
        "olivia": _user("olivia", joined="2026-01-05 09:00Z", last_login="2026-11-20 08:00Z",
                        is_staff=True, is_superuser=True),
        "sam": _user("sam", joined="2026-03-01 09:00Z", last_login="2026-11-25 08:00Z"),
        "ivan": _user("ivan", joined="2026-02-01 09:00Z", last_login="2026-07-01 08:00Z"),
        "nina": _user("nina", joined="2026-06-01 09:00Z", last_login=None),
        "dora": _user("dora", joined="2026-02-01 09:00Z", last_login="2026-04-01 08:00Z", is_active=False),
    }
    # The plans come from a data migration, gone after a transactional test: put them back.
    install_default_catalogue(Tier=Tier, Feature=Feature, TierLimit=TierLimit)
    company = Company.objects.create(name="Acme Freight", slug="acme", tier=Tier.objects.get(code="starter"))
    Membership.objects.create(user=users["ivan"], company=company, role="owner")
    Membership.objects.create(user=users["nina"], company=company, role="member")
    olivia = Actor.of_user(users["olivia"])
    change_opstask = Permission.objects.get(content_type__app_label="ops", codename="change_opstask")

    # Keys: one created and used, one created and revoked (a grant and a removal).
    with time_machine.travel("2026-10-05 12:00Z", tick=False):
        backend, _ = company_api_key_create(company=company, name="backend", actor=olivia)
        old, _ = company_api_key_create(company=company, name="old", actor=olivia)
    backend.last_used_at = at("2026-11-28 17:00Z")
    backend.save(update_fields=["last_used_at"])

    with time_machine.travel("2026-10-09 09:00Z", tick=False):
        admin = _admin_client(users["olivia"])  # the login is audited too
    # Grants in the period, made in admin: a group with a permission; sam made staff and put in it.
    with time_machine.travel("2026-10-10 09:00Z", tick=False):
        response = admin.post(
            "/admin/auth/group/add/", {"name": "Support", "permissions": [change_opstask.pk]}
        )
        assert response.status_code == 302, response.content[:2000]
    support = Group.objects.get(name="Support")
    with time_machine.travel("2026-10-11 09:00Z", tick=False):
        response = admin.post(f"/admin/auth/user/{users['sam'].pk}/change/", {
            "username": "sam", "email": "sam@transbot.local", "first_name": "", "last_name": "",
            "is_active": "on", "is_staff": "on", "groups": [support.pk],
            "last_login_0": "2026-11-25", "last_login_1": "08:00:00",
            "date_joined_0": "2026-03-01", "date_joined_1": "09:00:00",
        })
        assert response.status_code == 302, response.content[:3000]

    # Configuration: a switch added and turned on in admin; the SLO target changed in admin.
    with time_machine.travel("2026-10-15 09:00Z", tick=False):
        response = admin.post("/admin/waffle/switch/add/", {"name": "new_pricing", "note": "", **SWITCH_DATES})
        assert response.status_code == 302, response.context["adminform"].form.errors
    with time_machine.travel("2026-10-16 09:00Z", tick=False):
        from waffle.models import Switch

        switch = Switch.objects.get(name="new_pricing")
        response = admin.post(
            f"/admin/waffle/switch/{switch.pk}/change/",
            {"name": "new_pricing", "active": "on", "note": "", **SWITCH_DATES},
        )
        assert response.status_code == 302, response.content[:2000]
    switch.refresh_from_db()
    users["sam"].refresh_from_db()
    assert switch.active and users["sam"].is_staff and list(users["sam"].groups.all()) == [support]
    with time_machine.travel("2026-10-17 09:00Z", tick=False):
        audit_record(
            action="admin.regions.failoverpolicy.change",
            actor=olivia,
            target=Target("regions.failoverpolicy", "1", "Failover policy"),
            details={"changes": diff({"slo_target": "99.900"}, {"slo_target": "99.950"})},
        )

    with time_machine.travel("2026-11-10 12:00Z", tick=False):
        company_api_key_revoke(key=old, actor=olivia)
    # A removal in admin: ivan, unused since July, is deactivated (olivia signs in again first).
    with time_machine.travel("2026-11-15 09:00Z", tick=False):
        admin = _admin_client(users["olivia"])
        response = admin.post(f"/admin/auth/user/{users['ivan'].pk}/change/", {
            "username": "ivan", "email": "ivan@transbot.local", "first_name": "", "last_name": "",
            "last_login_0": "2026-07-01", "last_login_1": "08:00:00",
            "date_joined_0": "2026-02-01", "date_joined_1": "09:00:00",
        })
        assert response.status_code == 302, response.content[:3000]
    users["ivan"].refresh_from_db()
    assert not users["ivan"].is_active

    # Regions: probes every hour (two failed hours in October), a failover, two game days.
    policy = policy_get()
    policy.probe_interval_seconds = 3600
    policy.save()
    primary = Region.objects.create(name="Primary", slug="primary", base_url="https://eu.example.test", order=0,
                                    is_active=True)
    secondary = Region.objects.create(name="Secondary", slug="secondary", base_url="https://us.example.test",
                                      order=1)
    start = at("2026-10-01 00:00Z")
    failed = {at("2026-10-20 02:00Z"), at("2026-10-20 03:00Z")}
    Probe.objects.bulk_create(
        Probe(region=primary, checked_at=moment, ok=moment not in failed, was_active=True)
        for moment in (start + dt.timedelta(hours=h) for h in range(61 * 24))
    )
    FailoverEvent.objects.create(
        from_region=primary, to_region=secondary, kind=FailoverKind.AUTOMATIC, reason="3 failed probes",
        actor="region-gate", epoch=1, failing_since=at("2026-10-20 02:00Z"), decided_at=at("2026-10-20 04:00Z"),
    )
    FailoverEvent.objects.create(
        from_region=secondary, to_region=primary, kind=FailoverKind.MANUAL, reason="before the period",
        actor="olivia", epoch=2, decided_at=at("2026-09-20 04:00Z"),
    )
    GameDay.objects.create(started_at=at("2026-11-05 10:00Z"), region=primary, method="drill switch",
                           detected_after_s=92.04, switched_after_s=95.0, switched_to=secondary, succeeded=True)
    GameDay.objects.create(started_at=at("2026-11-12 10:00Z"), region=primary, method="drill switch",
                           detected_after_s=300.0, switched_after_s=1000.0, switched_to=secondary,
                           succeeded=True, notes="standby slow to warm")

    # Alerts: one sent 3 s after it was asked for, one given up on; one after the period.
    Notification.objects.create(kind="region.failover", title="Failed over to Secondary",
                                created_at=at("2026-10-20 04:00:01Z"), status=NotificationStatus.SENT,
                                slack_status="sent", attempts=1, sent_at=at("2026-10-20 04:00:04Z"))
    Notification.objects.create(kind="usage.breach", title="Acme over its quotes", severity="warning",
                                created_at=at("2026-11-02 02:00:00Z"), status=NotificationStatus.FAILED,
                                slack_status="failed", attempts=5, last_error="Slack said 500")
    Notification.objects.create(kind="usage.breach", title="After the period",
                                created_at=at("2026-12-01 02:00:00Z"), status=NotificationStatus.SENT)

    # Ops tasks: one acknowledged after 5 min and resolved after 65 min; one still open.
    OpsTask.objects.create(kind="region.failover", title="Look at the failover", severity="high",
                           status=TaskStatus.RESOLVED, assignee=users["olivia"],
                           created_at=at("2026-10-20 04:00:02Z"), acknowledged_at=at("2026-10-20 04:05:02Z"),
                           closed_at=at("2026-10-20 05:05:02Z"), resolution_note="primary disk full, fixed")
    OpsTask.objects.create(kind="usage.breach", title="Acme over its quotes", created_at=at("2026-11-29 02:00:00Z"))
    return World(users=users, company=company, primary=primary, secondary=secondary,
                 key_prefixes={"backend": backend.prefix, "old": old.prefix}, support=support)
