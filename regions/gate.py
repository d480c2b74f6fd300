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
from core.durations import duration_text
from core.links import admin_changelist_url, admin_url
from ops.services import notify, ops_task_open
from regions import routing
from regions.messages import (
    failback_available_message,
    failover_message,
    restored_message,
    stranded_message,
)
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


def region_is_down(region: Region) -> bool:
    """Down as the gate and the routing state see it: unhealthy, or disabled."""
    return region.status == RegionStatus.UNHEALTHY or not region.enabled


@dataclass(frozen=True)
class Blocker:
    """Why traffic stays on an active region that is down, and what ops can do about it."""

    kind: str  # the alert: region.down | region.failover_blocked | region.all_down
    cause: str  # single_region | pin | all_down | no_standby | cooldown
    reason: str  # stored as the policy's stranded_reason
    remedy: str
    until: datetime | None = None  # the end of the cooldown


def _standby_states(standbys: list[Region]) -> str:
    return (
        ", ".join(
            f"{r.name} {'disabled' if not r.enabled else r.get_status_display().lower()}"
            + (
                f" ({r.consecutive_failures} failing probes; last error: {r.last_error or '-'})"
                if r.consecutive_failures
                else ""
            )
            for r in standbys
        )
        or "there is none"
    )


def failover_blocker(*, policy: FailoverPolicy, active: Region, regions: list[Region], now: datetime) -> Blocker | None:
    """What keeps the gate from failing over from ``active`` (down) now; None: nothing,
    it fails over. The gate acts on it, and the dashboard shows it to ops."""
    if not policy.multi_region_enabled:
        return Blocker(
            "region.down",
            "single_region",
            "single-region mode: automatic failover is off",
            f"bring {active.name} back (its /healthz, database, broker, network), or turn on multi-region "
            "in the failover policy and fail over by hand.",
        )
    if policy.pinned_region_id == active.pk:
        return Blocker(
            "region.failover_blocked",
            "pin",
            f"{active.name} is pinned by {policy.pinned_by or 'ops'}; release the pin or fail over by hand",
            "release the pin (failover policy page → 'Release the pin'): the gate fails over on its next probe "
            "cycle; or fail over by hand now.",
        )
    enabled = [r for r in regions if r.enabled]
    candidates = [r for r in enabled if r.pk != active.pk and region_is_candidate(r)]
    if not candidates:
        if len(enabled) > 1 and all(r.consecutive_failures > 0 for r in enabled):
            return Blocker(
                "region.all_down",
                "all_down",
                "all regions unreachable: no failover (the prober itself may be the one cut off)",
                "check the regions' /healthz from another network (the prober itself may be cut off); "
                "fail over by hand to one that serves.",
            )
        standbys = [r for r in regions if r.pk != active.pk]
        return Blocker(
            "region.failover_blocked",
            "no_standby",
            "no standby region is healthy",
            f"fix the standby ({_standby_states(standbys)}): the gate fails over once one passes "
            f"{policy.recovery_threshold} probes in a row; or fail over by hand with force to one that serves.",
        )
    until = cooldown_until(policy, now)
    if until is not None:
        minutes = max(1, -(-int((until - now).total_seconds()) // 60))
        return Blocker(
            "region.failover_blocked",
            "cooldown",
            f"cooldown after the last failover until {until:%H:%M:%S} UTC",
            f"wait {minutes} min of cooldown (until {until:%H:%M:%S} UTC): the gate then fails over to "
            f"{candidates[0].name}; or fail over by hand now (a manual failover ignores the cooldown).",
            until=until,
        )
    return None


@dataclass(frozen=True)
class WriteRefusal:
    """Writes answered 503 by the routing gate: why, and what ops can do."""

    why: str
    remedy: str
    cause: str


def writes_refused(*, now: datetime | None = None) -> WriteRefusal | None:
    """Whether the routing state refuses writes now (multi-region mode with no healthy
    active region: ``routing_state_build``'s ``active_healthy``), and why."""
    now = now or timezone.now()
    policy = policy_get()
    if not policy.multi_region_enabled:
        return None
    regions = list(Region.objects.order_by("order", "pk"))
    active = next((r for r in regions if r.is_active), None)
    if active is None:
        return WriteRefusal(
            "no region is active",
            "fail over by hand to a healthy region; the gate gives traffic to the first healthy one by itself.",
            "no_active",
        )
    if not region_is_down(active):
        return None
    blocker = failover_blocker(policy=policy, active=active, regions=regions, now=now)
    if not active.enabled:
        state = "disabled"
    elif active.consecutive_failures:
        state = f"failing its probes ({active.consecutive_failures} in a row)"
    else:
        # Unhealthy, but its latest probes pass: it counts as healthy again after a few more.
        left = max(1, policy.recovery_threshold - active.consecutive_successes)
        wait = duration_text(left * policy.probe_interval_seconds)
        return WriteRefusal(
            f"{active.name} is unhealthy and recovering ({active.consecutive_successes} of "
            f"{policy.recovery_threshold} good probes in a row)",
            f"wait about {wait}: writes are accepted once {active.name} passes {left} more probe(s); "
            "to move traffic now, fail over by hand.",
            "recovering",
        )
    if blocker is None:
        return WriteRefusal(
            f"{active.name} is {state}",
            "the gate fails over on its next probe cycle; if it does not, fail over by hand.",
            "pending",
        )
    return WriteRefusal(
        f"{active.name} is {state} and traffic stays on it: {blocker.reason}", blocker.remedy, blocker.cause
    )


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

    if region_is_down(active):
        blocker = failover_blocker(policy=policy, active=active, regions=regions, now=now)
        if blocker is not None:
            return gate_stranded(policy=policy, active=active, now=now, blocker=blocker)
        candidates = [r for r in enabled if r.pk != active.pk and region_is_candidate(r)]
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
        message = failback_available_message(
            preferred=preferred, active=active, policy=policy, last=FailoverEvent.objects.order_by("-epoch").first()
        )
        # Same key pinned or not: one announcement per recovery, whatever happens to the pin.
        notify(
            kind="region.failback_available",
            title=message.title,
            text=message.text,
            severity=message.severity,
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


def gate_stranded(*, policy: FailoverPolicy, active: Region, now: datetime, blocker: Blocker) -> GateOutcome:
    # The marker and its alert commit together: if building or storing the alert fails,
    # the marker rolls back and the next cycle alerts again (never a silent outage).
    with transaction.atomic():
        won = FailoverPolicy.objects.filter(pk=policy.pk, stranded_since__isnull=True).update(
            stranded_since=now, stranded_reason=blocker.reason[:300]
        )
        if won:
            message = stranded_message(
                kind=blocker.kind,
                active=active,
                reason=blocker.reason,
                remedy=blocker.remedy,
                multi_region=policy.multi_region_enabled,
                now=now,
            )
            notify(
                kind=blocker.kind,
                title=message.title,
                text=message.text,
                severity=message.severity,
                link=admin_changelist_url(Region),
                dedup_key=f"{blocker.kind}.{policy.epoch}.{now.isoformat()}",
                fields=message.fields,
            )
    return GateOutcome("stranded", detail=blocker.reason)


def gate_clear_stranded(*, policy: FailoverPolicy, active: Region, now: datetime) -> None:
    if policy.stranded_since is None:
        return
    cleared = FailoverPolicy.objects.filter(pk=policy.pk, stranded_since=policy.stranded_since).update(
        stranded_since=None, stranded_reason=""
    )
    if cleared:
        message = restored_message(active=active, stranded_since=policy.stranded_since, now=now)
        notify(
            kind="region.restored",
            title=message.title,
            text=message.text,
            severity=message.severity,
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
            failover_alert(event=event, frm=frm, to=to, policy=policy, now=now)
            transaction.on_commit(routing.publish)
    except _Rollback:
        return GateOutcome("target_unhealthy", detail=f"{to.name} is not healthy")
    return GateOutcome("failback" if kind == FailoverKind.FAILBACK else "failover", event=event)


def failover_alert(
    *, event: FailoverEvent, frm: Region | None, to: Region, policy: FailoverPolicy, now: datetime
) -> None:
    """The alert and the ops task for one failover, worded for its situation (regions.messages)."""
    message = failover_message(event=event, frm=frm, to=to, policy=policy, now=now)
    notify(
        kind="region.failover",
        title=message.title,
        text=message.text,
        severity=message.severity,
        link=admin_url(event),
        dedup_key=f"region.failover.{event.epoch}",
        fields=message.fields,
    )
    ops_task_open(
        kind="region.failover",
        title=message.task_title,
        details=message.text,
        severity=message.task_severity,
        target=event,
        dedup_key=f"region.failover.{event.epoch}",
    )
