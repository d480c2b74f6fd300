"""Checking an ingestion batch as a whole, fast.

A hand-written checker rather than a DRF serializer: a 1,000-event batch is validated in
well under a millisecond per hundred events, and every problem is reported with its
path (``events.3.quantity``) so the sender can fix the batch and send it again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ErrorDetail, ValidationError

from billing.plans.periods import period_bounds, previous_period_bounds

ALLOWED_FIELDS = frozenset({"feature", "quantity", "idempotency_key", "occurred_at"})
MAX_KEY_LENGTH = 255
MAX_REPORTED_ERRORS = 100


@dataclass(frozen=True, slots=True)
class EventIn:
    feature_id: int
    quantity: int
    idempotency_key: str
    fingerprint: str
    occurred_at: datetime
    period_start: datetime
    period_end: datetime


def fingerprint(feature: str, quantity: int, occurred_at: datetime | None) -> str:
    """What makes two sends of one key "the same event": the feature, the quantity and the
    time as the sender gave it (a retry without ``occurred_at`` is still the same event)."""
    stamp = occurred_at.astimezone(UTC).isoformat() if occurred_at is not None else ""
    return hashlib.blake2b(f"{feature}\x1f{quantity}\x1f{stamp}".encode(), digest_size=16).hexdigest()


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def validate_batch(
    data: Any, *, features: dict[str, int], anchor_day: int, now: datetime
) -> list[EventIn]:
    """The batch's events, or a ValidationError naming every bad field (up to 100)."""
    if not isinstance(data, dict):
        raise ValidationError({"events": [ErrorDetail("Send an object: {\"events\": [...]}.", "required")]})
    events = data.get("events")
    max_batch = settings.USAGE_MAX_BATCH
    if events is None:
        raise ValidationError({"events": [ErrorDetail("This field is required.", "required")]})
    if not isinstance(events, list):
        raise ValidationError({"events": [ErrorDetail("Expected a list of events.", "not_a_list")]})
    if not events:
        raise ValidationError({"events": [ErrorDetail("Send at least one event.", "min_length")]})
    if len(events) > max_batch:
        raise ValidationError(
            {"events": [ErrorDetail(f"Send at most {max_batch} events per request.", "max_length")]}
        )

    max_quantity = settings.USAGE_MAX_QUANTITY
    latest = now + timedelta(seconds=settings.USAGE_MAX_FUTURE_SECONDS)
    start, end = period_bounds(anchor_day, now)
    previous_start, _ = previous_period_bounds(anchor_day, now)
    grace_open = now < start + timedelta(hours=settings.USAGE_GRACE_HOURS)
    earliest = previous_start if grace_open else start

    errors: dict[str, dict[str, list[ErrorDetail]]] = {}
    out: list[EventIn] = []

    def bad(index: int, field: str, message: str, code: str) -> None:
        errors.setdefault(str(index), {})[field] = [ErrorDetail(message, code)]

    for index, event in enumerate(events):
        if len(errors) >= MAX_REPORTED_ERRORS:
            break
        if not isinstance(event, dict):
            errors[str(index)] = {"non_field_errors": [ErrorDetail("Expected an object.", "invalid")]}
            continue
        unknown = set(event) - ALLOWED_FIELDS
        for name in sorted(unknown):
            bad(index, name, "Unknown field.", "unknown_field")

        code = event.get("feature")
        feature_id = features.get(code) if isinstance(code, str) else None
        if code is None:
            bad(index, "feature", "This field is required.", "required")
        elif feature_id is None:
            bad(index, "feature", f"Unknown feature {str(code)[:50]!r}.", "unknown_feature")

        quantity = event.get("quantity", 1)
        if type(quantity) is not int:
            bad(index, "quantity", "Must be a whole number.", "not_an_integer")
        elif quantity < 1:
            bad(index, "quantity", "Must be at least 1.", "min_value")
        elif quantity > max_quantity:
            bad(index, "quantity", f"Must be at most {max_quantity}.", "max_value")

        key = event.get("idempotency_key")
        if key is None:
            bad(index, "idempotency_key", "This field is required.", "required")
        elif not isinstance(key, str) or not key.strip():
            bad(index, "idempotency_key", "Must be a non-empty string.", "invalid")
        elif "\x00" in key:  # PostgreSQL text cannot hold NUL
            bad(index, "idempotency_key", "Must not contain the NUL character.", "invalid")
        elif len(key) > MAX_KEY_LENGTH:
            bad(index, "idempotency_key", f"At most {MAX_KEY_LENGTH} characters.", "max_length")

        raw_time = event.get("occurred_at")
        occurred_at = None
        if raw_time is not None:
            occurred_at = _parse_time(raw_time)
            if occurred_at is None:
                bad(
                    index,
                    "occurred_at",
                    "Must be an ISO 8601 time with a timezone, e.g. 2025-01-31T12:00:00Z.",
                    "invalid",
                )
            elif occurred_at > latest:
                bad(index, "occurred_at", "Is in the future (more than 5 minutes ahead).", "in_future")
            elif occurred_at < earliest:
                bad(
                    index,
                    "occurred_at",
                    "Is before the current billing period (or after its grace window closed).",
                    "before_period",
                )

        if str(index) in errors:
            continue
        # Every check above passed, so these are what they were checked to be.
        assert feature_id is not None and isinstance(code, str) and isinstance(key, str)
        when = occurred_at or now
        if start <= when < end:
            p_start, p_end = start, end
        elif when >= end:  # within the allowed clock skew of a period boundary
            p_start, p_end = period_bounds(anchor_day, when)
        else:
            p_start, p_end = previous_start, start
        out.append(
            EventIn(
                feature_id=feature_id,
                quantity=quantity,
                idempotency_key=key,
                fingerprint=fingerprint(code, quantity, occurred_at),
                occurred_at=when,
                period_start=p_start,
                period_end=p_end,
            )
        )
    if errors:
        raise ValidationError({"events": errors})
    return out
