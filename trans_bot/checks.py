"""``check --deploy``: the application's database role should own nothing and bypass nothing."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Tags, Warning, register
from django.db import DatabaseError, connections


@register(Tags.database, Tags.security, deploy=True)
def check_application_role(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A role that owns tables can switch the audit trigger off and rewrite history; a
    superuser or BYPASSRLS role ignores row-level security."""
    connection = connections["default"]
    if connection.vendor != "postgresql":
        return []
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_user, r.rolsuper, r.rolbypassrls, "
                "(SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                " WHERE c.relowner = r.oid AND c.relkind IN ('r', 'p') AND n.nspname = 'public') "
                "FROM pg_roles r WHERE r.rolname = current_user"
            )
            role, superuser, bypass_rls, owned = cursor.fetchone()
    except DatabaseError as exc:
        return [Warning(f"Could not inspect the database role: {exc}", id="trans_bot.W003")]
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
