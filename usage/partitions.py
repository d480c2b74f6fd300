"""Monthly partitions of the usage events (PostgreSQL): made ahead of time, and retired after
export once older than the retention.

The events table is partitioned by range of ``period_start``, one partition per calendar
month (UTC), named ``usage_usageevent_pYYYY_MM``, plus a DEFAULT partition so an insert
for a month without its partition never fails. Beat runs :func:`usage_partitions_ensure`
daily: it makes this month's partition and the next ``USAGE_EVENT_PARTITIONS_AHEAD``, and
if events reached the DEFAULT partition it moves them into partitions of their months and
alerts ops (beat was behind, or events carry a period nobody expected).

:func:`usage_partitions_retire` detaches each partition older than
``USAGE_EVENT_RETENTION_MONTHS``, exports it to a gzipped CSV with a JSON manifest (row
count, SHA-256 of the file and of the CSV inside), reads the file back to verify both, and
only then drops the table, audited in the same transaction. A run that dies midway is
finished by the next one: a detached partition (table still named ``..._pYYYY_MM`` but no
longer attached) is picked up again. Counters are kept: the usage meter and the monitor
read counters only.

On other databases (the SQLite demo) both are no-ops.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.services import Actor, Target, audit_record
from ops.services import notify
from usage.models import UsageEvent

log = logging.getLogger(__name__)

ACTOR = Actor.system("usage-partitions")
# One advisory lock for every change to the set of partitions, so two beat runs (or a
# run and an ops command) never interleave.
_LOCK_KEY = 0x75736167_65706172  # "usagepar"
_NAME = re.compile(r"^p(\d{4})_(\d{2})$")


class RetentionError(RuntimeError):
    """An export did not verify; the partition stays detached, nothing is dropped."""


@dataclass(frozen=True)
class EnsureReport:
    created: list[str] = field(default_factory=list)
    moved_from_default: int = 0


@dataclass(frozen=True)
class Archive:
    partition: str
    month: str
    rows: int
    path: str
    sha256: str
    content_sha256: str


def parent_table() -> str:
    return UsageEvent._meta.db_table


def default_partition() -> str:
    return f"{parent_table()}_default"


def month_start(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def add_months(month: datetime, n: int) -> datetime:
    index = month.year * 12 + month.month - 1 + n
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition_name(month: datetime) -> str:
    return f"{parent_table()}_p{month:%Y_%m}"


def _month_of(name: str) -> datetime | None:
    prefix = parent_table() + "_"
    match = _NAME.match(name.removeprefix(prefix)) if name.startswith(prefix) else None
    return datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC) if match else None


def is_partitioned() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [parent_table()])
        row = cursor.fetchone()
    return row is not None and row[0] == "p"


def attached_partitions() -> dict[datetime, str]:
    """Month → name of every monthly partition attached to the events table."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s)",
            [parent_table()],
        )
        names = [row[0] for row in cursor.fetchall()]
    return {month: name for name in names if (month := _month_of(name)) is not None}


