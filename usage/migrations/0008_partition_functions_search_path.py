"""The partition functions search the caller's temporary schema last.

They run as the events table's owner (``SECURITY DEFINER``, 0006) with the search path
current when they were made (``"$user", public``). A path that does not name ``pg_temp``
has PostgreSQL search the caller's temporary schema *first* for tables and types, so the
application role could shadow ``text`` or ``usage_usageevent_default`` with a temporary
domain or table of its own, and have its own code run as the owner. PostgreSQL's advice for
such functions: a fixed path that names ``pg_temp`` last. Their bodies build table names
with ``format('%I')``, so they keep a path rather than qualifying each name.
"""

from django.db import migrations

FUNCTIONS = (
    "usage_event_partition_create(timestamptz)",
    "usage_event_default_months()",
    "usage_event_partition_detach(text)",
    "usage_event_partition_drop(text)",
)


def pin_search_path(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT pg_catalog.quote_ident(pg_catalog.current_schema())")
        (schema,) = cursor.fetchone()
    for function in FUNCTIONS:
        schema_editor.execute(f"ALTER FUNCTION {function} SET search_path = {schema}, pg_temp", params=None)


def keep(apps, schema_editor):
    """Migrating back keeps the safe path: 0006's bodies are unchanged by it."""


class Migration(migrations.Migration):
    dependencies = [("usage", "0007_ingest_crossing_guard")]

    operations = [migrations.RunPython(pin_search_path, keep)]
