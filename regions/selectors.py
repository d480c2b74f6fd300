"""Reads: the policy row, the routing state, uptime and availability from the probes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, Sum, Value, Window
from django.db.models.functions import Coalesce, Lead, Least
from django.utils import timezone

from regions.models import FailoverPolicy, Probe, Region, RegionStatus

UPTIME_WINDOWS = {"24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}
SLO_WINDOW = timedelta(days=30)


def policy_get() -> FailoverPolicy:
    """The one policy row; created with the defaults the first time it is asked for."""
    policy = FailoverPolicy.objects.filter(pk=1).first()
    if policy is None:
        FailoverPolicy.objects.bulk_create([FailoverPolicy(pk=1)], ignore_conflicts=True)
        policy = FailoverPolicy.objects.get(pk=1)
    return policy


def region_active() -> Region | None:
    return Region.objects.filter(is_active=True).first()


def routing_state_build() -> dict:
    """What the routing middleware needs, as a plain dict (it lives in the cache)."""
    policy = policy_get()
    active = region_active()
    return {
        "multi_region": policy.multi_region_enabled,
        "active": active.slug if active else "",
        "active_url": active.base_url.rstrip("/") if active else "",
        # Unknown (not probed yet) is not a reason to refuse writes; unhealthy is.
        "active_healthy": bool(active and active.enabled and active.status != RegionStatus.UNHEALTHY),
        "read_policy": policy.read_policy,
        "retry_after": policy.probe_interval_seconds,
    }


def region_uptime(*, now: datetime | None = None) -> dict[int, dict[str, float | None]]:
    """Per region, the share of good probes (percent) over 24 h, 7 d and 30 d, in one query."""
    now = now or timezone.now()
    aggregates = {}
    for key, span in UPTIME_WINDOWS.items():
        since = now - span
        aggregates[f"n_{key}"] = Count("id", filter=Q(checked_at__gte=since))
        aggregates[f"ok_{key}"] = Count("id", filter=Q(checked_at__gte=since, ok=True))
    # The counts' names are built above, so the rows are plain mappings to the type checker.
    rows: Iterable[Mapping[str, Any]] = (
        Probe.objects.filter(checked_at__gte=now - max(UPTIME_WINDOWS.values()), checked_at__lte=now)
        .order_by()
        .values("region_id")
        .annotate(**aggregates)
    )
    out: dict[int, dict[str, float | None]] = {}
    for row in rows:
        out[row["region_id"]] = {
            key: (round(100.0 * row[f"ok_{key}"] / row[f"n_{key}"], 3) if row[f"n_{key}"] else None)
            for key in UPTIME_WINDOWS
        }
    return out


@dataclass(frozen=True)
class Availability:
    """Availability and error budget from one measure: the time the serving region's
    probes cover, each probe speaking for the time until the next one."""

    slo_target: float
    availability: float | None  # percent of the covered time the serving region answered
    window_start: datetime | None  # the first probe of the serving region in the last 30 days
    window_label: str  # "over the last 3 h"; "over the last 30 d" once there is that much data
    window_minutes: float  # time the probes cover (up to 30 days, less if the prober paused)
    downtime_minutes: float  # covered time whose probe failed
    error_budget_minutes: float  # what the SLO allows over the covered time
    error_budget_remaining_minutes: float  # negative exactly when availability is below the SLO
    meets_slo: bool | None


def _span_label(seconds: float) -> str:
    if seconds >= SLO_WINDOW.total_seconds() - 60:
        return f"over the last {SLO_WINDOW.days} d"
    if seconds >= 2 * 86400:
        return f"over the last {seconds / 86400:.0f} d"
    if seconds >= 2 * 3600:
        return f"over the last {seconds / 3600:.0f} h"
    return f"over the last {max(seconds / 60, 1):.0f} min"


def service_availability(
    *, now: datetime | None = None, slo_target: Decimal | float | None = None, since: datetime | None = None
) -> Availability:
    """Availability of the serving region over the last 30 days, or over as much of them
    as there are probes for.

    Each probe of the region then active speaks for the time until the next such probe,
    at most two probe intervals (a longer gap means the prober was not running: that time
    is neither up nor down, it is not covered). Availability is the good share of the
    covered time, downtime the failed share, and the error budget is what the SLO allows
    over that same covered time — so the budget runs out exactly when availability drops
    below the target, and a young deployment is judged on what it has, labelled as such.
    ``since`` measures another window ending at ``now`` (a calendar month for the SOC 2
    evidence pack) the same way.
    """
    now = now or timezone.now()
    policy = policy_get()
    target = float(slo_target if slo_target is not None else policy.slo_target)
    cap = timedelta(seconds=2 * policy.probe_interval_seconds)
    probes = (
        Probe.objects.filter(was_active=True, checked_at__gte=since or now - SLO_WINDOW, checked_at__lte=now)
        .order_by()
        .annotate(next_at=Window(Lead("checked_at"), order_by=F("checked_at").asc()))
        .annotate(until=Least(Coalesce("next_at", Value(now)), F("checked_at") + Value(cap)))
        .annotate(weight=ExpressionWrapper(F("until") - F("checked_at"), output_field=DurationField()))
    )
    stats = probes.aggregate(covered=Sum("weight"), down=Sum("weight", filter=Q(ok=False)), first=Min("checked_at"))
    share_allowed = (100.0 - target) / 100.0
    if stats["first"] is None:
        return Availability(target, None, None, "no probes yet", 0.0, 0.0, 0.0, 0.0, None)
    covered = (stats["covered"] or timedelta()).total_seconds() / 60
    down = (stats["down"] or timedelta()).total_seconds() / 60
    budget = share_allowed * covered
    availability = 100.0 * (1 - down / covered) if covered else None
    return Availability(
        slo_target=target,
        availability=None if availability is None else round(availability, 4),
        window_start=stats["first"],
        window_label=_span_label((now - stats["first"]).total_seconds()),
        window_minutes=round(covered, 2),
        downtime_minutes=round(down, 2),
        error_budget_minutes=round(budget, 2),
        error_budget_remaining_minutes=round(budget - down, 2),
        meets_slo=None if availability is None else down <= budget,
    )
