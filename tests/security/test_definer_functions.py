"""The functions that run as the owner (``SECURITY DEFINER``: the audit append, the partition
maintenance) never run the application role's code.

The attack: inside such a function, a name PostgreSQL looks up through the caller's search
path or temporary schema can be the caller's own object. A temporary domain named ``text``
whose CHECK calls the caller's function made ``audit_append``'s ``::text`` cast run that
function as the owner (PostgreSQL searches ``pg_temp`` first for types unless the path names
it). Each test plants such shadows in the test's own connection (the application role's),
shows that they do take effect there, and calls the function.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import DatabaseError, connection, transaction

from audit.models import AuditLog, ChainHead
from audit.selectors import audit_verify_chain
from audit.services import Actor, audit_record
from tests.owner import owner_execute
from trans_bot.checks import check_definer_functions

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="definer functions are PostgreSQL's"),
]

# Every type name the bodies use or could use (timestamptz, jsonb and inet are left alone:
# the append statement's own casts name them, in the caller's path).
SHADOWED_TYPES = ("text", "int8", "int4", "name", "bytea", "varchar")
SHADOW_RAN = "shadow code ran as"


def _run(sql: str, params: list | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def _plant_temporary_shadows(*tables: str) -> None:
    """Temporary domains over every type the functions name, each checking with a function
    that fails loudly (saying whose rights it has), and empty temporary tables named like
    the real ones."""
    _run(
        f"""CREATE FUNCTION pg_temp.shadow(v anyelement) RETURNS boolean LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION '{SHADOW_RAN} %', current_user; END $$"""
    )
    for name in SHADOWED_TYPES:
        _run(f"CREATE DOMAIN pg_temp.{name} AS pg_catalog.{name} CHECK (pg_temp.shadow(VALUE))")
    for table in tables:
        _run(f"CREATE TEMPORARY TABLE {table} (LIKE public.{table})")
    # The plants work: this connection's own casts now go through them.
    with pytest.raises(DatabaseError, match=SHADOW_RAN), transaction.atomic():
        _run("SELECT 'x'::text")


def _drop_temporary_tables(*tables: str) -> None:
    for table in tables:
        _run(f"DROP TABLE pg_temp.{table}")


def test_the_audit_append_runs_none_of_the_callers_types_or_tables():
    first = audit_record(action="a.before", actor=Actor.system("t"))
    _plant_temporary_shadows("audit_chainhead", "audit_auditlog")

    second = audit_record(action="a.shadowed", actor=Actor.system("t"), details={"n": 1})

    _drop_temporary_tables("audit_chainhead", "audit_auditlog")
    assert (second.seq, second.prev_hash) == (first.seq + 1, first.hash)
    assert ChainHead.objects.values_list("seq", "hash").get(pk=1) == (second.seq, second.hash)
    assert AuditLog.objects.get(pk=second.pk).action == "a.shadowed"
    assert audit_verify_chain().ok


@pytest.fixture
def shadow_operators():
    """A schema the application role may create in, ahead of pg_catalog in its path, with
    its own ``||``, ``+`` and ``=`` for the very types the append applies them to. Made and
    dropped by the owner (the application role may create no schema). What the test made
    is rolled back to a savepoint first, which releases its locks on the schema."""
    role = _run("SELECT current_user")[0][0]
    owner_execute(f"DROP SCHEMA IF EXISTS shadow_ops CASCADE; CREATE SCHEMA shadow_ops AUTHORIZATION {role}")
    savepoint = transaction.savepoint()
    try:
        _run(
            f"""CREATE FUNCTION shadow_ops.shadow(a anyelement, b anyelement) RETURNS boolean
                LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{SHADOW_RAN} %', current_user; END $$"""
        )
        _run("""CREATE FUNCTION shadow_ops.cat(a character varying, b pg_catalog.text) RETURNS pg_catalog.text
                LANGUAGE sql AS $$ SELECT shadow_ops.shadow(a::pg_catalog.text, b)::pg_catalog.text $$""")
        _run("""CREATE FUNCTION shadow_ops.plus(a bigint, b integer) RETURNS bigint
                LANGUAGE sql AS $$ SELECT shadow_ops.shadow(a, b::bigint)::integer::bigint $$""")
        _run("""CREATE FUNCTION shadow_ops.eq(a smallint, b integer) RETURNS boolean
                LANGUAGE sql AS $$ SELECT shadow_ops.shadow(a::integer, b) $$""")
        _run("CREATE OPERATOR shadow_ops.|| "
             "(LEFTARG = character varying, RIGHTARG = pg_catalog.text, FUNCTION = shadow_ops.cat)")
        _run("CREATE OPERATOR shadow_ops.+ (LEFTARG = bigint, RIGHTARG = integer, FUNCTION = shadow_ops.plus)")
        _run("CREATE OPERATOR shadow_ops.= (LEFTARG = smallint, RIGHTARG = integer, FUNCTION = shadow_ops.eq)")
        _run("SET LOCAL search_path = shadow_ops, pg_catalog, public")
        # The operators work: the exact match beats pg_catalog's, which needs a cast.
        with pytest.raises(DatabaseError, match=SHADOW_RAN), transaction.atomic():
            _run("SELECT 'x'::character varying || 'y'::pg_catalog.text")
        yield
    finally:
        transaction.savepoint_rollback(savepoint)
        owner_execute("DROP SCHEMA IF EXISTS shadow_ops CASCADE")


