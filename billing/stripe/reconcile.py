"""Reconciliation: what we reported against what Stripe's meters counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.models import Company
from accounts.selectors import company_period
from billing.plans.models import Feature
from billing.plans.periods import previous_period_bounds
from billing.stripe.gateway import StripeClient, StripeGatewayError, stripe_client
from billing.stripe.models import BillingEvent, BillingEventKind, BillingEventStatus, CompanyStripe, FeatureMeter
from ops.services import ops_task_open


@dataclass
class ReconcileRow:
    company: Company
    feature: Feature
    period_start: datetime
    period_end: datetime
    ours: int
    theirs: int | None
    unsent: int
    error: str = ""

    @property
    def matches(self) -> bool:
        return self.theirs is not None and self.ours == self.theirs


def billing_reconcile(
    *, at: datetime, previous: bool = False, client: StripeClient | None = None, open_tasks: bool = True
) -> list[ReconcileRow]:
    """Compare, per company and metered feature, the units we reported as sent for the
    period containing ``at`` (or the one before it) with Stripe's meter event summary for
    the same window; open an ops task for each difference, and for each comparison
    Stripe could not answer."""
    client = client or stripe_client()
    now = timezone.now()
    meters = list(FeatureMeter.objects.select_related("feature").exclude(meter_id=""))
    rows: list[ReconcileRow] = []
    mappings = (
        CompanyStripe.objects.select_related("company").exclude(customer_id=None).order_by("company_id")
    )
    for mapping in mappings:
        company = mapping.company
        customer_id = mapping.customer_id
        assert customer_id is not None  # excluded by the query
        if previous:
            start, end = previous_period_bounds(company.billing_anchor_day, at)
        else:
            start, end = company_period(company, at)
        sums = {
            (r["feature_id"], r["status"]): r["units"]
            for r in BillingEvent.objects.filter(
                kind=BillingEventKind.OVERAGE, company=company, period_start=start
            )
            .values("feature_id", "status")
            .annotate(units=Sum("units"))
        }
        for meter in meters:
            ours = sums.get((meter.feature_id, BillingEventStatus.SENT), 0)
            unsent = sum(
                v for (f, s), v in sums.items() if f == meter.feature_id and s != BillingEventStatus.SENT
            )
            row = ReconcileRow(company, meter.feature, start, end, ours, None, unsent)
            try:
                row.theirs = client.meter_event_total(
                    meter_id=meter.meter_id, customer_id=customer_id, start=start, end=end
                )
            except StripeGatewayError as exc:
                row.error = str(exc)
            rows.append(row)
            if open_tasks and row.error:
                with transaction.atomic():
                    ops_task_open(
                        kind="billing.reconcile_failed",
                        title=f"Billing not reconciled: {company} · {meter.feature} ({start:%Y-%m-%d})",
                        details=(
                            f"Stripe's meter summary for {meter.meter_id} could not be read: {row.error}\n"
                            "Nothing was compared for this company and period. Fix the cause, then run "
                            "`manage.py billing_reconcile` again."
                        ),
                        severity="medium",
                        company=company,
                        dedup_key=f"billing.reconcile_failed:{company.pk}:{meter.feature.code}:{start:%Y%m%d}:{now:%Y%m%d}",
                    )
            if open_tasks and not row.matches and not row.error:
                with transaction.atomic():
                    ops_task_open(
                        kind="billing.reconcile_mismatch",
                        title=f"Billing mismatch: {company} · {meter.feature} ({start:%Y-%m-%d})",
                        details=(
                            f"For the period {start:%Y-%m-%d} – {end:%Y-%m-%d} we reported {ours} unit(s) of "
                            f"{meter.feature} as sent, Stripe's meter {meter.meter_id} shows {row.theirs}. "
                            f"Reports not (yet) sent: {unsent}. Compare the billing events with the meter's "
                            "events in the Stripe dashboard before correcting anything."
                        ),
                        severity="high",
                        company=company,
                        dedup_key=(
                            f"billing.reconcile:{company.pk}:{meter.feature.code}:{start:%Y%m%d}:{ours}:{row.theirs}"
                        ),
                    )
    return rows
