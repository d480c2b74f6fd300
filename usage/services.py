"""Everything that writes usage: recording events (ingestion, with the threshold crossings
it makes) and the owners' alert settings; the nightly monitor is ``usage.monitor``."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Company, CompanyAPIKey
from audit.services import Actor, audit_record
from billing.plans.cache import entitlements_cached
from billing.plans.selectors import Entitlement
from core.errors import ApplicationError, Conflict, ErrorKind
from core.money import format_money
from core.postgresql.prepared import fetchall_prepared
from usage.crossings import Reached, company_alert_levels, crossings_record, levels_between, reached_rows
from usage.models import (
    CrossingSource,
    UsageCounter,
    UsageEvent,
)
from usage.spend import overage_money
from usage.validation import EventIn

log = logging.getLogger(__name__)

INGEST_ACTOR = Actor.system("usage-ingest")


class LimitReached(ApplicationError):
    """A batch would take a hard-limited (or capped, at its cap) feature past its limit,
    or the period's overage money past the owners' spend cap."""

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
    RETURNING feature_id, period_start, used
)
SELECT idempotency_key, NULL::bigint, NULL::timestamptz, NULL::bigint FROM ins
UNION ALL
SELECT NULL, feature_id, period_start, used FROM roll
"""


def _insert_postgresql(
    *, company_id: int, api_key_id: str | None, events: list[EventIn], now: datetime, limited: set[Slot]
) -> tuple[set[str], dict[Slot, int]]:
    """One statement: insert the new events, skip known keys, roll the inserted ones up
    into counters, except the ``limited`` ones (hard or capped: counted after, by a
    conditional update). Rows are inserted in key order and counters in feature order, so
    two concurrent batches of one company always lock in the same order (no deadlock).
    Returns the inserted keys and each rolled-up counter's value after this batch (its
    RETURNING: what crossing detection reads, at no extra round trip)."""
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
    keys: set[str] = set()
    counters: dict[Slot, int] = {}
    for key, feature_id, start, used in fetchall_prepared(_PG_INGEST_SQL, params):
        if key is not None:
            keys.add(key)
        else:
            counters[(feature_id, start)] = used
    return keys, counters


# Whether the counter's update passed a level threshold (``_thresholds``, sorted): the
# number of thresholds at or below it (its ``width_bucket``) grew.
_CROSSES_SQL = (
    "width_bucket(used, %(thresholds)s::bigint[]) > width_bucket(used - %(quantity)s, %(thresholds)s::bigint[])"
)

# ON CONFLICT without a target: the only unique index a new row can meet is the key's
# (the id comes from its sequence), and naming the constraint costs the partitioned table
# a lookup per statement.
_PG_INGEST_ONE_SQL = f"""
WITH ins AS (
    INSERT INTO usage_usageevent (company_id, feature_id, quantity, idempotency_key, fingerprint,
                                  occurred_at, received_at, period_start, api_key_id)
    VALUES (%(company_id)s, %(feature_id)s, %(quantity)s, %(key)s, %(fingerprint)s, %(occurred)s, %(now)s,
            %(start)s, %(api_key_id)s)
    ON CONFLICT DO NOTHING
    RETURNING quantity
)
INSERT INTO usage_usagecounter (company_id, feature_id, period_start, period_end, used, updated_at)
SELECT %(company_id)s, %(feature_id)s, %(start)s, %(end)s, quantity, %(now)s FROM ins
ON CONFLICT (company_id, feature_id, period_start)
DO UPDATE SET used = usage_usagecounter.used + EXCLUDED.used, updated_at = EXCLUDED.updated_at
RETURNING CASE WHEN {_CROSSES_SQL} THEN usage_ingest_crossed() ELSE used END
"""  # noqa: S608 (no input in the text: the parameters are bound)

# Raised by usage_ingest_crossed (usage/migrations/0007): the one statement's counter passed
# an alert level; the statement was undone.
CROSSING_SQLSTATE = "TB001"


