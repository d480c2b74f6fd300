"""Migration 0005 rebuilds usage_usageevent as a table partitioned by month of the billing
period. Old -> new -> back -> forward keeps every row (ids, values), the id sequence goes
on where it was, and an idempotency key becomes unique per company per billing period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, connection, transaction

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="partitioning is PostgreSQL's"),
]

BEFORE = ("usage", "0004_crossing_percent_levels")
PARTITIONED = ("usage", "0005_usageevent_partitioned")
OCT = datetime(2026, 10, 15, tzinfo=UTC)  # billing periods anchored on the 15th
NOV = datetime(2026, 11, 15, tzinfo=UTC)


def relkind() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = 'usage_usageevent'::regclass")
        return cursor.fetchone()[0]


def partition_of(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM usage_usageevent WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def events(apps) -> list[dict]:
    return list(apps.get_model("usage", "UsageEvent").objects.order_by("pk").values())


def seed(apps) -> None:
    Company, Feature, Tier = (apps.get_model(*label.split(".")) for label in
                              ("accounts.Company", "billing.Feature", "billing.Tier"))
    tier = Tier.objects.order_by("order").first()
    quotes = Feature.objects.get(code="quotes")
    Event = apps.get_model("usage", "UsageEvent")
    for n, slug in enumerate(("acme", "globex"), start=1):
        company = Company.objects.create(name=slug.title(), slug=slug, tier=tier, billing_anchor_day=15)
        for i, period in enumerate((OCT, OCT, NOV)):
            Event.objects.create(
                company=company, feature=quotes, quantity=10 * n + i, idempotency_key=f"{slug}-{i}",
                fingerprint=f"{n * 10 + i:064x}", occurred_at=period + timedelta(hours=i),
                received_at=period + timedelta(hours=i, seconds=1), period_start=period,
            )


def test_rows_survive_forward_back_and_forward_again(migrator):
    old = migrator.apply_initial_migration(BEFORE)
    seed(old.apps)
    before = events(old.apps)
    assert relkind() == "r"

    new = migrator.apply_tested_migration(PARTITIONED)
    assert relkind() == "p"
    assert events(new.apps) == before
    assert partition_of(before[0]["id"]) == "usage_usageevent_p2026_10"
    assert partition_of(before[2]["id"]) == "usage_usageevent_p2026_11"

    # A key is unique per company per billing period: the same key in the next period is
    # another event, in the same period a constraint violation.
    Event = new.apps.get_model("usage", "UsageEvent")
    first = Event.objects.get(idempotency_key="acme-0")
    fields = {"company_id": first.company_id, "feature_id": first.feature_id, "quantity": 1,
              "idempotency_key": "acme-0", "fingerprint": "e" * 64, "received_at": NOV}
    with pytest.raises(IntegrityError), transaction.atomic():
        Event.objects.create(**fields, occurred_at=OCT, period_start=OCT)
    reused = Event.objects.create(**fields, occurred_at=NOV, period_start=NOV)

    # Back to one key per company cannot hold both: the migration says so and changes nothing.
    with pytest.raises(RuntimeError, match="acme-0"):
        migrator.apply_tested_migration(BEFORE)
    assert relkind() == "p"
    reused_id = reused.pk
    reused.delete()

    back = migrator.apply_tested_migration(BEFORE)
    assert relkind() == "r"
    assert events(back.apps) == before

    again = migrator.apply_tested_migration(PARTITIONED)
    assert relkind() == "p"
    assert events(again.apps) == before
    # The id sequence goes on after the last id given, whatever the table was rebuilt as.
    Event = again.apps.get_model("usage", "UsageEvent")
    added = Event.objects.create(**{**fields, "idempotency_key": "acme-new"}, occurred_at=NOV, period_start=NOV)
    assert added.pk == reused_id + 1
