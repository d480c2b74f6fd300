"""On PostgreSQL the table itself refuses changes: a bug or a stray script in the
application cannot rewrite history, even bypassing the ORM."""

import pytest
from django.db import DatabaseError, connection, transaction

from audit.models import AuditLog
from audit.services import Actor, audit_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def record():
    return audit_record(action="a.one", actor=Actor.system("t"))


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditlog SET action = 'a.forged'",
        "DELETE FROM audit_auditlog",
    ],
)
def test_the_database_rejects_updates_and_deletes(record, sql):
    with pytest.raises(DatabaseError, match="append-only|permission denied"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql)
    assert AuditLog.objects.get(pk=record.pk).action == "a.one"


def test_the_database_rejects_truncate_without_the_maintenance_switch(record):
    with pytest.raises(DatabaseError, match="append-only|permission denied"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL trans_bot.audit_maintenance = 'off'")
            cursor.execute("TRUNCATE audit_auditlog")
    assert AuditLog.objects.filter(pk=record.pk).exists()