def _thresholds(*, included: int | None, levels: tuple[int, ...]) -> list[int]:
    """The counter values at which each alert level is reached: a counter going from
    ``before`` to ``after`` passes level ``lv`` (``levels_between``) exactly when
    ``before < t <= after`` for its threshold ``t`` = ⌈included × lv / 100⌉."""
    if not included or included <= 0:
        return []
    return sorted({-(-included * level // 100) for level in levels})


def _record_one(
    *, company: Company, event: EventIn, api_key_id: str | None, now: datetime, entitlement: Entitlement | None
) -> IngestResult | None:
    """A one-event batch of a feature counted as always (no hard limit, no cap, no spend
    cap) in one autocommit statement: insert, skip a known key, count. None when the count
    would pass an alert level (the guard undid the statement): the caller does the batch in
    a transaction that records the crossing with the count."""
    included = entitlement.terms.included if entitlement is not None else None
    thresholds = _thresholds(included=included, levels=company_alert_levels(company))
    params = {
        "company_id": company.pk,
        "feature_id": event.feature_id,
        "quantity": event.quantity,
        "key": event.idempotency_key,
        "fingerprint": event.fingerprint,
        "occurred": event.occurred_at,
        "now": now,
        "start": event.period_start,
        "end": event.period_end,
        "api_key_id": api_key_id,
        # An array literal: psycopg's list dumper would inspect the list on every call.
        "thresholds": "{" + ",".join(map(str, thresholds)) + "}",
    }
    try:
        # Outside a transaction (a request) the statement commits alone; inside one (a
        # caller's, a test's) a savepoint stands in for it.
        with transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext():
            counted = fetchall_prepared(_PG_INGEST_ONE_SQL, params)
    except DatabaseError as exc:
        if getattr(exc.__cause__, "sqlstate", None) == CROSSING_SQLSTATE:
            return None
        raise
    if counted:
        return IngestResult(accepted=1, duplicates=0, duplicate_keys=[])
    stored = (
        UsageEvent.objects.filter(
            company_id=company.pk, idempotency_key=event.idempotency_key, period_start=event.period_start
        )
        .values_list("fingerprint", flat=True)
        .first()
    )
    if stored is None:  # the key's event was removed since: nothing to acknowledge it by
        return None
    if stored != event.fingerprint:
        raise Conflict(
            f"Idempotency key {event.idempotency_key!r} was already used for a "
            "different event (feature, quantity or occurred_at differ).",
            field="events.0.idempotency_key",
        )
    return IngestResult(accepted=0, duplicates=1, duplicate_keys=[event.idempotency_key])


def _insert_portable(
    *, company_id: int, api_key_id: str | None, events: list[EventIn], now: datetime, limited: set[Slot]
) -> tuple[set[str], dict[Slot, int]]:
    """SQLite (the embedded demo): the transaction holds the database's write lock from its
    start, so "which keys exist" cannot change under us before the insert."""
    keys = [e.idempotency_key for e in events]
    periods = {e.period_start for e in events}
    existing: set[tuple[str, datetime]] = set()  # a key is unique per company and billing period
    for i in range(0, len(keys), 500):
        existing |= set(
            UsageEvent.objects.filter(
                company_id=company_id, idempotency_key__in=keys[i : i + 500], period_start__in=periods
            ).values_list("idempotency_key", "period_start")
        )
    new = [e for e in events if (e.idempotency_key, e.period_start) not in existing]
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
    counters: dict[Slot, int] = {}
    for (feature_id, start, end), used in sorted(totals.items()):
        mine = UsageCounter.objects.filter(company_id=company_id, feature_id=feature_id, period_start=start)
        updated = mine.update(used=F("used") + used, updated_at=now)
        if not updated:
            UsageCounter.objects.create(
                company_id=company_id,
                feature_id=feature_id,
                period_start=start,
                period_end=end,
                used=used,
                updated_at=now,
            )
        counters[(feature_id, start)] = mine.values_list("used", flat=True).get()
    return {e.idempotency_key for e in new}, counters


def _entitlements(*, company: Company, events: list[EventIn], now: datetime) -> dict[datetime, dict[int, Entitlement]]:
    """Period start → feature id → the effective entitlement in each period the batch
    counts in (at ``now``, or at a closed period's last moment), from this process's
    hot-path cache (no query once warm; a change is seen within a second)."""
    assert company.tier_id is not None
    out: dict[datetime, dict[int, Entitlement]] = {}
    for start, end in {(e.period_start, e.period_end) for e in events}:
        at = min(now, end - timedelta(microseconds=1))
        found = entitlements_cached(company_id=company.pk, tier_id=company.tier_id, at=at)
        out[start] = {entitlement.feature_id: entitlement for entitlement in found.values()}
    return out


def _ceilings(*, entitlements: dict[datetime, dict[int, Entitlement]], events: list[EventIn]) -> dict[Slot, _Ceiling]:
    """The hard and capped limits the batch touches, per counter. Soft and unlimited
    features are absent: they are counted as always."""
    ends = {e.period_start: e.period_end for e in events}
    out: dict[Slot, _Ceiling] = {}
    for feature_id, start in {(e.feature_id, e.period_start) for e in events}:
        entitlement = entitlements[start].get(feature_id)
        if entitlement is not None and entitlement.terms.ceiling is not None:
            out[(feature_id, start)] = _Ceiling(
                entitlement.terms.ceiling, entitlement.feature, entitlement.terms.mode, ends[start]
            )
    return out


def _added(events: list[EventIn], inserted: set[str]) -> dict[Slot, int]:
    """Units this batch adds per counter (stored events only: replays add nothing)."""
    totals: dict[Slot, int] = {}
    for e in events:
        if e.idempotency_key in inserted:
            slot = (e.feature_id, e.period_start)
            totals[slot] = totals.get(slot, 0) + e.quantity
    return totals


_COUNT_WITHIN_SQL = """
UPDATE {table} SET used = used + %s, updated_at = %s
WHERE company_id = %s AND feature_id = %s AND period_start = %s AND used <= %s
RETURNING used
"""  # noqa: S608 (the table name is the model's)


def _count_within_limits(
    *,
    company_id: int,
    events: list[EventIn],
    inserted: set[str],
    ceilings: dict[Slot, _Ceiling],
    index_of: dict[str, int],
    now: datetime,
) -> dict[Slot, int]:
    """Count the newly stored events of limited counters with ``used = used + n WHERE
    used + n <= ceiling`` and refuse the batch when no row comes back: the counter's row
    lock makes concurrent batches queue, and each re-checks the condition on the value the
    one before it committed, so together they never overshoot. Counters are taken in
    (feature, period) order, after the soft ones, as every batch does (no deadlock).
    Returns each counter's value after this batch."""
    totals = {slot: n for slot, n in _added(events, inserted).items() if slot in ceilings}
    sql = _COUNT_WITHIN_SQL.format(table=connection.ops.quote_name(UsageCounter._meta.db_table))
    counters: dict[Slot, int] = {}
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
        with connection.cursor() as cursor:
            cursor.execute(
                sql,
                [
                    n,
                    connection.ops.adapt_datetimefield_value(now),
                    company_id,
                    feature_id,
                    connection.ops.adapt_datetimefield_value(start),
                    ceiling.units - n,
                ],
            )
            row = cursor.fetchone()
        if row is None:
            _refuse(
                company_id=company_id, slot=slot, ceiling=ceiling, events=events, inserted=inserted, index_of=index_of
            )
        else:
            counters[slot] = row[0]
    return counters


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


_LOCK_SPEND_CAP_SQL = "SELECT spend_cap FROM {table} WHERE id = %s FOR NO KEY UPDATE"  # noqa: S608


def _spend_cap_locked(company: Company) -> int | None:
    """The owners' spend cap as committed now, its company row locked until the ingest
    transaction ends: batches of a capped company queue here, before any counter, so each
    sees the overage the one before it committed, and an owner's change of the cap waits
    for (or is seen by) the batch. Uncapped companies (the common case) never come here."""
    if connection.vendor != "postgresql":
        return Company.objects.filter(pk=company.pk).values_list("spend_cap", flat=True).first()
    table = connection.ops.quote_name(Company._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_SPEND_CAP_SQL.format(table=table), [company.pk])
        row = cursor.fetchone()
    return None if row is None else row[0]


def _check_spend_cap(
    *,
    company: Company,
    cap: int,
    events: list[EventIn],
    inserted: set[str],
    added: dict[Slot, int],
    entitlements: dict[datetime, dict[int, Entitlement]],
    index_of: dict[str, int],
) -> None:
    """Refuse the batch when it raises a period's overage money (every feature's units
    beyond its included quantity at its unit price) past the spend cap. Read from the
    counters after this batch, under the company row lock; units within an included
    quantity are never refused."""
    for start in sorted({start for (feature_id, start), n in added.items() if n}):
        terms = entitlements[start]
        priced = {f for (f, s) in added if s == start and terms.get(f) and terms[f].terms.overage_unit_price}
        if not priced:
            continue
        after = dict(
            UsageCounter.objects.filter(company_id=company.pk, period_start=start).values_list("feature_id", "used")
        )
        spent_after = sum(overage_money(terms.get(f), used) for f, used in after.items())
        if spent_after <= cap:
            continue
        running = {f: used - added.get((f, start), 0) for f, used in after.items()}
        spent_before = spent = sum(overage_money(terms.get(f), used) for f, used in running.items())
        if spent_after <= spent_before:
            continue
        index = 0
        for e in events:
            if e.period_start != start or e.idempotency_key not in inserted:
                continue
            old = overage_money(terms.get(e.feature_id), running[e.feature_id])
            running[e.feature_id] += e.quantity
            spent += overage_money(terms.get(e.feature_id), running[e.feature_id]) - old
            if spent > cap:
                index = index_of[e.idempotency_key]
                break
        currency = company.tier.currency
        raise LimitReached(
            f"Event {index} would take this period's overage to {format_money(spent, currency)}, past the "
            f"monthly spend cap of {format_money(cap, currency)} ({format_money(spent_before, currency)} "
            "spent); the batch was not stored. An owner can raise the spend cap on the account page; "
            "it resets when the period ends.",
            field=f"events.{index}.feature",
        )


def _crossings(
    *,
    company: Company,
    counters: dict[Slot, int],
    added: dict[Slot, int],
    entitlements: dict[datetime, dict[int, Entitlement]],
) -> list[Reached]:
    """The alert levels this batch's counter updates passed (nothing to read: the counters'
    values after the update came back from the update itself)."""
    levels = company_alert_levels(company)
    if not levels:
        return []
    rows: list[Reached] = []
    for (feature_id, start), used in counters.items():
        entitlement = entitlements[start].get(feature_id)
        included = entitlement.terms.included if entitlement is not None else None
        crossed = levels_between(
            before=used - added.get((feature_id, start), 0), after=used, included=included, levels=levels
        )
        if crossed and included is not None and entitlement is not None:
            rows += reached_rows(
                company_id=company.pk, feature_id=feature_id, period_start=start, used=used, included=included,
                levels=crossed, mode=entitlement.terms.mode,
            )
    return rows


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
    limit in a period, or the period's overage money past the owners' spend cap, is
    refused whole with ``LimitReached`` (422, ``limit_reached``) naming the first event
    that does not fit; replays of stored events count nothing and so are never refused.

    An alert level the batch's counters pass is recorded and announced (owners' e-mail;
    for a breach the ops alert and task; an audit record) in the same transaction, once
    however many batches pass it together: the counters' row locks order them, so only
    one sees the level between its before and after.

    On PostgreSQL a one-event batch of an unlimited-or-soft feature of a company without a
    spend cap is one autocommit statement (``_record_one``); only when its count passes a
    level is it undone and done again here, in the transaction that records the crossing."""
    now = now or timezone.now()
    unique, repeats = _dedupe_batch(events)
    index_of = {e.idempotency_key: i for i, e in reversed(list(enumerate(events)))}
    insert = _insert_postgresql if connection.vendor == "postgresql" else _insert_portable
    entitlements = _entitlements(company=company, events=unique, now=now) if unique else {}
    ceilings = _ceilings(entitlements=entitlements, events=unique) if unique else {}
    if len(events) == 1 and not ceilings and company.spend_cap is None and connection.vendor == "postgresql":
        event = events[0]
        one = _record_one(
            company=company,
            event=event,
            api_key_id=api_key.pk if api_key is not None else None,
            now=now,
            entitlement=entitlements[event.period_start].get(event.feature_id),
        )
        if one is not None:
            return one
    with transaction.atomic():
        cap = _spend_cap_locked(company) if unique and company.spend_cap is not None else None
        inserted, counters = insert(
            company_id=company.pk,
            api_key_id=api_key.pk if api_key is not None else None,
            events=unique,
            now=now,
            limited=set(ceilings),
        )
        skipped = [e for e in unique if e.idempotency_key not in inserted]
        if skipped:
            # The stored event a skipped one collided with: same key in the same billing
            # period (the constraint, and the partition, include the period).
            stored = {
                (key, start): fingerprint
                for key, start, fingerprint in UsageEvent.objects.filter(
                    company_id=company.pk,
                    idempotency_key__in=[e.idempotency_key for e in skipped],
                    period_start__in={e.period_start for e in skipped},
                ).values_list("idempotency_key", "period_start", "fingerprint")
            }
            for event in skipped:
                if stored.get((event.idempotency_key, event.period_start)) != event.fingerprint:
                    raise Conflict(
                        f"Idempotency key {event.idempotency_key!r} was already used for a "
                        "different event (feature, quantity or occurred_at differ).",
                        field=f"events.{index_of[event.idempotency_key]}.idempotency_key",
                    )
        if ceilings:
            counters.update(
                _count_within_limits(
                    company_id=company.pk,
                    events=unique,
                    inserted=inserted,
                    ceilings=ceilings,
                    index_of=index_of,
                    now=now,
                )
            )
        if counters:
            added = _added(unique, inserted)
            if cap is not None:
                _check_spend_cap(
                    company=company,
                    cap=cap,
                    events=unique,
                    inserted=inserted,
                    added=added,
                    entitlements=entitlements,
                    index_of=index_of,
                )
            crossed = _crossings(company=company, counters=counters, added=added, entitlements=entitlements)
            if crossed:
                crossings_record(rows=crossed, source=CrossingSource.INGEST, actor=INGEST_ACTOR, now=now)
    duplicate_keys = [e.idempotency_key for e in skipped] + repeats
    return IngestResult(
        accepted=len(inserted), duplicates=len(duplicate_keys), duplicate_keys=duplicate_keys
    )


def usage_alerts_update(*, company: Company, levels: list[int], spend_cap: int | None, actor: Actor) -> bool:
    """Set the owners' own alert levels (percents, on top of the tier's) and monthly
    spend cap (overage money in minor units; None: no cap). Audited with before and after.
    Under the company row lock that capped ingestion takes: a batch sees the old cap or
    the new one, and a raised cap lets the next batch through. False when nothing changed."""
    with transaction.atomic():
        locked = Company.objects.select_for_update().get(pk=company.pk)
        before = {"alert_levels": list(locked.alert_levels or []), "spend_cap": locked.spend_cap}
        after = {"alert_levels": list(levels), "spend_cap": spend_cap}
        if before == after:
            return False
        locked.alert_levels, locked.spend_cap = after["alert_levels"], spend_cap
        locked.save(update_fields=["alert_levels", "spend_cap", "updated_at"])  # post_save: hot caches forget it
        audit_record(
            action="usage.alerts.update",
            actor=actor,
            target=locked,
            company=locked,
            details={
                "changes": {
                    name: {"before": before[name], "after": after[name]}
                    for name in before
                    if before[name] != after[name]
                }
            },
        )
    company.alert_levels, company.spend_cap = after["alert_levels"], spend_cap
    return True
