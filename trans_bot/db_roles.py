"""The two database roles and row-level security (PostgreSQL; nothing on SQLite).

The owner role owns every table and runs migrations (``DATABASE_MIGRATE_URL``); the
application role (``DATABASE_URL``) owns nothing, may not truncate anything, may only
insert into and read the audit trail, and moves the audit chain head only through
``audit_append`` (a ``SECURITY DEFINER`` function of the owner's, see audit migration 0004).

Every tenant table (``TENANT_MODELS``) has row-level security, enabled and forced (so it
holds even for a role that owns the table, e.g. a single-role setup), with one policy read
from the connection's ``app.*`` settings (``core.tenant_scope``): ``ops`` sees every row,
otherwise a row is visible and writable when its company is one of ``app.company_ids``.
Two tables add a read-only way in: a user's own memberships (how the ``user`` scope finds
its companies) and the API key a request presents (how it is checked).

``migrate`` (``trans_bot.management.commands.migrate``) applies all of it after every run,
idempotently, so a table added later gets its policy the first time it exists.
"""

from __future__ import annotations

from django.apps import apps
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper

# The tables rows of which belong to one company. A new one goes here.
TENANT_MODELS = [
    "accounts.Membership",
    "accounts.CompanyAPIKey",
    "usage.UsageEvent",
    "usage.UsageCounter",
    "usage.ThresholdCrossing",
    "billing.BillingEvent",
    "billing.CompanyStripe",
    "billing.EntitlementOverride",
    "billing.CreditGrant",
    "billing.CreditConsumption",
    "ops.OpsTask",
    "ops.Notification",
    "growth.Exposure",
    "growth.Conversion",
    "growth.Booking",
]

POLICY = "tenant_scope"
_OPS = "(SELECT current_setting('app.scope', true)) = 'ops'"
_COMPANIES = (
    "company_id = ANY ((SELECT string_to_array(nullif(current_setting('app.company_ids', true), ''), ','))::bigint[])"
)
_USER = "user_id = (SELECT nullif(current_setting('app.user_id', true), '')::bigint)"
_KEY_PREFIX = "prefix = (SELECT nullif(current_setting('app.key_prefix', true), ''))"


def tenant_tables() -> list[str]:
    """The tenant tables of the installed models (a model not born yet is skipped)."""
    tables = []
    for label in TENANT_MODELS:
        try:
            tables.append(apps.get_model(label)._meta.db_table)
        except LookupError:
            continue
    return tables


def _table(label: str) -> str:
    model: type[models.Model] = apps.get_model(label)
    return model._meta.db_table


def row_security_statements(existing: set[str]) -> list[str]:
    """Idempotent: every tenant table in ``existing`` gets RLS and its policies anew."""
    membership, api_key = _table("accounts.Membership"), _table("accounts.CompanyAPIKey")
    if membership not in existing:
        return []
    statements = [
        # The user scope's companies, read through the membership policy's own-rows branch
        # (so no policy ever calls back into itself).
        f"""CREATE OR REPLACE FUNCTION app_enter_user_scope() RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, public AS $$
  SELECT set_config('app.company_ids', coalesce(
    (SELECT string_agg(company_id::text, ',') FROM {membership}
      WHERE user_id = nullif(current_setting('app.user_id', true), '')::bigint), ''), false);
$$""",  # noqa: S608 (the table name comes from the model)
    ]
    for table in tenant_tables():
        if table not in existing:
            continue
        statements += [
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
            f"DROP POLICY IF EXISTS {POLICY} ON {table}",
            f"DROP POLICY IF EXISTS {POLICY}_read ON {table}",
            f"DROP POLICY IF EXISTS {POLICY}_touch ON {table}",
            f"CREATE POLICY {POLICY} ON {table} USING ({_OPS} OR {_COMPANIES}) WITH CHECK ({_OPS} OR {_COMPANIES})",
        ]
        if table == membership:
            statements.append(f"CREATE POLICY {POLICY}_read ON {table} FOR SELECT USING ({_USER})")
        if table == api_key:
            statements += [
                f"CREATE POLICY {POLICY}_read ON {table} FOR SELECT USING ({_KEY_PREFIX})",
                # Checking a key records its last use.
                f"CREATE POLICY {POLICY}_touch ON {table} FOR UPDATE USING ({_KEY_PREFIX}) WITH CHECK ({_KEY_PREFIX})",
            ]
    return statements


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _default_privileges(*, owner: str, app: str) -> list[str]:
    """Tables and sequences the owner makes later are the application's to use too."""
    prefix = f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT"
    return [
        f"{prefix} SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}",
        f"{prefix} USAGE, SELECT ON SEQUENCES TO {app}",
    ]


