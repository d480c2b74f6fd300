"""The failover gate: decides, once per probe cycle, whether traffic moves, and moves it.

Exactly-once is settled in the database: a failover is ``UPDATE policy SET epoch=epoch+1
WHERE epoch=<the epoch it read>``; on PostgreSQL a second worker blocks on the row, then
finds the epoch moved and updates nothing ("another worker got there first"). The failover
event, the audit record, the alert and the ops task are written in that same transaction,
so they exist once or not at all. "All regions unreachable" (or any state where the active
region is down and nothing may take over) is ``UPDATE policy SET stranded_since=now WHERE
stranded_since IS NULL``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit.services import Actor, audit_record
from core.links import admin_changelist_url, admin_url
from ops.services import notify, ops_task_open
from regions import routing
from regions.models import (
    FailoverEvent,
    FailoverKind,
    FailoverPolicy,
    Region,
    RegionStatus,
)
from regions.selectors import policy_get

log = logging.getLogger(__name__)

SYSTEM = Actor.system("region-gate")


def time_ago(since: datetime | None, now: datetime) -> str:
    if since is None:
        return "unknown"
    seconds = int((now - since).total_seconds())
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


@dataclass(frozen=True)
class GateOutcome:
    action: str  # none | disabled | failover | failback | failback_available | stranded | lost_race
    event: FailoverEvent | None = None
    detail: str = ""


def region_is_candidate(region: Region) -> bool:
    """Healthy by the thresholds *and* its latest probe passed: never a region that has
    started failing, even if it has not yet failed enough to count as unhealthy."""
    return region.enabled and region.status == RegionStatus.HEALTHY and region.consecutive_failures == 0


def cooldown_until(policy: FailoverPolicy, now: datetime) -> datetime | None:
    if policy.last_failover_at is None:
        return None
    until = policy.last_failover_at + timedelta(seconds=policy.cooldown_seconds)
    return until if now < until else None


def gate_evaluate(*, now: datetime | None = None) -> GateOutcome:
    """Decide from the stored state whether traffic moves. Safe to run from any number
    of workers at once: the failover itself is a conditional update on the policy epoch."""
    now = now or timezone.now()
    policy = policy_get()  # read before the regions: the epoch guards what we read next
    regions = list(Region.objects.order_by("order", "pk"))
    enabled = [r for r in regions if r.enabled]
    active = next((r for r in regions if r.is_active), None)

    if active is None:
        first = next((r for r in enabled if region_is_candidate(r)), None)
        if first is None:
            return GateOutcome("none", detail="no active region and none healthy")
        return failover_switch(
            policy=policy,
            to=first,
            kind=FailoverKind.AUTOMATIC,
            actor=SYSTEM,
            now=now,
            reason=f"no region was active; {first.name} is the first healthy one",
        )

    active_down = active.status == RegionStatus.UNHEALTHY or not active.enabled
    if active_down:
        if not policy.multi_region_enabled:
            return gate_stranded(
                policy=policy,
                active=active,
                now=now,
                kind="region.down",
                reason="single-region mode: automatic failover is off",
            )
        candidates = [r for r in enabled if r.pk != active.pk and region_is_candidate(r)]
        if policy.pinned_region_id == active.pk:
            return gate_stranded(
                policy=policy,
                active=active,
                now=now,
                kind="region.failover_blocked",
                reason=f"{active.name} is pinned by {policy.pinned_by or 'ops'}; release the pin or fail over by hand",
            )
        if not candidates:
            if enabled and all(r.consecutive_failures > 0 for r in enabled):
                return gate_stranded(
                    policy=policy,
                    active=active,
                    now=now,
                    kind="region.all_down",
                    reason="all regions unreachable: no failover (the prober itself may be the one cut off)",
                )
            return gate_stranded(
                policy=policy,
                active=active,
                now=now,
                kind="region.failover_blocked",
                reason="no standby region is healthy",
            )
        until = cooldown_until(policy, now)
        if until is not None:
            return gate_stranded(
                policy=policy,
                active=active,
                now=now,
                kind="region.failover_blocked",
                reason=f"cooldown after the last failover until {until:%H:%M:%S} UTC",
            )
        target = candidates[0]
        return failover_switch(
            policy=policy,
            frm=active,
            to=target,
            kind=FailoverKind.AUTOMATIC,
            actor=SYSTEM,
            now=now,
            reason=(
                f"{active.name} failed {active.consecutive_failures} consecutive probes "
                f"(threshold {policy.failure_threshold}); last error: {active.last_error or '-'}"
                if active.enabled
                else f"{active.name} was disabled by ops while active"
            ),
        )

    gate_clear_stranded(policy=policy, active=active, now=now)
    if not policy.multi_region_enabled:
        return GateOutcome("disabled")

    preferred = next((r for r in enabled if region_is_candidate(r)), None)
    if preferred is None or (preferred.order, preferred.pk) >= (active.order, active.pk):
        return GateOutcome("none")
    pinned = policy.pinned_region_id is not None
    if pinned or not policy.auto_failback:
        if pinned:
            why = f"{active.name} is pinned by {policy.pinned_by or 'ops'}" + (
                f" ({policy.pin_reason})" if policy.pin_reason else ""
            )
            how = "To fail back, release the pin (failover policy page → 'Release the pin')" + (
                "; automatic failback then moves traffic after the cooldown."
                if policy.auto_failback
                else ", then use the admin action 'Fail over to the selected region' or POST /api/v1/regions/failover/."
            )
        else:
            why = "automatic failback is off"
            how = (
                "To fail back, use the admin action 'Fail over to the selected region' "
                "or POST /api/v1/regions/failover/."
            )
        # Same key pinned or not: one announcement per recovery, whatever happens to the pin.
        notify(
            kind="region.failback_available",
            title=f"Failback available: {preferred.name} has recovered",
            text=(
                f"{preferred.name} passed {preferred.consecutive_successes} probes in a row. "
                f"Traffic stays on {active.name} because {why}. {how}"
            ),
            severity="info",
            link=admin_changelist_url(Region),
            dedup_key=f"region.failback_available.{preferred.slug}.{preferred.status_epoch}.{policy.epoch}",
        )
        return GateOutcome(
            "failback_available", detail=f"{preferred.slug} (pinned to {active.name})" if pinned else preferred.slug
        )
    until = cooldown_until(policy, now)
    if until is not None:
        return GateOutcome("none", detail=f"failback waits for the cooldown until {until:%H:%M:%S}")
    return failover_switch(
        policy=policy,
        frm=active,
        to=preferred,
        kind=FailoverKind.FAILBACK,
        actor=SYSTEM,
        now=now,
        reason=(
            f"automatic failback: {preferred.name} passed {preferred.consecutive_successes} probes in a row "
            f"(recovery threshold {policy.recovery_threshold})"
        ),
    )


def gate_stranded(*, policy: FailoverPolicy, active: Region, now: datetime, kind: str, reason: str) -> GateOutcome:
    # The marker and its alert commit together: if building or storing the alert fails,
    # the marker rolls back and the next cycle alerts again (never a silent outage).
    with transaction.atomic():
        won = FailoverPolicy.objects.filter(pk=policy.pk, stranded_since__isnull=True).update(
            stranded_since=now, stranded_reason=reason[:300]
        )
        if won:
            if active.failing_since is not None:
                down = (
                    f"{active.name} failing since {active.failing_since:%Y-%m-%d %H:%M:%S} UTC "
                    f"({time_ago(active.failing_since, now)}); last error: {active.last_error or '-'}."
                )
                failing_for = time_ago(active.failing_since, now)
            else:
                # Not failing probes: taken out of service (``enabled`` off) while active.
                down = f"{active.name} was disabled by ops while it was the active region."
                failing_for = "disabled by ops"
            notify(
                kind=kind,
                title=(
                    "All regions unreachable"
                    if kind == "region.all_down"
                    else f"Active region {active.name} is down; traffic was not moved"
                ),
                text=(
                    f"{down}\n"
                    f"Why traffic stayed: {reason}.\n"
                    "Check the regions' /healthz from another network; fail over by hand if one is serving."
                ),
                severity="critical",
                link=admin_changelist_url(Region),
                dedup_key=f"{kind}.{policy.epoch}.{now.isoformat()}",
                fields={"Active": active.name, "Failing for": failing_for},
            )
    return GateOutcome("stranded", detail=reason)


def gate_clear_stranded(*, policy: FailoverPolicy, active: Region, now: datetime) -> None:
    if policy.stranded_since is None:
        return
    cleared = FailoverPolicy.objects.filter(pk=policy.pk, stranded_since=policy.stranded_since).update(
        stranded_since=None, stranded_reason=""
    )
    if cleared:
        notify(
            kind="region.restored",
            title=f"Service restored: {active.name} is serving again",
            text=(
                f"{active.name} passes its probes again; the outage began "
                f"{policy.stranded_since:%Y-%m-%d %H:%M:%S} UTC ({time_ago(policy.stranded_since, now)} ago)."
            ),
            severity="info",
            link=admin_changelist_url(Region),
            dedup_key=f"region.restored.{policy.epoch}.{policy.stranded_since.isoformat()}",
        )


class _Rollback(Exception):
    pass


def failover_switch(
    *,
    policy: FailoverPolicy,
    to: Region,
    kind: str,
    reason: str,
    actor: Actor,
    now: datetime,
    frm: Region | None = None,
    force: bool = False,
    pin: bool = False,
    user: Any = None,
) -> GateOutcome:
    new_epoch = policy.epoch + 1
    pin_fields: dict[str, Any] = {}
    if kind == FailoverKind.MANUAL:
        # A manual move either pins the new region or releases any older pin.
        pin_fields = {
            "pinned_region": to if pin else None,
            "pinned_at": now if pin else None,
            "pinned_by": actor.label if pin else "",
            "pin_reason": reason[:500] if pin else "",
        }
    try:
        with transaction.atomic():
            won = FailoverPolicy.objects.filter(pk=policy.pk, epoch=policy.epoch).update(
                epoch=F("epoch") + 1,
                last_failover_at=now,
                stranded_since=None,
                stranded_reason="",
                **pin_fields,
            )
            if not won:
                return GateOutcome("lost_race", detail="another worker got there first")
            Region.objects.filter(is_active=True).update(is_active=False)
            target = Region.objects.filter(pk=to.pk, enabled=True)
            if not force:
                target = target.filter(status=RegionStatus.HEALTHY, consecutive_failures=0)
            if target.update(is_active=True) != 1:
                raise _Rollback
            to.refresh_from_db()
            event = FailoverEvent.objects.create(
                from_region=frm,
                to_region=to,
                kind=kind,
                reason=reason,
                actor=actor.label,
                actor_user=user,
                forced=force,
                pinned=pin,
                epoch=new_epoch,
                failing_since=frm.failing_since if frm else None,
                decided_at=now,
            )
            details = {
                "from": frm.slug if frm else None,
                "to": to.slug,
                "kind": kind,
                "reason": reason,
                "forced": force,
                "pinned": pin,
                "epoch": new_epoch,
                "failing_since": frm.failing_since if frm else None,
            }
            audit_record(action=f"region.failover.{kind}", actor=actor, target=event, details=details)
            failover_alert(event=event, frm=frm, to=to, now=now)
            transaction.on_commit(routing.publish)
    except _Rollback:
        return GateOutcome("target_unhealthy", detail=f"{to.name} is not healthy")
    return GateOutcome("failback" if kind == FailoverKind.FAILBACK else "failover", event=event)


def failover_alert(*, event: FailoverEvent, frm: Region | None, to: Region, now: datetime) -> None:
    frm_name = frm.name if frm else "(none)"
    failing = time_ago(event.failing_since, now) if event.failing_since else "not failing"
    link = admin_url(event)
    title = f"Region {event.get_kind_display().lower()}: {frm_name} → {to.name}"
    text = (
        f"Traffic moved from {frm_name} to {to.name} "
        f"({event.get_kind_display().lower()}, by {event.actor}).\n"
        f"Why: {event.reason}\n"
        f"{frm_name} had been failing for {failing}.\n"
        f"Check: {to.name} carries the load (latency, errors); find out why {frm_name} failed "
        "(its /healthz, database, broker, network); "
        "the failback policy decides what happens when it recovers."
    )
    notify(
        kind="region.failover",
        title=title,
        text=text,
        severity="critical" if event.kind == FailoverKind.AUTOMATIC else "warning",
        link=link,
        dedup_key=f"region.failover.{event.epoch}",
        fields={"From": frm_name, "To": to.name, "Kind": event.get_kind_display(), "Failing for": failing},
    )
    ops_task_open(
        kind="region.failover",
        title=f"Follow up failover {frm_name} → {to.name}",
        details=text,
        severity="high" if event.kind == FailoverKind.AUTOMATIC else "medium",
        target=event,
        dedup_key=f"region.failover.{event.epoch}",
    )
