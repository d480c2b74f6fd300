"""The application connects as a role that owns nothing: it may read and append to the
audit trail, and nothing else there; it cannot switch row-level security off either."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from audit.models import AuditLog, ChainHead
from audit.services import Actor, audit_record
from core.db_owner import as_owner
from trans_bot.checks import check_application_role
from trans_bot.db_roles import PARTITION_FUNCTIONS

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="database roles are PostgreSQL's"),
]


@pytest.fixture
def record():
    return audit_record(action="a.one", actor=Actor.system("t"), details={"n": 1})


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditlog SET action = 'a.forged'",
        "DELETE FROM audit_auditlog",
        "TRUNCATE audit_auditlog",
        "ALTER TABLE audit_auditlog DISABLE TRIGGER audit_auditlog_no_update_delete",
        "ALTER TABLE audit_auditlog DISABLE TRIGGER ALL",
        "UPDATE audit_chainhead SET seq = 0, hash = repeat('0', 64)",
        "DELETE FROM audit_chainhead",
        "INSERT INTO audit_chainhead (id, seq, hash, prev_hash) VALUES (2, 0, 'x', 'x')",
        "TRUNCATE audit_chainhead",
        "ALTER TABLE usage_usageevent DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE usage_usageevent NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY tenant_scope ON usage_usageevent",
        "TRUNCATE usage_usageevent",
        "UPDATE compliance_evidencepack SET sha256 = repeat('0', 64)",
        "DELETE FROM compliance_evidencepack",
    ],
)
def test_the_application_role_cannot_touch_history_or_switch_security_off(record, sql):
    head = ChainHead.objects.values_list("seq", "hash").get(pk=1)
    with pytest.raises(DatabaseError, match="permission denied|must be owner"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql)
    assert AuditLog.objects.get(pk=record.pk).action == "a.one"
    assert ChainHead.objects.values_list("seq", "hash").get(pk=1) == head


def test_appends_still_work_through_the_append_function(record, capsys):
    second = audit_record(action="a.two", actor=Actor.system("t"))
    assert (second.seq, second.prev_hash) == (record.seq + 1, record.hash)
    assert ChainHead.objects.values_list("seq", "hash").get(pk=1) == (second.seq, second.hash)
    call_command("audit_verify")
    assert "audit chain OK" in capsys.readouterr().out


def test_the_application_role_owns_nothing_and_the_deploy_check_is_clean():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolsuper, rolbypassrls, (SELECT count(*) FROM pg_class WHERE relowner = r.oid) "
            "FROM pg_roles r WHERE rolname = current_user"
        )
        assert cursor.fetchone() == (False, False, 0)
    assert check_application_role() == []


@pytest.mark.django_db(transaction=True)
def test_the_deploy_check_warns_when_the_application_runs_as_the_owner():
    with as_owner():  # the test suite's owner is a superuser that owns every table
        problems = {m.id for m in check_application_role()}
    assert problems == {"trans_bot.W001", "trans_bot.W002"}


def test_only_the_application_may_run_the_partition_functions():
    """They create and drop tables with the owner's rights: no other role (PUBLIC) may."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT proname, has_function_privilege(current_user, p.oid, 'EXECUTE'), "
            "coalesce(bool_or(a.grantee = 0), proacl IS NULL) "
            "FROM pg_proc p LEFT JOIN LATERAL aclexplode(p.proacl) a ON true "
            "WHERE proname LIKE 'usage_event_%%' GROUP BY proname, p.oid, proacl ORDER BY proname"
        )
        rows = cursor.fetchall()
    assert [name for name, _, _ in rows] == sorted(PARTITION_FUNCTIONS)
    assert all(mine and not public for _, mine, public in rows)
