"""The owner role's connection: migrations, flushes and other schema changes run as the
role that owns the tables (``DATABASE_MIGRATE_URL``); everything else runs as the
application role (``DATABASE_URL``), which owns nothing. Without ``DATABASE_MIGRATE_URL``
both are the same role and this changes nothing (the SQLite demo)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import connections

# What the owner's URL may change: who connects, and where (the database stays: a test
# database keeps its test name).
_CREDENTIALS = ("USER", "PASSWORD", "HOST", "PORT")


def owner_credentials() -> dict[str, Any] | None:
    owner = getattr(settings, "DATABASE_OWNER", None)
    return {k: owner.get(k, "") for k in _CREDENTIALS} if owner else None


def is_owner_distinct(alias: str = "default") -> bool:
    creds = owner_credentials()
    if creds is None:
        return False
    current = connections[alias].settings_dict
    return any(str(current.get(k) or "") != str(creds[k] or "") for k in _CREDENTIALS)


@contextmanager
def as_owner(alias: str = "default") -> Iterator[None]:
    """Connect ``alias`` as the owner role for the block, then as before. Closes the
    connection at both ends (so not inside a transaction)."""
    if not is_owner_distinct(alias):
        yield
        return
    connection = connections[alias]
    if connection.in_atomic_block:
        raise RuntimeError("the owner connection cannot be swapped in inside a transaction")
    saved = {k: connection.settings_dict.get(k) for k in _CREDENTIALS}
    connection.close()
    connection.settings_dict.update(owner_credentials() or {})
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.update(saved)
