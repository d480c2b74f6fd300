"""Everything that writes usage: recording events (ingestion) and the nightly monitor."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Company, CompanyAPIKey
from core.errors import Conflict
from usage.models import (
    UsageCounter,
    UsageEvent,
)
from usage.validation import EventIn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int
    duplicate_keys: list[str] = field(default_factory=list)


def _dedupe_batch(events: list[EventIn]) -> tuple[list[EventIn], list[str]]:
    """A key repeated inside one batch: the first counts, an identical repeat is a
    duplicate, a different one is a conflict."""
    first: dict[str, tuple[int, EventIn]] = {}
    repeats: list[str] = []
    for index, event in enumerate(events):
        seen = first.get(event.idempotency_key)
        if seen is None:
            first[event.idempotency_key] = (index, event)
        elif seen[1].fingerprint != event.fingerprint:
            raise Conflict(
                f"Idempotency key {event.idempotency_key!r} is used twice in this batch with "
                "different content.",
                field=f"events.{index}.idempotency_key",
            )
        else:
            repeats.append(event.idempotency_key)
    return [pair[1] for pair in first.values()], repeats


_PG_INGEST_SQL = """
WITH rows AS (
    SELECT * FROM unnest(
        %(feature_ids)s::bigint[], %(quantities)s::bigint[], %(keys)s::varchar[],
        %(fingerprints)s::varchar[], %(occurred)s::timestamptz[], %(starts)s::timestamptz[],
        %(ends)s::timestamptz[]
    ) AS r(feature_id, quantity, idempotency_key, fingerprint, occurred_at, period_start, period_end)
),
ins AS (
    INSERT INTO usage_usageevent (company_id, feature_id, quantity, idempotency_key, fingerprint,
                                  occurred_at, received_at, period_start, api_key_id)
    SELECT %(company_id)s, feature_id, quantity, idempotency_key, fingerprint,
           occurred_at, %(now)s, period_start, %(api_key_id)s
    FROM rows ORDER BY idempotency_key
    ON CONFLICT (company_id, idempotency_key) DO NOTHING
    RETURNING idempotency_key
),
roll AS (
    INSERT INTO usage_usagecounter (company_id, feature_id, period_start, period_end, used, updated_at)
    SELECT %(company_id)s, r.feature_id, r.period_start, r.period_end, sum(r.quantity), %(now)s
    FROM ins JOIN rows r USING (idempotency_key)
    GROUP BY r.feature_id, r.period_start, r.period_end
    ORDER BY r.feature_id, r.period_start
    ON CONFLICT (company_id, feature_id, period_start)
    DO UPDATE SET used = usage_usagecounter.used + EXCLUDED.used, updated_at = EXCLUDED.updated_at
)
SELECT idempotency_key FROM ins
"""


def _insert_postgresql(
    *, company_id: int, api_key_id: str | None, events: list[EventIn], now: datetime
) -> set[str]:
    """One statement: insert the new events, skip known keys, roll the inserted ones up
    into counters. Rows are inserted in key order and counters in feature order, so two
    concurrent batches of one company always lock in the same order (no deadlock)."""
    params = {
        "company_id": company_id,
        "api_key_id": api_key_id,
        "now": now,
        "feature_ids": [e.feature_id for e in events],
        "quantities": [e.quantity for e in events],
        "keys": [e.idempotency_key for e in events],
        "fingerprints": [e.fingerprint for e in events],
        "occurred": [e.occurred_at for e in events],
        "starts": [e.period_start for e in events],
        "ends": [e.period_end for e in events],
    }
    with connection.cursor() as cursor:
        cursor.execute(_PG_INGEST_SQL, params)
        return {row[0] for row in cursor.fetchall()}


def _insert_portable(
    *, company_id: int, api_key_id: str | None, events: list[EventIn], now: datetime
) -> set[str]:
    """SQLite (the embedded demo): the transaction holds the database's write lock from its
    start, so "which keys exist" cannot change under us before the insert."""
    keys = [e.idempotency_key for e in events]
    existing: set[str] = set()
    for i in range(0, len(keys), 500):
        existing |= set(
            UsageEvent.objects.filter(company_id=company_id, idempotency_key__in=keys[i : i + 500])
            .values_list("idempotency_key", flat=True)
        )
    new = [e for e in events if e.idempotency_key not in existing]
    UsageEvent.objects.bulk_create(
        [
            UsageEvent(
                company_id=company_id,
                feature_id=e.feature_id,
                quantity=e.quantity,
                idempotency_key=e.idempotency_key,
                fingerprint=e.fingerprint,
                occurred_at=e.occurred_at,
                received_at=now,
                period_start=e.period_start,
                api_key_id=api_key_id,
            )
            for e in new
        ],
        batch_size=250,
    )
    totals: dict[tuple[int, datetime, datetime], int] = {}
    for e in new:
        slot = (e.feature_id, e.period_start, e.period_end)
        totals[slot] = totals.get(slot, 0) + e.quantity
    for (feature_id, start, end), used in sorted(totals.items()):
        updated = UsageCounter.objects.filter(
            company_id=company_id, feature_id=feature_id, period_start=start
        ).update(used=F("used") + used, updated_at=now)
        if not updated:
            UsageCounter.objects.create(
                company_id=company_id,
                feature_id=feature_id,
                period_start=start,
                period_end=end,
                used=used,
                updated_at=now,
            )
    return {e.idempotency_key for e in new}


def usage_record_events(
    *,
    company: Company,
    events: list[EventIn],
    api_key: CompanyAPIKey | None = None,
    now: datetime | None = None,
) -> IngestResult:
    """Store a validated batch and count it, all or nothing.

    Keys already stored with the same fingerprint are duplicates (acknowledged, not
    counted again); a stored key with a different fingerprint rejects the whole batch with
    409 naming the key. Events and counters commit in one transaction."""
    now = now or timezone.now()
    unique, repeats = _dedupe_batch(events)
    index_of = {e.idempotency_key: i for i, e in reversed(list(enumerate(events)))}
    insert = _insert_postgresql if connection.vendor == "postgresql" else _insert_portable
    with transaction.atomic():
        inserted = insert(
            company_id=company.pk,
            api_key_id=api_key.pk if api_key is not None else None,
            events=unique,
            now=now,
        )
        skipped = [e for e in unique if e.idempotency_key not in inserted]
        if skipped:
            stored = dict(
                UsageEvent.objects.filter(
                    company_id=company.pk, idempotency_key__in=[e.idempotency_key for e in skipped]
                ).values_list("idempotency_key", "fingerprint")
            )
            for event in skipped:
                if stored.get(event.idempotency_key) != event.fingerprint:
                    raise Conflict(
                        f"Idempotency key {event.idempotency_key!r} was already used for a "
                        "different event (feature, quantity or occurred_at differ).",
                        field=f"events.{index_of[event.idempotency_key]}.idempotency_key",
                    )
    duplicate_keys = [e.idempotency_key for e in skipped] + repeats
    return IngestResult(
        accepted=len(inserted), duplicates=len(duplicate_keys), duplicate_keys=duplicate_keys
    )