# The owner's SECURITY DEFINER functions of usage migration 0006 (usage.partitions).
# SECURITY DEFINER functions that keep no search path of their own because every name in
# them is schema-qualified (tests/security/test_definer_functions.py plants shadows for
# each); every other one must run with ``search_path = <schema>, pg_temp`` (check --deploy
# warns, trans_bot.W004).
QUALIFIED_DEFINER_FUNCTIONS = frozenset({"audit_append"})

PARTITION_FUNCTIONS = (
    "usage_event_partition_create",
    "usage_event_default_months",
    "usage_event_partition_detach",
    "usage_event_partition_drop",
)


def grant_statements(*, app_role: str, owner_role: str) -> list[str]:
    """What the application role may do, for the tables there are now and (default
    privileges) for every table the owner makes later. Idempotent."""
    app, owner = _quote(app_role), _quote(owner_role)
    audit_log, chain_head = _table("audit.AuditLog"), _table("audit.ChainHead")
    return [
        f"GRANT USAGE ON SCHEMA public TO {app}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app}",
        f"REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA public FROM {app}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {app}",
        *_default_privileges(owner=owner, app=app),
        # The audit trail: read and append, nothing else; the head moves only in audit_append.
        f"REVOKE UPDATE, DELETE ON {audit_log} FROM {app}",
        f"REVOKE INSERT, UPDATE, DELETE ON {chain_head} FROM {app}",
        "REVOKE ALL ON FUNCTION audit_append FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION audit_append TO {app}",
        # Stored SOC 2 evidence packs are evidence too: kept as made.
        f"REVOKE UPDATE, DELETE ON {_table('compliance.EvidencePack')} FROM {app}",
        # Partition upkeep creates and drops tables as the owner: the application only.
        *(
            statement
            for function in PARTITION_FUNCTIONS
            for statement in (
                f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC",
                f"GRANT EXECUTE ON FUNCTION {function} TO {app}",
            )
        ),
    ]


def role_setup_sql(*, database: str, owner_role: str, app_role: str) -> str:
    """The SQL an administrator runs once (as a superuser) before the first ``migrate``."""
    owner, app, db = _quote(owner_role), _quote(app_role), _quote(database)
    lines = [
        "-- Run as a PostgreSQL superuser, once, before the first `manage.py migrate`.",
        "-- Replace the passwords; put them in DATABASE_MIGRATE_URL (owner) and DATABASE_URL (app).",
        f"CREATE ROLE {owner} LOGIN PASSWORD 'change-me-owner' NOSUPERUSER NOCREATEROLE NOCREATEDB;",
        f"CREATE ROLE {app} LOGIN PASSWORD 'change-me-app' NOSUPERUSER NOCREATEROLE NOCREATEDB NOBYPASSRLS;",
        f"ALTER DATABASE {db} OWNER TO {owner};",
        f"REVOKE ALL ON DATABASE {db} FROM PUBLIC;",
        f"GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {app};",
        f"\\connect {db}",
        f"ALTER SCHEMA public OWNER TO {owner};",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC;",
        f"GRANT USAGE ON SCHEMA public TO {app};",
        *(s + ";" for s in _default_privileges(owner=owner, app=app)),
        "-- `manage.py migrate` (as the owner) then creates the tables, the row-level security",
        "-- policies and the audit append function, and re-applies the grants below each time.",
        "-- For a database that already has its tables, these are those grants:",
    ]
    return "\n".join(lines + [s + ";" for s in grant_statements(app_role=app_role, owner_role=owner_role)]) + "\n"


def apply_after_migrate(connection: BaseDatabaseWrapper, *, app_role: str | None) -> None:
    """Row-level security on every tenant table there is, and the application role's
    grants when it is another role than the one migrating (``connection``, the owner)."""
    if connection.vendor != "postgresql":
        return
    existing = set(connection.introspection.table_names())
    with connection.cursor() as cursor:
        for statement in row_security_statements(existing):
            cursor.execute(statement)
        cursor.execute("SELECT current_user")
        owner_role = cursor.fetchone()[0]
        cursor.execute("SELECT to_regproc('audit_append') IS NOT NULL")
        appendable = cursor.fetchone()[0]
        if app_role and app_role != owner_role and appendable:
            for statement in grant_statements(app_role=app_role, owner_role=owner_role):
                cursor.execute(statement)
