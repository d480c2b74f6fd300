"""The restructure (0c4f420) moved Company, Membership and CompanyAPIKey from billing to
accounts with state-only migrations. These tests build a database at the previous main,
fill it the way production did, and migrate it: every row keeps its id, foreign keys and
values, permissions granted on companies follow the model to its new app, the keys and
the admin still work, and the audit chain written before the move still verifies."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.apps import apps as current_apps
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.core.management.sql import emit_post_migrate_signal
from django.db import DEFAULT_DB_ALIAS, connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.state import ProjectState
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_api_key.crypto import KeyGenerator

from accounts.models import Company
from audit.models import ActorType
from audit.services import Actor, Target, audit_record
from ops.models import OpsTask

pytestmark = pytest.mark.django_db(transaction=True)

# The previous main (before 0c4f420). Third-party apps stay at their newest: the move did
# not touch them.
OLD_MAIN = [
    ("billing", "0010_invoice_outcome_register"),
    ("usage", "0002_nightly_monitor_schedule"),
    ("ops", "0002_sweep_schedule"),
    ("audit", "0003_chainhead_prev_hash_action_index"),
    ("regions", "0003_expected_status_validator"),
]
# This project's apps (whatever is added later too): at the previous main, the ones born
# after it did not exist, and none of them is a third-party leaf to keep at its newest.
OUR_APPS = {cfg.label for cfg in current_apps.get_app_configs() if "site-packages" not in cfg.path}
MOVED = ("company", "membership", "companyapikey")

# Every table holding a row the move must leave alone: its model then -> its model now.
TABLES = {
    "billing.Company": "accounts.Company",
    "billing.Membership": "accounts.Membership",
    "billing.CompanyAPIKey": "accounts.CompanyAPIKey",
    "billing.CompanyStripe": "billing.CompanyStripe",
    "billing.BillingEvent": "billing.BillingEvent",
    "usage.UsageEvent": "usage.UsageEvent",
    "usage.UsageCounter": "usage.UsageCounter",
    "usage.ThresholdCrossing": "usage.ThresholdCrossing",
    "ops.OpsTask": "ops.OpsTask",
    "ops.Notification": "ops.Notification",
    "auth.User": "auth.User",
    "auth.Group": "auth.Group",
    "auth.Group_permissions": "auth.Group_permissions",
    "auth.Permission": "auth.Permission",
    "audit.AuditLog": "audit.AuditLog",
    "audit.ChainHead": "audit.ChainHead",
}

NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)
MID_NOVEMBER = datetime(2026, 11, 16, tzinfo=UTC)


def migrate_to_previous_main(migrator) -> ProjectState:
    """An empty database at the previous main, with the content types and permissions
    ``migrate`` created there (the migrator mutes post_migrate, so send it ourselves).
    Two steps: the migrator's broad plan up to ``ops 0002`` would already hold
    ``accounts 0001`` (it sorts earlier), so stop before accounts, then bring every other
    app to its old head."""
    migrator.apply_initial_migration(("accounts", None))
    third_party = [leaf for leaf in MigrationLoader(connection).graph.leaf_nodes() if leaf[0] not in OUR_APPS]
    state = migrator.apply_tested_migration([*third_party, *OLD_MAIN])
    assert "accounts" not in {app for app, _ in state.models}, "the old state must not know the accounts app"
    emit_post_migrate_signal(0, False, DEFAULT_DB_ALIAS, apps=state.apps, plan=[])
    return state


def migrate_to_latest() -> None:
    """What a deploy runs: ``migrate``, post_migrate signal included (so a content type the
    relabelling missed would show up as a new row)."""
    call_command("migrate", verbosity=0)
    ContentType.objects.clear_cache()  # the ids cached by earlier tests died with their tables


def rows(apps, label: str) -> list[dict]:
    return list(apps.get_model(label).objects.order_by("pk").values())


def snapshot(apps, labels) -> dict[str, list[dict]]:
    return {label: rows(apps, label) for label in labels}


def content_types(apps) -> dict[int, tuple[str, str]]:
    return {ct.pk: (ct.app_label, ct.model) for ct in apps.get_model("contenttypes.ContentType").objects.all()}


def seed_previous_main(apps) -> dict:
    """Tenants and everything hanging off them, written through the old (billing) models."""
    m = apps.get_model
    Company, Membership, CompanyAPIKey = m("billing.Company"), m("billing.Membership"), m("billing.CompanyAPIKey")
    User, Group, Permission = m("auth.User"), m("auth.Group"), m("auth.Permission")
    ContentTypeThen = m("contenttypes.ContentType")
    tiers = {t.code: t for t in m("billing.Tier").objects.all()}
    features = {f.code: f for f in m("billing.Feature").objects.all()}
    company_type = ContentTypeThen.objects.get(app_label="billing", model="company")

    staff = User.objects.create(username="ines", email="ines@transbot.local", is_staff=True, password="!")
    managers = Group.objects.create(name="Account managers")
    managers.permissions.add(Permission.objects.get(content_type=company_type, codename="change_company"))
    staff.groups.add(managers)

    secrets, companies = {}, {}
    plan = [("acme", "Acme Freight", "starter", "active", 1), ("globex", "Globex Logistics", "pro", "past_due", 15),
            ("initech", "Initech Cargo", "enterprise", "trialing", 31)]
    for n, (slug, name, tier, status, anchor) in enumerate(plan, start=1):
        company = Company.objects.create(
            name=name, slug=slug, tier=tiers[tier], status=status, billing_anchor_day=anchor
        )
        companies[slug] = company
        owner = User.objects.create(username=f"owner-{slug}", email=f"owner@{slug}.example", password="!")
        member = User.objects.create(username=f"member-{slug}", email=f"member@{slug}.example", password="!")
        Membership.objects.create(user=owner, company=company, role="owner")
        Membership.objects.create(user=member, company=company, role="member")

        secret, prefix, hashed_key = KeyGenerator().generate()
        key = CompanyAPIKey.objects.create(
            id=f"{prefix}.{hashed_key}", prefix=prefix, hashed_key=hashed_key, name="backend", company=company,
            last_used_at=NOV + timedelta(days=n),
        )
        secrets[slug] = secret
        _, old_prefix, old_hash = KeyGenerator().generate()
        CompanyAPIKey.objects.create(
            id=f"{old_prefix}.{old_hash}", prefix=old_prefix, hashed_key=old_hash, name="retired",
            company=company, revoked=True,
        )

        m("usage.UsageCounter").objects.create(
            company=company, feature=features["quotes"], period_start=NOV, period_end=DEC, used=400 * n,
            updated_at=NOV + timedelta(days=n),
        )
        for i in range(2):
            m("usage.UsageEvent").objects.create(
                company=company, feature=features["quotes"], quantity=200 * n, idempotency_key=f"evt-{slug}-{i}",
                fingerprint=f"{n:064x}", occurred_at=NOV + timedelta(hours=i), received_at=NOV + timedelta(hours=i),
                period_start=NOV, api_key=key,
            )
        m("usage.ThresholdCrossing").objects.create(
            company=company, feature=features["quotes"], period_start=NOV, level="warning", used=800,
            included=1000, created_at=NOV + timedelta(days=n),
        )
        m("billing.CompanyStripe").objects.create(
            company=company, customer_id=f"cus_{slug}", subscription_id=f"sub_{slug}",
            subscription_item_id=f"si_{slug}", subscription_price_id=f"price_{tier}", subscription_status=status,
            subscription_state_key=17_640_000_000 + n, invoice_outcome="paid", invoice_key=17_640_000_002 + n,
        )
        m("billing.BillingEvent").objects.create(
            kind="overage", status="sent", company=company, feature=features["quotes"], period_start=NOV,
            period_end=DEC, sequence=1, units=100 * n, amount=500 * n, identifier=f"ovg-{slug}-1",
            meter_timestamp=NOV + timedelta(days=n), stripe_response={"id": f"mev_{slug}"}, created_at=NOV,
        )
        m("billing.BillingEvent").objects.create(
            kind="upgrade", status="recorded", company=company, from_tier=tiers["starter"], to_tier=tiers[tier],
            stripe_event_id=f"evt_{slug}", details={"by": f"owner-{slug}"}, created_at=NOV + timedelta(days=n),
        )
        m("ops.Notification").objects.create(
            kind="usage.warning", severity="warning", title=f"{name} at 80% of quotes", company=company,
            dedup_key=f"usage-warning-{slug}-2026-11", fields={"used": 800}, email_to=[f"owner@{slug}.example"],
        )
        m("ops.OpsTask").objects.create(
            kind="billing.payment_failed", title=f"{name}: payment failed", company=company,
            target_content_type=company_type, target_object_id=str(company.pk), assignee=staff,
            dedup_key=f"payment-failed-{slug}",
        )
        # The production append (the prepared statement on this connection), as services did
        # then. A historical model has no __str__, so company_name reads "Company object (n)".
        audit_record(
            action="company.tier_change", actor=Actor(type=ActorType.USER, label="ines", user_id=staff.pk),
            target=Target(type="billing.company", id=str(company.pk), repr=name), company=company,
            details={"from": "starter", "to": tier},
        )
        audit_record(
            action="api_key.revoke", actor=Actor.system("ops"),
            target=Target(type="billing.companyapikey", id=old_prefix, repr="retired"), company=company,
        )
    m("ops.OpsTask").objects.create(kind="regions.failover", title="Check eu-west", severity="high")
    return {"secrets": secrets, "companies": {slug: c.pk for slug, c in companies.items()}}


def relabelled(types: dict[int, tuple[str, str]]) -> dict[int, tuple[str, str]]:
    return {
        pk: ("accounts", model) if app == "billing" and model in MOVED else (app, model)
        for pk, (app, model) in types.items()
    }


# Models born after the previous main bring their own permissions when migrated forward;
# every row that existed must still be there, unchanged, and nothing new may name a moved model.
GROWING = {"auth.Permission"}


# Columns added since (a company's alert levels and spend cap, a crossing's source) are not
# compared; a crossing's level, a name then ("warning", "exceeded"), reads as its percent now.
LEVEL_PERCENT = {"warning": 80, "exceeded": 100}


def assert_unchanged(before: dict[str, list[dict]], apps, mapping: dict[str, str]) -> None:
    for old, new in mapping.items():
        now = rows(apps, new)
        then = before[old]
        if new in GROWING:
            existed = {row["id"] for row in then}
            now = [row for row in now if row["id"] in existed]
        if then:
            now = [{key: row[key] for key in then[0] if key in row} for row in now]
        if new == "usage.ThresholdCrossing" and now and isinstance(now[0]["level"], int):
            then = [{**row, "level": LEVEL_PERCENT[row["level"]]} for row in then]
        assert now == then, f"{old} rows changed when read as {new}"


def assert_types_relabelled(types_before: dict[int, tuple[str, str]], apps) -> None:
    """The content types that existed are the same rows, the moved ones relabelled; the
    ones added since belong to models born after the previous main, never a moved one."""
    now = content_types(apps)
    assert {pk: v for pk, v in now.items() if pk in types_before} == relabelled(types_before)
    born = {v for pk, v in now.items() if pk not in types_before}
    assert not born & {(app, model) for app in ("accounts", "billing") for model in MOVED}
    Permission = apps.get_model("auth.Permission")
    assert not Permission.objects.filter(content_type__model__in=MOVED).exclude(
        content_type_id__in=list(types_before)
    ).exists()


def verify_audit_chain() -> str:
    out = io.StringIO()
    call_command("audit_verify", stdout=out)  # raises CommandError when the chain is broken
    return out.getvalue()


def test_the_move_to_accounts_keeps_every_row_permission_and_audit_record(migrator, django_user_model):
    old = migrate_to_previous_main(migrator)
    seeded = seed_previous_main(old.apps)
    before = snapshot(old.apps, TABLES)
    types_before = content_types(old.apps)
    assert all(before.values()), "every table must hold rows, or the comparison proves nothing"
    records = len(before["audit.AuditLog"])
    assert f"audit chain OK: {records} records verify." in verify_audit_chain()

    migrate_to_latest()

    assert_unchanged(before, current_apps, TABLES)
    # The content type rows were relabelled in place: same ids, so every permission, group
    # grant, admin log entry and generic foreign key pointing at them still holds.
    assert_types_relabelled(types_before, current_apps)
    assert not ContentType.objects.filter(app_label="billing", model__in=MOVED).exists()
    assert Company._meta.db_table == "billing_company"

    acme = Company.objects.get(pk=seeded["companies"]["acme"])
    task = OpsTask.objects.get(dedup_key="payment-failed-acme")
    assert task.target == acme
    assert {m.user.username: m.role for m in acme.memberships.select_related("user")} == {
        "owner-acme": "owner", "member-acme": "member"
    }

    # The chain written before the move verifies, and a new record links onto it.
    assert f"audit chain OK: {records} records verify." in verify_audit_chain()
    audit_record(action="company.status_change", actor=Actor.system("test"), target=acme, company=acme)
    assert f"audit chain OK: {records + 1} records verify." in verify_audit_chain()

    # The group's grant is now on accounts.Company: its member edits companies in admin.
    ines = django_user_model.objects.get(username="ines")
    assert ines.has_perm("accounts.change_company")
    assert not ines.has_perm("billing.change_company")
    admin = Client()
    admin.force_login(ines)
    assert admin.get(f"/admin/accounts/company/{acme.pk}/change/").status_code == 200

    # A key issued before the move still authenticates, and sees its company's usage.
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {seeded['secrets']['acme']}")
    with time_machine.travel(MID_NOVEMBER, tick=False):
        r = client.get("/api/v1/usage/summary/")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["tier"]["code"] == "starter"
    assert next(f for f in body["features"] if f["feature"] == "quotes")["used"] == 400


def test_migrating_back_and_forth_keeps_the_rows(migrator):
    old = migrate_to_previous_main(migrator)
    seed_previous_main(old.apps)
    before = snapshot(old.apps, TABLES)
    types_before = content_types(old.apps)

    migrate_to_latest()
    migrator.apply_tested_migration([("accounts", None), *OLD_MAIN])
    # The state the executor returns after migrating backwards is "everything before the last
    # migration it undid" (Django's approximation), which can still hold accounts; the state
    # the old heads define is the one to read the rows with.
    loader = MigrationLoader(connection)
    assert not {key for key in loader.applied_migrations if key[0] == "accounts"}
    third_party = [leaf for leaf in loader.graph.leaf_nodes() if leaf[0] not in OUR_APPS]
    back = loader.project_state([*third_party, *OLD_MAIN])
    assert "accounts" not in {app for app, _ in back.models}
    assert_unchanged(before, back.apps, {label: label for label in TABLES})
    assert {pk: v for pk, v in content_types(back.apps).items() if pk in types_before} == types_before

    migrate_to_latest()
    assert_unchanged(before, current_apps, TABLES)
    assert_types_relabelled(types_before, current_apps)
    assert "audit chain OK" in verify_audit_chain()
