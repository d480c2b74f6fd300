"""Usage events partitioned by month of their billing period (PostgreSQL only).

PostgreSQL wants the partition key in every unique constraint, so the primary key becomes
(id, period_start) and ``usageevent_unique_company_key`` becomes (company,
idempotency_key, period_start): an idempotency key is unique per company per billing
period. Every event of one billing period lands in one monthly partition, so retention
drops whole periods.

On PostgreSQL the table is rebuilt as a partitioned table keeping every row, its id, the
id sequence, the indexes, checks and foreign keys (nothing references the events): a
DEFAULT partition catches any month without its own partition, and the months that hold
rows, this month and the next two get theirs. Backwards it is rebuilt as a plain table
(refused if one key was used in two periods). Other databases (the SQLite demo) only get
the wider constraint.
"""

from datetime import UTC, datetime

from django.db import migrations, models

TABLE = "usage_usageevent"
BUILD = "usage_usageevent_rebuild"
PKEY = "usage_usageevent_pkey"
UNIQUE = "usageevent_unique_company_key"
AHEAD = 2  # months after the current one that get their partition now


def _month_name(month: datetime) -> str:
    return f"{TABLE}_p{month:%Y_%m}"


def _next_month(month: datetime) -> datetime:
    return datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)


def _definitions(cursor, table: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The table's own indexes (not those behind constraints) and constraints (but the
    primary key and the idempotency constraint, which change shape), as SQL to replay."""
    cursor.execute(
        """SELECT indexdef FROM pg_indexes
           WHERE schemaname = current_schema() AND tablename = %s
             AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)""",
        [table, table],
    )
    indexes = [row[0].replace(" ON ONLY ", " ON ") for row in cursor.fetchall()]
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
        "AND conname NOT IN (%s, %s) ORDER BY conname",
        [table, PKEY, UNIQUE],
    )
    return indexes, list(cursor.fetchall())


def _rebuild(cursor, *, partitioned: bool) -> None:
    indexes, constraints = _definitions(cursor, TABLE)
    cursor.execute(f"SELECT pg_get_serial_sequence('{TABLE}', 'id')")
    (old_sequence,) = cursor.fetchone()
    cursor.execute(f"SELECT last_value, is_called FROM {old_sequence}")  # noqa: S608 (our own table names)
    last_value, is_called = cursor.fetchone()
    cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
    tail = " PARTITION BY RANGE (period_start)" if partitioned else ""
    cursor.execute(f"CREATE TABLE {BUILD} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING IDENTITY){tail}")
    if partitioned:
        cursor.execute(f"CREATE TABLE {TABLE}_default PARTITION OF {BUILD} DEFAULT")
        now = datetime.now(UTC)
        month = datetime(now.year, now.month, 1, tzinfo=UTC)
        months = {month}
        for _ in range(AHEAD):
            month = _next_month(month)
            months.add(month)
        cursor.execute(f"SELECT DISTINCT date_trunc('month', period_start, 'UTC') FROM {TABLE}")  # noqa: S608 (our own table names)
        months |= {row[0].astimezone(UTC) for row in cursor.fetchall()}
        for month in sorted(months):
            cursor.execute(
                f"CREATE TABLE {_month_name(month)} PARTITION OF {BUILD} FOR VALUES FROM (%s) TO (%s)",
                [month, _next_month(month)],
            )
    cursor.execute(f"INSERT INTO {BUILD} OVERRIDING SYSTEM VALUE SELECT * FROM {TABLE}")  # noqa: S608 (our own table names)
    cursor.execute(f"DROP TABLE {TABLE}")
    cursor.execute(f"ALTER TABLE {BUILD} RENAME TO {TABLE}")
    cursor.execute(f"SELECT pg_get_serial_sequence('{TABLE}', 'id')")
    (new_sequence,) = cursor.fetchone()
    cursor.execute(f"ALTER SEQUENCE {new_sequence} RENAME TO {old_sequence.split('.')[-1]}")
    cursor.execute(f"SELECT setval(pg_get_serial_sequence('{TABLE}', 'id'), %s, %s)", [last_value, is_called])
    key = "id, period_start" if partitioned else "id"
    unique = "company_id, idempotency_key, period_start" if partitioned else "company_id, idempotency_key"
    cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {PKEY} PRIMARY KEY ({key})")
    cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {UNIQUE} UNIQUE ({unique})")
    for sql in indexes:
        cursor.execute(sql)
    for name, definition in constraints:
        cursor.execute(f'ALTER TABLE {TABLE} ADD CONSTRAINT "{name}" {definition}')


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [TABLE])
        if cursor.fetchone()[0] != "p":
            _rebuild(cursor, partitioned=True)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            f"SELECT company_id, idempotency_key FROM {TABLE} GROUP BY 1, 2 HAVING count(*) > 1 LIMIT 1"  # noqa: S608 (our own table names)
        )
        clash = cursor.fetchone()
        if clash:
            raise RuntimeError(
                f"Cannot go back to one idempotency key per company: company {clash[0]} used key "
                f"{clash[1]!r} in more than one billing period."
            )
        _rebuild(cursor, partitioned=False)


class _Portable:
    """The plain constraint change, on databases other than PostgreSQL (the rebuild did it there)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class RemoveConstraintPortable(_Portable, migrations.RemoveConstraint):
    pass


class AddConstraintPortable(_Portable, migrations.AddConstraint):
    pass


NEW_CONSTRAINT = models.UniqueConstraint(fields=("company", "idempotency_key", "period_start"), name=UNIQUE)


class Migration(migrations.Migration):

    dependencies = [
        ("usage", "0004_crossing_percent_levels"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(model_name="usageevent", name=UNIQUE),
                migrations.AddConstraint(model_name="usageevent", constraint=NEW_CONSTRAINT),
            ],
            database_operations=[
                migrations.RunPython(forwards, backwards),
                RemoveConstraintPortable(model_name="usageevent", name=UNIQUE),
                AddConstraintPortable(model_name="usageevent", constraint=NEW_CONSTRAINT),
            ],
        ),
    ]
