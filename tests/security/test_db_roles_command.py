"""``manage.py db_roles`` prints SQL that, run by a superuser, makes the two roles: an owner
whose new tables the application role may use, and an application role that may not
truncate them, create tables or bypass row-level security."""

from __future__ import annotations

import io
import secrets

import pytest
from django.core.management import call_command
from django.db import connection

from tests.owner import owner_connect

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="database roles are PostgreSQL's")


def _printed_sql(**options) -> str:
    out = io.StringIO()
    call_command("db_roles", stdout=out, **options)
    return out.getvalue()


def test_it_names_both_roles_and_the_audit_trails_limits():
    sql = _printed_sql(owner="acme_owner", app="acme_app", database="acme")
    assert 'CREATE ROLE "acme_app" LOGIN' in sql and "NOBYPASSRLS" in sql
    assert 'ALTER DATABASE "acme" OWNER TO "acme_owner";' in sql
    assert 'REVOKE UPDATE, DELETE ON audit_auditlog FROM "acme_app";' in sql
    assert 'REVOKE INSERT, UPDATE, DELETE ON audit_chainhead FROM "acme_app";' in sql
    assert 'GRANT EXECUTE ON FUNCTION audit_append TO "acme_app";' in sql


def test_it_refuses_one_role_for_both():
    with pytest.raises(SystemExit):
        _printed_sql(owner="same", app="same")


@pytest.mark.django_db
def test_the_printed_sql_makes_roles_that_behave_as_described():
    tag = secrets.token_hex(4)
    database, owner, app = f"roles_{tag}", f"roles_{tag}_owner", f"roles_{tag}_app"
    sql = _printed_sql(owner=owner, app=app, database=database)
    # Up to the grants for existing tables (a new database has none).
    setup = sql.split("-- For a database that already has its tables")[0]
    with owner_connect() as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        target = None
        with owner_connect() as admin:
            for line in setup.splitlines():
                if not line.strip() or line.startswith("--"):
                    continue
                if line.startswith("\\connect"):
                    target = owner_connect(database)
                    continue
                (target or admin).execute(line)
        assert target is not None
        with target:
            role = target.execute(
                "SELECT rolsuper, rolbypassrls, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = %s", [app]
            ).fetchone()
            assert role == (False, False, False, False)
            # A table a migration (the owner) creates later is the application's to use, not to truncate.
            target.execute(f'SET ROLE "{owner}"')
            target.execute("CREATE TABLE later (id int)")
            target.execute("RESET ROLE")
            rights = target.execute(
                "SELECT has_table_privilege(%s, 'later', 'SELECT'), has_table_privilege(%s, 'later', 'INSERT'), "
                "has_table_privilege(%s, 'later', 'TRUNCATE'), has_schema_privilege(%s, 'public', 'CREATE')",
                [app, app, app, app],
            ).fetchone()
            assert rights == (True, True, False, False)
    finally:
        with owner_connect() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            for role in (app, owner):
                admin.execute(f'DROP ROLE IF EXISTS "{role}"')
