"""Partition maintenance of the usage events, runnable by the application role.

The application role owns no table (trans_bot.db_roles), and only a table's owner may add or
remove its partitions. So the few schema changes beat needs are functions of the owner's
(``SECURITY DEFINER``), each doing one narrow thing to a monthly partition of the events
and nothing else: make a month's partition (taking its rows over from DEFAULT), list the
months stranded in DEFAULT, detach a month (and let the caller read it for the export),
drop a detached month. usage.partitions calls them.

Beat schedules: partitions ahead daily at 00:30 UTC, retention (export, verify, drop) daily
at 03:30 UTC, after the nightly monitor. Ops can change or pause them in admin; running this
again keeps their edits.
"""

from django.db import migrations

FUNCTIONS = r"""
CREATE OR REPLACE FUNCTION usage_event_partition_create(p_month timestamptz) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
  name text := 'usage_usageevent_p' || to_char(p_month AT TIME ZONE 'UTC', 'YYYY_MM');
  moved bigint;
BEGIN
  IF p_month <> date_trunc('month', p_month, 'UTC') THEN
    RAISE EXCEPTION 'a partition starts on the first of a month (UTC), not at %', p_month;
  END IF;
  IF to_regclass(name) IS NOT NULL THEN
    RETURN 0;
  END IF;
  EXECUTE format('CREATE TABLE %I (LIKE usage_usageevent INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
  EXECUTE format('WITH moved AS (DELETE FROM usage_usageevent_default WHERE period_start >= $1 '
                 'AND period_start < $2 RETURNING *) INSERT INTO %I SELECT * FROM moved', name)
    USING p_month, p_month + interval '1 month';
  GET DIAGNOSTICS moved = ROW_COUNT;
  EXECUTE format('ALTER TABLE usage_usageevent ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                 name, p_month, p_month + interval '1 month');
  RETURN moved;
END $$;

CREATE OR REPLACE FUNCTION usage_event_default_months() RETURNS SETOF timestamptz
LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
  SELECT DISTINCT date_trunc('month', period_start, 'UTC') FROM usage_usageevent_default
$$;

CREATE OR REPLACE FUNCTION usage_event_partition_detach(p_name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
  IF p_name !~ '^usage_usageevent_p[0-9]{4}_[0-9]{2}$' THEN
    RAISE EXCEPTION '% is not a monthly partition of the usage events', p_name;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(p_name)
             AND inhparent = 'usage_usageevent'::regclass) THEN
    EXECUTE format('ALTER TABLE usage_usageevent DETACH PARTITION %I', p_name);
  END IF;
  EXECUTE format('GRANT SELECT ON %I TO %I', p_name, session_user);
END $$;

CREATE OR REPLACE FUNCTION usage_event_partition_drop(p_name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
  IF p_name !~ '^usage_usageevent_p[0-9]{4}_[0-9]{2}$' THEN
    RAISE EXCEPTION '% is not a monthly partition of the usage events', p_name;
  END IF;
  IF (SELECT relispartition FROM pg_class WHERE oid = to_regclass(p_name)) THEN
    RAISE EXCEPTION '% is still attached: detach and export it first', p_name;
  END IF;
  EXECUTE format('DROP TABLE IF EXISTS %I', p_name);
END $$;
"""

DROP_FUNCTIONS = """
DROP FUNCTION IF EXISTS usage_event_partition_create(timestamptz);

DROP FUNCTION IF EXISTS usage_event_default_months();

DROP FUNCTION IF EXISTS usage_event_partition_detach(text);

DROP FUNCTION IF EXISTS usage_event_partition_drop(text);
"""

TASKS = [
    ("Usage event partitions ahead", "usage.tasks.ensure_event_partitions", "30", "0",
     "Makes this month's and the next months' partitions of the usage events; moves strays out of DEFAULT."),
    ("Usage event retention", "usage.tasks.retire_event_partitions", "30", "3",
     "Exports, verifies and drops usage event partitions older than USAGE_EVENT_RETENTION_MONTHS."),
]


def _run(schema_editor, sql):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            for statement in sql.split("\n\n"):
                if statement.strip():
                    cursor.execute(statement)  # no parameters: the % in the bodies are PL/pgSQL's


def functions(apps, schema_editor):
    _run(schema_editor, FUNCTIONS)


def drop_functions(apps, schema_editor):
    _run(schema_editor, DROP_FUNCTIONS)


def schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, minute, hour, description in TASKS:
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
        )
        PeriodicTask.objects.get_or_create(
            name=name, defaults={"task": task, "crontab": crontab, "description": description}
        )


def unschedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=[t[0] for t in TASKS]).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("usage", "0005_usageevent_partitioned"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(functions, drop_functions),
        migrations.RunPython(schedule, unschedule),
    ]
