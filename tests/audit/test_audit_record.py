import pytest
from django.db import transaction

from accounts.models import Company
from audit.models import AppendOnlyError, AuditLog
from audit.selectors import audit_verify_chain
from audit.services import Actor, Target, audit_record

pytestmark = pytest.mark.django_db


def test_it_records_who_did_what_to_which_company():
    company = Company.objects.create(name="Acme Freight", slug="acme")
    log = audit_record(
        action="billing.tier_change",
        actor=Actor.system("usage-monitor"),
        target=company,
        company=company,
        details={"before": {"tier": "starter"}, "after": {"tier": "pro"}},
    )
    stored = AuditLog.objects.get(pk=log.pk)
    assert (stored.action, stored.actor_type, stored.actor_label) == (
        "billing.tier_change", "system", "usage-monitor"
    )
    assert (stored.target_type, stored.target_id, stored.target_repr) == (
        "accounts.company", str(company.pk), "Acme Freight"
    )
    assert (stored.company_id, stored.company_name) == (company.pk, "Acme Freight")
    assert stored.details["after"] == {"tier": "pro"}
    assert len(stored.hash) == 64 and stored.prev_hash == "0" * 64


def test_each_record_links_to_the_previous_one():
    first = audit_record(action="a.one", actor=Actor.system("t"))
    second = audit_record(action="a.two", actor=Actor.system("t"), target=Target(type="x", id="1"))
    assert second.seq == first.seq + 1
    assert second.prev_hash == first.hash
    assert audit_verify_chain().ok


def test_an_action_that_rolls_back_leaves_no_record():
    with pytest.raises(RuntimeError), transaction.atomic():
        Company.objects.create(name="Ghost", slug="ghost")
        audit_record(action="billing.company_created", actor=Actor.system("t"))
        raise RuntimeError("the action failed")
    assert not AuditLog.objects.filter(action="billing.company_created").exists()
    assert not Company.objects.filter(slug="ghost").exists()
    after = audit_record(action="a.after", actor=Actor.system("t"))
    assert after.seq == 1
    assert audit_verify_chain().ok


def test_the_orm_refuses_to_change_or_delete_records():
    log = audit_record(action="a.one", actor=Actor.system("t"))
    log.action = "a.forged"
    with pytest.raises(AppendOnlyError):
        log.save()
    with pytest.raises(AppendOnlyError):
        log.delete()
    with pytest.raises(AppendOnlyError):
        AuditLog.objects.filter(pk=log.pk).update(action="a.forged")
    with pytest.raises(AppendOnlyError):
        AuditLog.objects.all().delete()
    assert AuditLog.objects.get(pk=log.pk).action == "a.one"


def test_details_are_stored_as_they_were_hashed():
    from datetime import UTC, datetime
    from decimal import Decimal

    audit_record(
        action="a.typed",
        actor=Actor.system("t"),
        details={"when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "amount": Decimal("1.50")},
    )
    assert audit_verify_chain().ok


@pytest.mark.django_db(transaction=True)
def test_postgresql_dropping_the_connection_mid_append_is_a_database_outage_not_a_crash():
    """What the outage middleware answers 503 for: the append's error is Django's, naming
    the database, not a driver error it does not know (which would be a 500)."""
    import psycopg
    from django.db import connection

    from core.outages import outage_part

    audit_record(action="a.before", actor=Actor.system("t"))  # the connection is open and used
    s = connection.settings_dict
    with psycopg.connect(host=s["HOST"] or "127.0.0.1", port=s["PORT"] or 5432, user=s["USER"], dbname=s["NAME"],
                         autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])

    with pytest.raises(Exception) as dropped:
        audit_record(action="a.during", actor=Actor.system("t"))

    assert outage_part(dropped.value) == "database"
    connection.close()
    assert not AuditLog.objects.filter(action="a.during").exists()
