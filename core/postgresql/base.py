"""Django's PostgreSQL backend, plus the tenant scope (``core.tenant_scope``): before a
statement runs, the connection's ``app.*`` settings are brought in line with the scope of
the code running it, which the row-level security policies read.

The settings are session-level and survive commits; a rollback (to a savepoint or of the
whole transaction) may undo one made inside it, so any rollback makes the next statement
apply the scope again."""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql import base

from core import tenant_scope
from core.dbhealth import SocketHealthCheck

# psycopg prepares nothing while a connection's prepare_threshold is None, which is what
# Django sets unless OPTIONS name one: then even ``execute(..., prepare=True)`` is sent
# unprepared. Past this many runs of one text psycopg would prepare it unasked, which never
# happens: Django binds its parameters on the client, so its texts repeat rarely, and the
# statements that should be prepared ask for it (``core.postgresql.prepared``).
PREPARE_ONLY_WHEN_ASKED = 2**31 - 1


class DatabaseWrapper(SocketHealthCheck, base.DatabaseWrapper):  # health check: a socket poll, not SELECT 1
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        connection = super().get_new_connection(conn_params)
        if connection.prepare_threshold is None:
            connection.prepare_threshold = PREPARE_ONLY_WHEN_ASKED
        return connection

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tenant_scope_applied: tenant_scope.Scope | None = None
        self.execute_wrappers.append(tenant_scope.execute_wrapper)

    def init_connection_state(self) -> None:
        self.tenant_scope_applied = None
        super().init_connection_state()

    def _rollback(self) -> None:
        super()._rollback()  # type: ignore[misc]  # django-stubs leave out the private hooks
        self.tenant_scope_applied = None

    def _savepoint_rollback(self, sid: str) -> None:
        # First the rollback (a statement, run while the transaction may be aborted), then
        # forget: the next statement applies the scope again.
        super()._savepoint_rollback(sid)  # type: ignore[misc]  # (as above)
        self.tenant_scope_applied = None