def test_the_audit_append_uses_no_operator_of_the_callers_path(shadow_operators):
    first = audit_record(action="a.before", actor=Actor.system("t"))
    second = audit_record(action="a.operators", actor=Actor.system("t"))
    _run("SET LOCAL search_path = public")  # the checks below are the caller's own queries
    assert (second.seq, second.prev_hash) == (first.seq + 1, first.hash)
    assert audit_verify_chain().ok


def test_the_partition_functions_run_none_of_the_callers_types_or_tables():
    _plant_temporary_shadows("usage_usageevent_default")
    _run(
        "INSERT INTO pg_temp.usage_usageevent_default (id, company_id, feature_id, quantity, idempotency_key, "
        "fingerprint, occurred_at, received_at, period_start) "
        "VALUES (1, 1, 1, 1, 'planted', 'f', now(), now(), '1999-01-01T00:00:00Z')"
    )
    month = dt.datetime(2031, 1, 1, tzinfo=dt.UTC)

    created = _run("SELECT usage_event_partition_create(%s)", [month])
    months = _run("SELECT usage_event_default_months()")

    assert created == [(0,)]  # the real DEFAULT partition has no row of that month to hand over
    assert (dt.datetime(1999, 1, 1, tzinfo=dt.UTC),) not in months  # the planted table was not read
    _drop_temporary_tables("usage_usageevent_default")
    assert _run("SELECT to_regclass('public.usage_usageevent_p2031_01') IS NOT NULL") == [(True,)]


def test_the_deploy_check_names_a_definer_function_that_does_not_search_pg_temp_last():
    assert check_definer_functions() == []  # the project's own: audit_append and the partition functions
    made = {
        "tb_check_no_path": "",
        "tb_check_temp_first": "SET search_path = pg_temp, public",
        "tb_check_temp_last": "SET search_path = public, pg_temp",
    }
    try:
        for name, config in made.items():
            owner_execute(f"CREATE FUNCTION public.{name}() RETURNS int LANGUAGE sql SECURITY DEFINER {config} "
                          "AS 'SELECT 1'")
        (warning,) = check_definer_functions()
    finally:
        owner_execute("; ".join(f"DROP FUNCTION IF EXISTS public.{name}()" for name in made))
    assert warning.id == "trans_bot.W004"
    assert "tb_check_no_path, tb_check_temp_first look names up" in warning.msg
