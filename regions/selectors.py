"""Reads: the policy row, the routing state, uptime and availability from the probes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Min, Q
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
    rows = (
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
    slo_target: float
    availability: float | None  # percent of probes of the serving region that passed
    window_minutes: float  # how much of the 30-day window the probes cover
    downtime_minutes: float
    error_budget_minutes: float  # what the SLO allows over a full 30-day window
    error_budget_remaining_minutes: float
    meets_slo: bool | None


def service_availability(*, now: datetime | None = None, slo_target: Decimal | float | None = None) -> Availability:
    """Availability = share of the active region's probes that passed over the last 30 days.

    Downtime is that failing share of the time the probes cover; the error budget is what
    the SLO allows over the whole window, so a young deployment is not judged on a guess.
    """
    now = now or timezone.now()
    target = float(slo_target if slo_target is not None else policy_get().slo_target)
    stats = Probe.objects.filter(was_active=True, checked_at__gte=now - SLO_WINDOW, checked_at__lte=now).aggregate(
        n=Count("id"), ok=Count("id", filter=Q(ok=True)), first=Min("checked_at")
    )
    budget = (100.0 - target) / 100.0 * SLO_WINDOW.total_seconds() / 60
    if not stats["n"]:
        return Availability(target, None, 0.0, 0.0, round(budget, 2), round(budget, 2), None)
    share = stats["ok"] / stats["n"]
    covered = max((now - stats["first"]).total_seconds() / 60, 0.0)
    downtime = (1 - share) * covered
    return Availability(
        slo_target=target,
        availability=round(100 * share, 4),
        window_minutes=round(covered, 2),
        downtime_minutes=round(downtime, 2),
        error_budget_minutes=round(budget, 2),
        error_budget_remaining_minutes=round(budget - downtime, 2),
        meets_slo=100 * share >= target,
    )
