"""The guard of ingestion's one-statement path (``usage.services``): a one-event batch is
stored and counted in one autocommit statement unless its counter passes an alert level,
which must be recorded in the same transaction as the count. The statement then calls this
function with the counter's value after the update, the units added and the counter's
level thresholds; on a crossing it raises (SQLSTATE ``TB001``), which undoes the whole
statement, and ingestion does the batch again in a transaction that records the crossing.
"""

from django.db import migrations

FUNCTION = r"""
CREATE OR REPLACE FUNCTION usage_ingest_guard(p_used bigint, p_added bigint, p_thresholds bigint[])
RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM unnest(p_thresholds) AS t WHERE p_used - p_added < t AND t <= p_used) THEN
    RAISE EXCEPTION 'usage counter passes an alert level' USING ERRCODE = 'TB001';
  END IF;
  RETURN p_used;
END $$;
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":  # the demo's SQLite takes the transaction path
        schema_editor.execute(FUNCTION)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS usage_ingest_guard(bigint, bigint, bigint[])")


class Migration(migrations.Migration):
    dependencies = [("usage", "0006_partition_maintenance")]

    operations = [migrations.RunPython(create, drop)]
