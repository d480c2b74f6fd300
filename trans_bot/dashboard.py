"""The executive dashboard on the admin index: one read of each app's state, so ops see
at a glance which region serves, how the SLO stands, who is near or over a limit, what
is open for them, what the nightly monitor found and what was billed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Case, Count, F, Q, Sum, When
from django.utils import timezone

from accounts.models import Company
from billing.stripe.models import (
    BillingEvent,
    BillingEventKind,
    BillingEventStatus,
    StripeWebhookEvent,
    WebhookEventStatus,
)
from ops.models import ACTIVE_TASK_STATUSES, Notification, NotificationStatus, OpsTask
from regions.models import Region
from regions.selectors import policy_get, region_uptime, service_availability
from usage.models import CrossingLevel, MonitorRun, ThresholdCrossing
from usage.selectors import companies_at_usage_level

SEVERITY_ORDER = ["critical", "high", "medium", "low"]


@dataclass(frozen=True)
class Overview:
    regions: list[dict[str, Any]]
    policy: Any
    availability: Any
    tasks_by_severity: dict[str, int]
    tasks_open_total: int
    tasks_urgent: list[OpsTask]
    monitor_last: MonitorRun | None
    companies_warning_now: int
    companies_exceeded_now: int
    crossings_this_month: dict[str, int]
    billed_this_month: Sequence[Mapping[str, Any]]
    billing_failed: int
    webhooks_failed: int
    alerts_failed: int
    slack_on: bool
    generated_at: datetime


def _month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def dashboard_overview(*, now: datetime | None = None) -> Overview:
    now = now or timezone.now()
    month = _month_start(now)
    uptime = region_uptime(now=now)
    regions = [
        {"region": r, "uptime": uptime.get(r.pk, {})}
        for r in Region.objects.order_by("order", "pk")
    ]
    counts = (
        OpsTask.objects.filter(status__in=ACTIVE_TASK_STATUSES)
        .order_by()
        .values("severity")
        .annotate(n=Count("id"))
    )
    by_severity = {row["severity"]: row["n"] for row in counts}
    crossings = ThresholdCrossing.objects.filter(created_at__gte=month).aggregate(
        warning=Count("id", filter=Q(level=CrossingLevel.WARNING)),
        exceeded=Count("id", filter=Q(level=CrossingLevel.EXCEEDED)),
    )
    billed = list(
        BillingEvent.objects.filter(
            kind=BillingEventKind.OVERAGE, status=BillingEventStatus.SENT, sent_at__gte=month
        )
        .order_by("currency")
        .values("currency")
        .annotate(amount=Sum("amount"), units=Sum("units"), events=Count("id"))
    )
    return Overview(
        regions=regions,
        policy=policy_get(),
        availability=service_availability(now=now),
        tasks_by_severity={s: by_severity.get(s, 0) for s in SEVERITY_ORDER},
        tasks_open_total=sum(by_severity.values()),
        tasks_urgent=list(
            OpsTask.objects.filter(status__in=ACTIVE_TASK_STATUSES)
            .select_related("company", "assignee")
            .annotate(rank=Case(*(When(severity=s, then=i) for i, s in enumerate(SEVERITY_ORDER)), default=9))
            .order_by("rank", F("due_at").asc(nulls_last=True), "-created_at")[:5]
        ),
        monitor_last=MonitorRun.objects.order_by("-started_at").first(),
        companies_warning_now=companies_at_usage_level(Company.objects.all(), level="warning", now=now).count(),
        companies_exceeded_now=companies_at_usage_level(Company.objects.all(), level="exceeded", now=now).count(),
        crossings_this_month=crossings,
        billed_this_month=billed,
        billing_failed=BillingEvent.objects.filter(status=BillingEventStatus.FAILED).count(),
        webhooks_failed=StripeWebhookEvent.objects.filter(status=WebhookEventStatus.FAILED).count(),
        alerts_failed=Notification.objects.filter(status=NotificationStatus.FAILED).count(),
        slack_on=bool(settings.SLACK_WEBHOOK_URL),
        generated_at=now,
    )
