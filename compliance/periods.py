"""Evidence periods: whole UTC days, written ``2026-10-01..2026-12-31`` (both ends
included), and the calendar months they cover."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta


class PeriodError(ValueError):
    """A period that cannot be read; the message says what is wrong."""


@dataclass(frozen=True)
class Period:
    first_day: date
    last_day: date  # included

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, time.min, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The moment after the last day (exclusive)."""
        return datetime.combine(self.last_day + timedelta(days=1), time.min, tzinfo=UTC)

    @property
    def label(self) -> str:
        return f"{self.first_day.isoformat()}..{self.last_day.isoformat()}"

    def months(self) -> list[tuple[str, datetime, datetime]]:
        """Each calendar month the period touches, cut to the period: (``2026-10``, start, end)."""
        out = []
        day = self.first_day
        while day <= self.last_day:
            next_month = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
            last = min(next_month - timedelta(days=1), self.last_day)
            out.append((
                f"{day:%Y-%m}",
                datetime.combine(day, time.min, tzinfo=UTC),
                datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC),
            ))
            day = next_month
        return out


def period_parse(value: str) -> Period:
    """``2026-10-01..2026-12-31`` -> Period; PeriodError saying what is wrong otherwise."""
    parts = (value or "").split("..")
    if len(parts) != 2:
        raise PeriodError(f"{value!r} is not FIRST..LAST, e.g. 2026-10-01..2026-12-31")
    days = []
    for part in parts:
        try:
            days.append(date.fromisoformat(part.strip()))
        except ValueError:
            raise PeriodError(f"{part.strip()!r} is not a date (YYYY-MM-DD)")
    if days[0] > days[1]:
        raise PeriodError(f"the first day {days[0]} is after the last day {days[1]}")
    return Period(days[0], days[1])


def previous_month(today: date) -> Period:
    """The whole calendar month before ``today``'s."""
    last = today.replace(day=1) - timedelta(days=1)
    return Period(last.replace(day=1), last)
