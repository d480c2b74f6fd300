"""The seed's business targets, read from what billing, usage and growth record (the
composition root may read every app): trial→paid, overage's share of revenue, upgrades
this month and quote→book. Shown on the dashboard's targets card and on /admin/targets/."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import reduce
from operator import or_

from django.db.models import Exists, F, OuterRef, Q, Sum
from django.utils import timezone

from accounts.models import Company
from billing.plans.models import Feature
from billing.plans.periods import period_bounds
from billing.stripe.models import BillingEvent, BillingEventKind, BillingEventStatus, CompanyStripe
from growth.models import Booking
from usage.models import UsageCounter

TRIAL_TO_PAID_TARGET = 0.25
OVERAGE_SHARE_TARGET = 0.05
QUOTE_TO_BOOK_TARGET = 0.28
QUOTES_FEATURE = "quotes"
# A company is on the booking feed if the product sent one of its bookings this recently.
BOOKING_FEED_DAYS = 31


@dataclass(frozen=True)
class TargetFigure:
    name: str
    value: float | None  # None: no data to compute it from
    target: float | None
    detail: str
    missing: str = "no data"  # what the figure says instead of a value

    @property
    def met(self) -> bool | None:
        if self.value is None or self.target is None:
            return None
        return self.value >= self.target

    @property
    def shown(self) -> str:
        if self.value is None:
            return self.missing
        return f"{self.value * 100:.1f} %" if self.target is not None else f"{self.value:.0f}"

    @property
    def target_shown(self) -> str:
        return "—" if self.target is None else f"≥ {self.target * 100:.0f} %"

    @property
    def colour(self) -> str:
        return {True: "green", False: "red", None: "grey"}[self.met]

    @property
    def css(self) -> str:
        """The dashboard's class for the figure: met, missed, or nothing to judge."""
        return {True: "tb-good", False: "tb-bad", None: "tb-muted"}[self.met]


def _month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def trial_to_paid(*, now: datetime, days: int) -> tuple[int, int]:
    """(companies whose trial ended in the last ``days`` days, of them paying). The trial's
    end is Stripe's ``trial_end`` on the subscription (or when the subscription ended, if
    during the trial), kept on ``CompanyStripe.trial_end``; paying means Stripe reported an
    invoice paid with money in it since the trial ended."""
    ended = CompanyStripe.objects.filter(trial_end__gt=now - timedelta(days=days), trial_end__lte=now)
    paid_invoice = BillingEvent.objects.filter(
        company_id=OuterRef("company_id"),
        kind=BillingEventKind.INVOICE_PAID,
        amount__gt=0,
        created_at__gte=OuterRef("trial_end"),
        created_at__lte=now,
    )
    return ended.count(), ended.filter(Exists(paid_invoice)).count()


def overage_share(*, now: datetime) -> tuple[int, int]:
    """(overage reported to Stripe this month, invoices paid this month), minor units.
    Overage reported this month is mostly invoiced at the period's end: early in a month the
    share runs ahead of what the invoices will show."""
    month = _month_start(now)
    overage = BillingEvent.objects.filter(
        kind=BillingEventKind.OVERAGE, status=BillingEventStatus.SENT, sent_at__gte=month, sent_at__lte=now
    ).aggregate(total=Sum("amount"))["total"]
    paid = BillingEvent.objects.filter(
        kind=BillingEventKind.INVOICE_PAID, created_at__gte=month, created_at__lte=now
    ).aggregate(total=Sum("amount"))["total"]
    return int(overage or 0), int(paid or 0)


def upgrades_this_month(*, now: datetime) -> int:
    """Tier changes Stripe applied this month to a dearer tier (companies, not clicks)."""
    return (
        BillingEvent.objects.filter(
            kind__in=[BillingEventKind.TIER_CHANGE, BillingEventKind.UPGRADE],
            status__in=[BillingEventStatus.RECORDED, BillingEventStatus.SENT],
            created_at__gte=_month_start(now),
            created_at__lte=now,
            to_tier__monthly_price__gt=F("from_tier__monthly_price"),
        )
        .values("company_id")
        .distinct()
        .count()
    )


@dataclass(frozen=True)
class QuoteToBook:
    companies: int  # on the booking feed
    quotes: int
    booked: int


def quote_to_book(*, now: datetime) -> QuoteToBook:
    """Bookings over quotes in each company's current billing period, among the companies
    on the booking feed (a booking received in the last 31 days): a company whose product
    does not report bookings would only dilute the rate. Quotes are the metered ``quotes``
    feature's counter of the period; bookings come from ``POST /api/v1/bookings/``."""
    feed = list(
        Company.objects.filter(
            pk__in=Booking.objects.filter(
                occurred_at__gt=now - timedelta(days=BOOKING_FEED_DAYS), occurred_at__lte=now
            ).values("company_id")
        ).values_list("pk", "billing_anchor_day")
    )
    if not feed:
        return QuoteToBook(0, 0, 0)
    starts = {pk: period_bounds(anchor, now)[0] for pk, anchor in feed}
    quotes = UsageCounter.objects.filter(
        company_id__in=starts, feature__in=Feature.objects.filter(code=QUOTES_FEATURE), period_start__lte=now,
        period_end__gt=now,
    ).aggregate(n=Sum("used"))["n"]
    in_period = reduce(or_, (Q(company_id=pk, occurred_at__gte=start) for pk, start in starts.items()))
    booked = Booking.objects.filter(in_period, occurred_at__lte=now).aggregate(n=Sum("quantity"))["n"]
    return QuoteToBook(len(feed), int(quotes or 0), int(booked or 0))


def business_targets(*, now: datetime | None = None) -> list[TargetFigure]:
    now = now or timezone.now()
    figures = []
    for days in (30, 90):
        ended, paid = trial_to_paid(now=now, days=days)
        figures.append(
            TargetFigure(
                f"Trial → paid ({days} days)",
                paid / ended if ended else None,
                TRIAL_TO_PAID_TARGET,
                f"{paid} of {ended} companies whose trial ended in the last {days} days have paid an invoice",
                missing="no trial ended",
            )
        )
    overage, paid_total = overage_share(now=now)
    figures.append(
        TargetFigure(
            "Overage share of revenue (this month)",
            overage / paid_total if paid_total else None,
            OVERAGE_SHARE_TARGET,
            f"overage reported {overage / 100:.2f} of invoices paid {paid_total / 100:.2f} (all currencies summed)",
            missing="no invoice paid yet",
        )
    )
    upgrades = upgrades_this_month(now=now)
    figures.append(TargetFigure("Upgrades this month", float(upgrades), None, f"{upgrades} companies moved up a tier"))
    book = quote_to_book(now=now)
    if not book.companies:
        detail = (
            "needs the booking feed: the product posts bookings to POST /api/v1/bookings/; "
            f"none received in the last {BOOKING_FEED_DAYS} days"
        )
        missing = "needs the booking feed"
    else:
        detail = (
            f"{book.booked} bookings of {book.quotes} quotes this billing period, "
            f"{book.companies} compan{'y' if book.companies == 1 else 'ies'} on the booking feed"
        )
        missing = "no quotes yet"
    figures.append(
        TargetFigure(
            "Quote → book",
            book.booked / book.quotes if book.quotes else None,
            QUOTE_TO_BOOK_TARGET,
            detail,
            missing=missing,
        )
    )
    return figures
