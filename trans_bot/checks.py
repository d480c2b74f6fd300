"""``check --deploy``: the application's database role should own nothing and bypass nothing,
and no function that runs as the owner may look names up where the caller can plant them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.checks import CheckMessage, Tags, Warning, register
from django.db import DatabaseError, connections

from trans_bot.db_roles import QUALIFIED_DEFINER_FUNCTIONS


@dataclass(frozen=True)
class _NotRead:
    """What a check says instead: nothing (not PostgreSQL) or W003 (the catalogue unreadable)."""

    messages: list[CheckMessage]


def _catalogue_rows(sql: str, *, what: str) -> list[tuple[Any, ...]] | _NotRead:
    """``sql``'s rows on the default database, if it is PostgreSQL and answers."""
    connection = connections["default"]
    if connection.vendor != "postgresql":
        return _NotRead([])
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall()
    except DatabaseError as exc:
        return _NotRead([Warning(f"Could not inspect {what}: {exc}", id="trans_bot.W003")])


@register(Tags.database, Tags.security, deploy=True)
def check_application_role(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A role that owns tables can switch the audit trigger off and rewrite history; a
    superuser or BYPASSRLS role ignores row-level security."""
    rows = _catalogue_rows(
        "SELECT current_user, r.rolsuper, r.rolbypassrls, "
        "(SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        " WHERE c.relowner = r.oid AND c.relkind IN ('r', 'p') AND n.nspname = 'public') "
        "FROM pg_roles r WHERE r.rolname = current_user",
        what="the database role",
    )
    if not isinstance(rows, list):
        return rows.messages
    ((role, superuser, bypass_rls, owned),) = rows
    problems: list[CheckMessage] = []
    if superuser or bypass_rls:
        problems.append(
            Warning(
                f"DATABASE_URL connects as {role!r}, a {'superuser' if superuser else 'BYPASSRLS role'}: "
                "row-level security and the audit trail's protections do not hold for it.",
                hint="Run the application as a role that owns nothing (manage.py db_roles).",
                id="trans_bot.W001",
            )
        )
    if owned:
        problems.append(
            Warning(
                f"DATABASE_URL connects as {role!r}, which owns {owned} table(s): it could disable the "
                "audit trigger and row-level security.",
                hint="Migrate as the owner role (DATABASE_MIGRATE_URL) and run as another (manage.py db_roles).",
                id="trans_bot.W002",
            )
        )
    return problems


def _pins_pg_temp_last(config: list[str] | None) -> bool:
    for setting in config or ():
        name, _, value = setting.partition("=")
        if name == "search_path":
            return [part.strip().strip('"') for part in value.split(",")][-1] == "pg_temp"
    return False


@register(Tags.database, Tags.security, deploy=True)
def check_definer_functions(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A ``SECURITY DEFINER`` function runs as its owner. Unless its search path names
    ``pg_temp`` last, or it names the schema of everything it uses
    (``QUALIFIED_DEFINER_FUNCTIONS``, tests/security/test_definer_functions.py), a caller's
    temporary domain or table of the same name as one it uses runs the caller's code with
    the owner's rights (README, "Database roles")."""
    rows = _catalogue_rows(
        "SELECT p.proname, p.proconfig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE p.prosecdef AND n.nspname = current_schema() ORDER BY 1",
        what="the database's functions",
    )
    if not isinstance(rows, list):
        return rows.messages
    unsafe = [
        name for name, config in rows if name not in QUALIFIED_DEFINER_FUNCTIONS and not _pins_pg_temp_last(config)
    ]
    if not unsafe:
        return []
    return [
        Warning(
            f"SECURITY DEFINER function(s) {', '.join(unsafe)} look names up in the caller's search path "
            "or temporary schema: the application role could make them run its own code as the owner.",
            hint="Give each SET search_path = <schema>, pg_temp (or qualify every name and list it in "
            "trans_bot.db_roles.QUALIFIED_DEFINER_FUNCTIONS, with a test).",
            id="trans_bot.W004",
        )
    ]