def _detached_partitions() -> dict[datetime, str]:
    """Monthly tables detached by a retention run that did not finish."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c WHERE c.relkind = 'r' AND NOT c.relispartition "
            "AND c.relnamespace = current_schema()::regnamespace AND c.relname LIKE %s",
            [parent_table().replace("_", r"\_") + r"\_p%"],
        )
        names = [row[0] for row in cursor.fetchall()]
    return {month: name for name in names if (month := _month_of(name)) is not None}


def _lock(cursor: Any) -> None:
    # Wait a little for the table locks, then give up (beat retries tomorrow) rather than
    # queue ingestion behind us.
    cursor.execute("SET LOCAL lock_timeout = '10s'")
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])


def _create(cursor: Any, month: datetime) -> int:
    """Make the month's partition, taking over any rows of that month from the DEFAULT
    partition (PostgreSQL refuses a new partition whose rows sit in DEFAULT). Returns the
    number of rows moved. An owner's function (usage migration 0006): the application
    role owns no table."""
    cursor.execute("SELECT usage_event_partition_create(%s)", [month])
    return int(cursor.fetchone()[0])


def usage_partitions_ensure(*, now: datetime | None = None, ahead: int | None = None) -> EnsureReport:
    """This month's partition and the next ``ahead`` months' exist, and the DEFAULT
    partition is empty again. Idempotent; safe to run concurrently."""
    if not is_partitioned():
        return EnsureReport()
    now = now or timezone.now()
    ahead = settings.USAGE_EVENT_PARTITIONS_AHEAD if ahead is None else ahead
    this_month = month_start(now)
    wanted = {add_months(this_month, n) for n in range(ahead + 1)}
    created: list[str] = []
    moved = 0
    with transaction.atomic(), connection.cursor() as cursor:
        _lock(cursor)
        cursor.execute("SELECT usage_event_default_months()")
        strays = {month_start(row[0]) for row in cursor.fetchall()}
        have = attached_partitions()
        for month in sorted((wanted | strays) - set(have)):
            moved += _create(cursor, month)
            created.append(partition_name(month))
        if created:
            audit_record(
                action="usage.partitions.create",
                actor=ACTOR,
                target=Target(type="usage.partition", id=parent_table(), repr=", ".join(created)),
                details={"created": created, "moved_from_default": moved},
            )
        if moved:
            months = ", ".join(f"{m:%Y-%m}" for m in sorted(strays))
            notify(
                kind="usage.partition_default",
                title=f"{moved:,} usage events were stored in the DEFAULT partition",
                text=(
                    f"Events of {months} arrived before their monthly partition existed and were "
                    "kept in the DEFAULT partition; they have now been moved into partitions of "
                    "their own months. Check that beat runs 'Usage event partitions ahead' daily, "
                    "and whether events with such billing periods were expected."
                ),
                severity="warning",
                dedup_key=f"usage.partition_default:{now:%Y-%m-%dT%H:%M}",
                fields={"Events moved": f"{moved:,}", "Months": months},
            )
    if created:
        log.info("usage partitions created: %s (%d events moved from DEFAULT)", created, moved)
    return EnsureReport(created=created, moved_from_default=moved)


def retention_cutoff(*, now: datetime, keep_months: int) -> datetime:
    """Partitions of months before this are retired: the current month and the
    ``keep_months`` whole months before it are kept."""
    return add_months(month_start(now), -keep_months)


def usage_partitions_retire(
    *, now: datetime | None = None, keep_months: int | None = None, export_dir: Path | None = None
) -> list[Archive]:
    """Detach, export, verify and drop every partition older than the retention. Returns
    what was archived. ``keep_months`` 0 turns retention off."""
    if not is_partitioned():
        return []
    now = now or timezone.now()
    keep_months = settings.USAGE_EVENT_RETENTION_MONTHS if keep_months is None else keep_months
    if keep_months <= 0:
        return []
    if keep_months < 2:
        # The previous period still takes late events and is billed after it closes.
        raise ValueError("USAGE_EVENT_RETENTION_MONTHS must be 0 (keep everything) or at least 2")
    export_dir = Path(export_dir or settings.USAGE_EVENT_EXPORT_DIR)
    cutoff = retention_cutoff(now=now, keep_months=keep_months)
    due = {m: n for m, n in attached_partitions().items() if m < cutoff}
    due |= {m: n for m, n in _detached_partitions().items() if m < cutoff}
    archives = []
    for month in sorted(due):
        archives.append(_retire(month=month, name=due[month], export_dir=export_dir))
    return archives


def _retire(*, month: datetime, name: str, export_dir: Path) -> Archive:
    with transaction.atomic(), connection.cursor() as cursor:
        _lock(cursor)
        # Detached, and readable by us for the export (the owner's function grants it).
        cursor.execute("SELECT usage_event_partition_detach(%s)", [name])
    archive = _export(month=month, name=name, export_dir=export_dir)
    _verify(archive)
    with transaction.atomic(), connection.cursor() as cursor:
        _lock(cursor)
        cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(name)}")  # noqa: S608
        if cursor.fetchone()[0] != archive.rows:
            raise RetentionError(f"{name} changed after its export; it stays detached")
        cursor.execute("SELECT usage_event_partition_drop(%s)", [name])
        audit_record(
            action="usage.partitions.retire",
            actor=ACTOR,
            target=Target(type="usage.partition", id=name, repr=f"usage events of {month:%Y-%m}"),
            details={"rows": archive.rows, "path": archive.path, "sha256": archive.sha256,
                     "content_sha256": archive.content_sha256, "month": archive.month},
        )
    log.info("usage partition %s retired: %d events exported to %s", name, archive.rows, archive.path)
    return archive


class _HashingWriter(io.RawIOBase):
    """A file that hashes what is written to it (the gzip bytes on disk)."""

    def __init__(self, raw: io.BufferedWriter) -> None:
        self.raw, self.digest = raw, hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.digest.update(data)
        return self.raw.write(data)


def _export(*, month: datetime, name: str, export_dir: Path) -> Archive:
    export_dir.mkdir(parents=True, exist_ok=True)
    stem, n = name, 1
    while (export_dir / f"{stem}.csv.gz").exists():  # an earlier export of that month is never overwritten
        n += 1
        stem = f"{name}.{n}"
    path = export_dir / f"{stem}.csv.gz"
    partial = path.with_name(path.name + ".partial")
    content = hashlib.sha256()
    with connection.cursor() as cursor:
        table = connection.ops.quote_name(name)
        cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608
        rows = int(cursor.fetchone()[0])
        with open(partial, "wb") as raw:
            hashing = _HashingWriter(raw)
            with gzip.GzipFile(fileobj=hashing, mode="wb", mtime=0) as gz:
                query = f"COPY (SELECT * FROM {table} ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)"  # noqa: S608
                with cursor.cursor.copy(query) as copy:
                    for chunk in copy:
                        content.update(chunk)
                        gz.write(chunk)
            raw.flush()
            os.fsync(raw.fileno())
    os.replace(partial, path)
    archive = Archive(partition=name, month=f"{month:%Y-%m}", rows=rows, path=str(path),
                      sha256=hashing.digest.hexdigest(), content_sha256=content.hexdigest())
    manifest = {**archive.__dict__, "table": parent_table(), "exported_at": timezone.now().isoformat(),
                "format": "csv, header row, gzip"}
    path.with_name(f"{stem}.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return archive


def _csv_records(path: Path) -> int:
    with gzip.open(path, "rb") as gz, io.TextIOWrapper(gz, encoding="utf-8", newline="") as text:
        return sum(1 for _ in csv.reader(text)) - 1  # the header


def _content_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with gzip.open(path, "rb") as gz:
        for chunk in iter(lambda: gz.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(archive: Archive) -> None:
    """Read the file back: its bytes, the CSV inside and the number of records must be
    what was exported."""
    path = Path(archive.path)
    with open(path, "rb") as f:
        on_disk = hashlib.file_digest(f, "sha256").hexdigest()
    records = _csv_records(path)
    problems = []
    if on_disk != archive.sha256:
        problems.append(f"file SHA-256 {on_disk} != {archive.sha256}")
    if _content_digest(path) != archive.content_sha256:
        problems.append("the CSV inside differs from what was exported")
    if records != archive.rows:
        problems.append(f"{records} records in the file, {archive.rows} in the table")
    if problems:
        notify(
            kind="usage.partition_export_failed",
            title=f"Usage event export of {archive.month} did not verify; nothing was dropped",
            text=f"{archive.partition} stays detached (not dropped). {'; '.join(problems)}. File: {archive.path}",
            severity="critical",
            dedup_key=f"usage.partition_export_failed:{archive.partition}:{archive.sha256}",
        )
        raise RetentionError(f"{archive.partition}: " + "; ".join(problems))
