"""The executive dashboard on the admin index: one read of each app's state, so ops see
at a glance which region serves, whether writes are refused and why, how the SLO stands,
who is near or over a limit, what is open for them, what the nightly monitor found and
what was billed; and, for who may, a "Fail over to…" control per healthy standby."""

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
from regions.gate import WriteRefusal, region_is_candidate, writes_refused
from regions.models import FailoverPolicy, Region
from regions.selectors import Availability, policy_get, region_uptime, service_availability
from trans_bot.targets import TargetFigure, business_targets
from usage.models import BREACH_PERCENT, MonitorRun, ThresholdCrossing
from usage.selectors import companies_at_usage_level

SEVERITY_ORDER = ["critical", "high", "medium", "low"]
SCHEDULED_TRIGGER = "beat"  # the nightly run; "command" and "admin" runs are by hand

# Each part of the dashboard is shown to whoever may open the admin page behind it: a
# staff account without permissions sees no figures (and costs no queries).
SECTION_PERMISSIONS = {
    "regions": "regions.view_region",
    "tasks": "ops.view_opstask",
    "usage": "accounts.view_company",
    "crossings": "usage.view_thresholdcrossing",
    "monitor": "usage.view_monitorrun",
    "billing": "billing.view_billingevent",
    "webhooks": "billing.view_stripewebhookevent",
    "alerts": "ops.view_notification",
}


def dashboard_sections(user: Any) -> frozenset[str]:
    """The parts of the dashboard ``user`` may see (``SECTION_PERMISSIONS``)."""
    if not (user and user.is_active and user.is_staff):
        return frozenset()
    return frozenset(name for name, perm in SECTION_PERMISSIONS.items() if user.has_perm(perm))


@dataclass(frozen=True)
class Overview:
    """What the dashboard shows; a part the user may not see (not in ``visible``) is None."""

    visible: frozenset[str]
    regions: list[dict[str, Any]] | None
    policy: FailoverPolicy | None
    availability: Availability | None
    writes_refused: WriteRefusal | None  # the routing gate answers writes 503: why, what to do
    failover_targets: list[Region] | None  # healthy standbys, for who may fail over
    tasks_by_severity: dict[str, int] | None
    tasks_open_total: int | None
    tasks_urgent: list[OpsTask] | None
    monitor_scheduled: MonitorRun | None  # the last nightly (beat) run
    monitor_manual: MonitorRun | None  # a run by hand (command, admin) since then, shown apart
    companies_warning_now: int | None
    companies_exceeded_now: int | None
    crossings_this_month: dict[str, int] | None
    billed_this_month: Sequence[Mapping[str, Any]] | None
    billing_failed: int | None
    webhooks_failed: int | None
    alerts_failed: int | None
    slack_on: bool
    generated_at: datetime
    targets: list[TargetFigure] | None = None  # the seed's business targets (trans_bot.targets)


def _month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def dashboard_overview(*, user: Any, now: datetime | None = None) -> Overview:
    """The dashboard as ``user`` may see it (``dashboard_sections``)."""
    now = now or timezone.now()
    month = _month_start(now)
    visible = dashboard_sections(user)
    regions = policy = availability = refusal = targets = None
    if "regions" in visible:
        uptime = region_uptime(now=now)
        all_regions = list(Region.objects.order_by("order", "pk"))
        regions = [{"region": r, "uptime": uptime.get(r.pk, {})} for r in all_regions]
        policy = policy_get()
        availability = service_availability(now=now)
        refusal = writes_refused(now=now)
        if user.has_perm("regions.fail_over"):
            targets = [r for r in all_regions if not r.is_active and region_is_candidate(r)]
    by_severity: dict[str, int] | None = None
    urgent: list[OpsTask] | None = None
    if "tasks" in visible:
        counts = (
            OpsTask.objects.filter(status__in=ACTIVE_TASK_STATUSES)
            .order_by()
            .values("severity")
            .annotate(n=Count("id"))
        )
        by_severity = {row["severity"]: row["n"] for row in counts}
        urgent = list(
            OpsTask.objects.filter(status__in=ACTIVE_TASK_STATUSES)
            .select_related("company", "assignee")
            .annotate(rank=Case(*(When(severity=s, then=i) for i, s in enumerate(SEVERITY_ORDER)), default=9))
            .order_by("rank", F("due_at").asc(nulls_last=True), "-created_at")[:5]
        )
    crossings = None
    if "crossings" in visible:
        crossings = ThresholdCrossing.objects.filter(created_at__gte=month).aggregate(
            warning=Count("id", filter=Q(level__lt=BREACH_PERCENT)),
            exceeded=Count("id", filter=Q(level__gte=BREACH_PERCENT)),
        )
    billed = billing_failed = None
    if "billing" in visible:
        billed = list(
            BillingEvent.objects.filter(
                kind=BillingEventKind.OVERAGE, status=BillingEventStatus.SENT, sent_at__gte=month
            )
            .order_by("currency")
            .values("currency")
            .annotate(amount=Sum("amount"), units=Sum("units"), events=Count("id"))
        )
        billing_failed = BillingEvent.objects.filter(status=BillingEventStatus.FAILED).count()
    scheduled = manual = None
    if "monitor" in visible:
        scheduled = MonitorRun.objects.filter(trigger=SCHEDULED_TRIGGER).order_by("-started_at", "-id").first()
        later = MonitorRun.objects.exclude(trigger=SCHEDULED_TRIGGER)
        if scheduled is not None:
            later = later.filter(started_at__gt=scheduled.started_at)
        manual = later.order_by("-started_at", "-id").first()
    usage = "usage" in visible
    return Overview(
        visible=visible,
        regions=regions,
        policy=policy,
        availability=availability,
        writes_refused=refusal,
        failover_targets=targets,
        tasks_by_severity=None if by_severity is None else {s: by_severity.get(s, 0) for s in SEVERITY_ORDER},
        tasks_open_total=None if by_severity is None else sum(by_severity.values()),
        tasks_urgent=urgent,
        monitor_scheduled=scheduled,
        monitor_manual=manual,
        companies_warning_now=(
            companies_at_usage_level(Company.objects.all(), level="warning", now=now).count() if usage else None
        ),
        companies_exceeded_now=(
            companies_at_usage_level(Company.objects.all(), level="exceeded", now=now).count() if usage else None
        ),
        crossings_this_month=crossings,
        billed_this_month=billed,
        billing_failed=billing_failed,
        webhooks_failed=(
            StripeWebhookEvent.objects.filter(status=WebhookEventStatus.FAILED).count()
            if "webhooks" in visible
            else None
        ),
        alerts_failed=(
            Notification.objects.filter(status=NotificationStatus.FAILED).count() if "alerts" in visible else None
        ),
        slack_on=bool(settings.SLACK_WEBHOOK_URL),
        generated_at=now,
        # Read from billing records: who may view them sees the targets (as on /admin/targets/).
        targets=business_targets(now=now) if "billing" in visible else None,
    )
