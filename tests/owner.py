"""SQL as the owner role of the test database, on a connection of its own (committed at
once): what a database administrator, or an attacker holding the owner's password, could
do. The tests' own connection is the application role's, which may not (see conftest.py)."""

from __future__ import annotations

from typing import Any

import psycopg
from django.conf import settings
from django.db import connection


def owner_connect(dbname: str | None = None) -> psycopg.Connection:
    owner = getattr(settings, "DATABASE_OWNER", None) or connection.settings_dict
    return psycopg.connect(
        dbname=dbname or connection.settings_dict["NAME"],
        user=owner.get("USER") or None,
        password=owner.get("PASSWORD") or None,
        host=owner.get("HOST") or None,
        port=owner.get("PORT") or None,
        autocommit=True,
    )


def owner_execute(sql: str, params: Any = None, *, without_triggers: bool = False) -> None:
    """Run ``sql`` as the owner; ``without_triggers`` switches triggers off for it (superuser)."""
    with owner_connect() as raw, raw.transaction():
        if without_triggers:
            raw.execute("SET LOCAL session_replication_role = replica")
        raw.execute(sql, params)
