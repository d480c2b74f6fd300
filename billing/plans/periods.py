"""Monthly billing periods anchored on a day of the month, in UTC.

A company with anchor day 31 has periods starting on the 31st, or on the last day of a
shorter month (Feb 28/29, Apr 30), like Stripe's billing cycle anchor.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime


def _start_in(year: int, month: int, anchor_day: int) -> datetime:
    day = min(anchor_day, calendar.monthrange(year, month)[1])
    return datetime(year, month, day, tzinfo=UTC)


def _shift(year: int, month: int, delta: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + delta
    return index // 12, index % 12 + 1


def period_bounds(anchor_day: int, at: datetime) -> tuple[datetime, datetime]:
    """The period [start, end) containing ``at`` for a monthly anchor day."""
    at = at.astimezone(UTC)
    start = _start_in(at.year, at.month, anchor_day)
    if at < start:
        year, month = _shift(at.year, at.month, -1)
        start = _start_in(year, month, anchor_day)
    year, month = _shift(start.year, start.month, 1)
    return start, _start_in(year, month, anchor_day)


def previous_period_bounds(anchor_day: int, at: datetime) -> tuple[datetime, datetime]:
    """The period just before the one containing ``at``."""
    start, _ = period_bounds(anchor_day, at)
    year, month = _shift(start.year, start.month, -1)
    return _start_in(year, month, anchor_day), start
