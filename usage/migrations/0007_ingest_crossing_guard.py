"""What ingestion's one-statement path (``usage.services``) raises when it must not finish.

A one-event batch is stored and counted in one autocommit statement unless its counter
passes an alert level, which must be recorded in the same transaction as the count. The
statement's ``RETURNING`` compares the counter's level bucket before and after the update
(``width_bucket`` over the level thresholds) and calls this function only when they differ;
it raises (SQLSTATE ``TB001``), which undoes the whole statement, and ingestion does the
batch again in a transaction that records the crossing.
"""

from django.db import migrations

FUNCTION = r"""
CREATE OR REPLACE FUNCTION usage_ingest_crossed() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'usage counter passes an alert level' USING ERRCODE = 'TB001';
END $$;
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":  # the demo's SQLite takes the transaction path
        schema_editor.execute(FUNCTION)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS usage_ingest_crossed()")


class Migration(migrations.Migration):
    dependencies = [("usage", "0006_partition_maintenance")]

    operations = [migrations.RunPython(create, drop)]
