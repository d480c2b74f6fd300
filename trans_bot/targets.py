"""The seed's business targets, read from billing's own records (the composition root may
read every app): trial→paid, overage's share of revenue, upgrades this month. Quote→book
needs bookings, which the back office does not receive: it is reported as missing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import F, Sum
from django.utils import timezone

from accounts.models import CompanyStatus
from billing.stripe.models import BillingEvent, BillingEventKind, BillingEventStatus

TRIAL_TO_PAID_TARGET = 0.25
OVERAGE_SHARE_TARGET = 0.05
QUOTE_TO_BOOK_TARGET = 0.28


@dataclass(frozen=True)
class TargetFigure:
    name: str
    value: float | None  # None: no data to compute it from
    target: float | None
    detail: str

    @property
    def met(self) -> bool | None:
        if self.value is None or self.target is None:
            return None
        return self.value >= self.target

    @property
    def shown(self) -> str:
        if self.value is None:
            return "no data"
        return f"{self.value * 100:.1f} %" if self.target is not None else f"{self.value:.0f}"

    @property
    def target_shown(self) -> str:
        return "—" if self.target is None else f"≥ {self.target * 100:.0f} %"

    @property
    def colour(self) -> str:
        return {True: "green", False: "red", None: "grey"}[self.met]


def _month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def trial_to_paid(*, now: datetime, days: int) -> tuple[int, int]:
    """(trials that ended in the last ``days`` days, of them paid). A trial ends when Stripe
    moves the company's status away from trialing (the subscription status effect); it is
    paid when it moved to active. The latest such move per company counts."""
    ends = (
        BillingEvent.objects.filter(
            kind=BillingEventKind.SUBSCRIPTION,
            details__from=CompanyStatus.TRIALING,
            created_at__gt=now - timedelta(days=days),
            created_at__lte=now,
        )
        .order_by("company_id", "-created_at", "-id")
        .distinct("company_id")
        .values_list("details__to", flat=True)
    )
    outcomes = list(ends)
    return len(outcomes), sum(1 for to in outcomes if to == CompanyStatus.ACTIVE)


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
                f"{paid} of {ended} trials that ended in the last {days} days became paying",
            )
        )
    overage, paid_total = overage_share(now=now)
    figures.append(
        TargetFigure(
            "Overage share of revenue (this month)",
            overage / paid_total if paid_total else None,
            OVERAGE_SHARE_TARGET,
            f"overage reported {overage / 100:.2f} of invoices paid {paid_total / 100:.2f} (all currencies summed)",
        )
    )
    upgrades = upgrades_this_month(now=now)
    figures.append(TargetFigure("Upgrades this month", float(upgrades), None, f"{upgrades} companies moved up a tier"))
    figures.append(
        TargetFigure(
            "Quote → book",
            None,
            QUOTE_TO_BOOK_TARGET,
            "needs a booking feed from the product (a 'booked' metered feature or event); not received yet",
        )
    )
    return figures
