"""Everything that writes usage: recording events (ingestion) and the nightly monitor."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Company, CompanyAPIKey
from billing.plans.selectors import entitlements_effective
from core.errors import ApplicationError, Conflict, ErrorKind
from usage.models import (
    UsageCounter,
    UsageEvent,
)
from usage.validation import EventIn

log = logging.getLogger(__name__)


class LimitReached(ApplicationError):
    """A batch would take a hard-limited (or capped, at its cap) feature past its limit."""

    kind = ErrorKind.REFUSED
    code = "limit_reached"


Slot = tuple[int, datetime]  # (feature id, period start): one counter


@dataclass(frozen=True)
class _Ceiling:
    units: int
    feature: str
    mode: str
    period_end: datetime


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
    ON CONFLICT ON CONSTRAINT usageevent_unique_company_key DO NOTHING
    RETURNING idempotency_key
),
roll AS (
    INSERT INTO usage_usagecounter (company_id, feature_id, period_start, period_end, used, updated_at)
    SELECT %(company_id)s, r.feature_id, r.period_start, r.period_end, sum(r.quantity), %(now)s
    FROM ins JOIN rows r USING (idempotency_key)
    WHERE NOT EXISTS (
        SELECT 1 FROM unnest(%(limited_features)s::bigint[], %(limited_starts)s::timestamptz[]) AS x(f, p)
        WHERE x.f = r.feature_id AND x.p = r.period_start
    )
    GROUP BY r.feature_id, r.period_start, r.period_end
    ORDER BY r.feature_id, r.period_start
    ON CONFLICT (company_id, feature_id, period_start)
    DO UPDATE SET used = usage_usagecounter.used + EXCLUDED.used, updated_at = EXCLUDED.updated_at
)
SELECT idempotency_key FROM ins
"""


def _insert_postgresql(
    *, company_id: int, api_key_id: str | None, events: list[EventIn], now: datetime, limited: set[Slot]
) -> set[str]:
    """One statement: insert the new events, skip known keys, roll the inserted ones up
    into counters, except the ``limited`` ones (hard or capped: counted after, by a
    conditional update). Rows are inserted in key order and counters in feature order, so
    two concurrent batches of one company always lock in the same order (no deadlock)."""
    ordered = sorted(limited)
    params: dict[str, Any] = {
        "limited_features": [f for f, _ in ordered],
        "limited_starts": [p for _, p in ordered],
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
    *, company_id: int, api_key_id: str | None, events: list[EventIn], now: datetime, limited: set[Slot]
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
        if (e.feature_id, e.period_start) in limited:
            continue
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


def _ceilings(*, company: Company, events: list[EventIn], now: datetime) -> dict[Slot, _Ceiling]:
    """The hard and capped limits the batch touches, per counter: the effective
    entitlement in each period the batch counts in (at ``now``, or at a closed period's
    last moment). Soft and unlimited features are absent: they are counted as always."""
    assert company.tier_id is not None
    periods = {(e.period_start, e.period_end) for e in events}
    features = {e.feature_id for e in events}
    out: dict[Slot, _Ceiling] = {}
    for start, end in periods:
        at = min(now, end - timedelta(microseconds=1))
        for code, entitlement in entitlements_effective(company_id=company.pk, tier_id=company.tier_id, at=at).items():
            ceiling = entitlement.terms.ceiling
            if entitlement.feature_id in features and ceiling is not None:
                out[(entitlement.feature_id, start)] = _Ceiling(ceiling, code, entitlement.terms.mode, end)
    return out


def _count_within_limits(
    *,
    company_id: int,
    events: list[EventIn],
    inserted: set[str],
    ceilings: dict[Slot, _Ceiling],
    index_of: dict[str, int],
    now: datetime,
) -> None:
    """Count the newly stored events of limited counters with ``used = used + n WHERE
    used + n <= ceiling`` and refuse the batch when a row count says no: the counter's row
    lock makes concurrent batches queue, and each re-checks the condition on the value the
    one before it committed, so together they never overshoot. Counters are taken in
    (feature, period) order, after the soft ones, as every batch does (no deadlock)."""
    totals: dict[Slot, int] = {}
    for e in events:
        slot = (e.feature_id, e.period_start)
        if slot in ceilings and e.idempotency_key in inserted:
            totals[slot] = totals.get(slot, 0) + e.quantity
    for slot, n in sorted(totals.items()):
        ceiling = ceilings[slot]
        feature_id, start = slot
        UsageCounter.objects.bulk_create(
            [
                UsageCounter(
                    company_id=company_id,
                    feature_id=feature_id,
                    period_start=start,
                    period_end=ceiling.period_end,
                    used=0,
                    updated_at=now,
                )
            ],
            ignore_conflicts=True,
        )
        counted = UsageCounter.objects.filter(
            company_id=company_id, feature_id=feature_id, period_start=start, used__lte=ceiling.units - n
        ).update(used=F("used") + n, updated_at=now)
        if not counted:
            _refuse(
                company_id=company_id, slot=slot, ceiling=ceiling, events=events, inserted=inserted, index_of=index_of
            )


def _refuse(
    *,
    company_id: int,
    slot: Slot,
    ceiling: _Ceiling,
    events: list[EventIn],
    inserted: set[str],
    index_of: dict[str, int],
) -> None:
    """Name the first event of the batch that does not fit (the batch is refused whole)."""
    feature_id, start = slot
    used = (
        UsageCounter.objects.filter(company_id=company_id, feature_id=feature_id, period_start=start)
        .values_list("used", flat=True)
        .first()
    ) or 0
    running, index = used, 0
    for e in events:
        if (e.feature_id, e.period_start) == slot and e.idempotency_key in inserted:
            running += e.quantity
            if running > ceiling.units:
                index = index_of[e.idempotency_key]
                break
    what = "hard limit" if ceiling.mode == "hard" else "overage cap"
    raise LimitReached(
        f"Event {index} would take {ceiling.feature} past its {what} of {ceiling.units} this period "
        f"({used} used); the batch was not stored.",
        field=f"events.{index}.feature",
    )


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
    409 naming the key. Events and counters commit in one transaction.

    A batch that would take a hard-limited feature (or a capped one at its cap) past its
    limit in a period is refused whole with ``LimitReached`` (422, ``limit_reached``)
    naming the first event that does not fit; replays of stored events count nothing and
    so are never refused."""
    now = now or timezone.now()
    unique, repeats = _dedupe_batch(events)
    index_of = {e.idempotency_key: i for i, e in reversed(list(enumerate(events)))}
    insert = _insert_postgresql if connection.vendor == "postgresql" else _insert_portable
    ceilings = _ceilings(company=company, events=unique, now=now) if unique else {}
    with transaction.atomic():
        inserted = insert(
            company_id=company.pk,
            api_key_id=api_key.pk if api_key is not None else None,
            events=unique,
            now=now,
            limited=set(ceilings),
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
        if ceilings:
            _count_within_limits(
                company_id=company.pk,
                events=unique,
                inserted=inserted,
                ceilings=ceilings,
                index_of=index_of,
                now=now,
            )
    duplicate_keys = [e.idempotency_key for e in skipped] + repeats
    return IngestResult(
        accepted=len(inserted), duplicates=len(duplicate_keys), duplicate_keys=duplicate_keys
    )
