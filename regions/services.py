"""Everything that writes: probes, health transitions, the gate, failovers, the pin.

Exactly-once is settled in the database, never with an in-process lock:

* a health transition is ``UPDATE region SET status=new, status_epoch=status_epoch+1
  WHERE id=... AND status<>new`` — only the worker whose UPDATE changed the row alerts;
* a failover is ``UPDATE policy SET epoch=epoch+1 WHERE epoch=<the epoch it read>`` —
  on PostgreSQL a second worker blocks on the row, then finds the epoch moved and
  updates nothing; it stops there ("another worker got there first"). The failover
  event, the audit record, the alert and the ops task are written in that same
  transaction, so they exist once or not at all;
* "all regions unreachable" (or any state where the active region is down and nothing
  may take over) is ``UPDATE policy SET stranded_since=now WHERE stranded_since IS NULL``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from audit.services import Actor, Target, audit_record
from core.errors import ApplicationError, ErrorKind
from core.links import admin_changelist_url, admin_url
from ops.services import notify, ops_task_open
from regions import routing
from regions.gateways import ProbeResult, ProbeTarget, RegionGatewayError, control_fake_region, probe_many
from regions.models import (
    FailoverEvent,
    FailoverKind,
    FailoverPolicy,
    Probe,
    Region,
    RegionStatus,
)
from regions.selectors import policy_get

log = logging.getLogger(__name__)

PROBE_TASK_NAME = "regions: probe all regions"
PROBE_TASK = "regions.tasks.probe_regions"
SYSTEM = Actor.system("region-gate")


class FailoverRefused(ApplicationError):
    """A manual failover that must not happen as asked; ``field`` names the culprit."""

    kind = ErrorKind.CONFLICT


def _ago(since: datetime | None, now: datetime) -> str:
    if since is None:
        return "unknown"
    seconds = int((now - since).total_seconds())
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


# --- Probes and health transitions ----------------------------------------------------


def region_record_probe(*, region: Region, result: ProbeResult, policy: FailoverPolicy, now: datetime) -> str | None:
    """Store one probe and move the region's counters; returns the new status when this
    probe changed it (the caller that gets a status back is the one that alerts)."""
    common: dict[str, Any] = {
        "last_checked_at": now,
        "last_latency_ms": result.latency_ms,
        "last_status_code": result.status_code,
        "last_error": result.error[:300],
    }
    this = Region.objects.filter(pk=region.pk)
    with transaction.atomic():
        Probe.objects.create(
            region_id=region.pk,
            checked_at=now,
            ok=result.ok,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=result.error[:300],
            was_active=region.is_active,
        )
        if result.ok:
            this.update(
                consecutive_successes=F("consecutive_successes") + 1,
                consecutive_failures=0,
                failing_since=None,
                **common,
            )
            new_status = RegionStatus.HEALTHY
            changed = this.filter(
                Q(status=RegionStatus.UNKNOWN)
                | Q(status=RegionStatus.UNHEALTHY, consecutive_successes__gte=policy.recovery_threshold)
            ).update(status=new_status, status_epoch=F("status_epoch") + 1, status_changed_at=now)
        else:
            this.update(
                consecutive_failures=F("consecutive_failures") + 1,
                consecutive_successes=0,
                failing_since=Coalesce(F("failing_since"), Value(now)),
                **common,
            )
            new_status = RegionStatus.UNHEALTHY
            changed = (
                this.filter(consecutive_failures__gte=policy.failure_threshold)
                .exclude(status=RegionStatus.UNHEALTHY)
                .update(status=new_status, status_epoch=F("status_epoch") + 1, status_changed_at=now)
            )
        if not changed:
            return None
        fresh = Region.objects.get(pk=region.pk)
        _alert_transition(region=fresh, previous=region.status, policy=policy, now=now)
    return new_status


def _alert_transition(*, region: Region, previous: str, policy: FailoverPolicy, now: datetime) -> None:
    """Standby health changes alert once per transition (keyed by ``status_epoch``).

    The active region is the gate's to report, in either mode (a failover, or why traffic
    stayed, then "restored"): alerting it here too would give two alerts per outage. A
    recovered higher-priority region is the gate's too in multi-region mode ("failback
    available", also when pinned); in single-region mode the gate never gets that far,
    so it is announced here as recovered."""
    if region.is_active:
        return
    dedup = f"region.{region.slug}.{region.status}.{region.status_epoch}"
    link = admin_url(region)
    if region.status == RegionStatus.UNHEALTHY:
        notify(
            kind="region.unhealthy",
            title=f"Standby region {region.name} is unhealthy",
            text=(
                f"{region.name} ({region.health_url}) failed {region.consecutive_failures} probes in a row "
                f"since {region.failing_since:%Y-%m-%d %H:%M:%S} UTC; "
                f"last error: {region.last_error or '-'}.\n"
                "It can no longer take traffic if the active region fails. "
                "Check the region's /healthz, its database and broker, "
                "and the network path from the prober."
            ),
            severity="warning",
            link=link,
            dedup_key=dedup,
            fields={
                "Region": region.name,
                "Failures": str(region.consecutive_failures),
                "Last error": region.last_error or "-",
            },
        )
    elif previous == RegionStatus.UNHEALTHY:
        active = Region.objects.filter(is_active=True).first()
        preferred = active is not None and (region.order, region.pk) < (active.order, active.pk)
        if preferred and policy.multi_region_enabled:
            return  # the gate says "failback available" or fails back
        notify(
            kind="region.recovered",
            title=f"Standby region {region.name} recovered",
            text=(f"{region.name} passed {region.consecutive_successes} probes in a row; it can take traffic again."),
            severity="info",
            link=link,
            dedup_key=dedup,
        )


def regions_probe_targets() -> list[tuple[Region, ProbeTarget]]:
    return [
        (
            region,
            ProbeTarget(
                key=region.pk,
                url=region.health_url,
                timeout=region.probe_timeout,
                expected_status=region.expected_status,
                body_contains=region.body_contains,
                forced_error="game-day drill switch is on" if region.drill_fail else "",
            ),
        )
        for region in Region.objects.filter(enabled=True).order_by("order", "pk")
    ]


@dataclass
class CycleReport:
    checked_at: datetime
    probes: list[tuple[Region, ProbeResult]] = field(default_factory=list)
    transitions: dict[str, str] = field(default_factory=dict)
    gate: GateOutcome | None = None


def regions_probe_cycle(*, now: datetime | None = None) -> CycleReport:
    """One cycle: probe every enabled region at once, record, then let the gate decide."""
    now = now or timezone.now()
    pairs = regions_probe_targets()
    results = probe_many([target for _, target in pairs])
    policy = policy_get()
    report = CycleReport(checked_at=now)
    for (region, _), result in zip(pairs, results, strict=True):
        report.probes.append((region, result))
        changed = region_record_probe(region=region, result=result, policy=policy, now=now)
        if changed:
            report.transitions[region.slug] = changed
    report.gate = gate_evaluate(now=now)
    # Health feeds the 503 decision, and a flushed cache is refilled within one cycle.
    transaction.on_commit(routing.publish)
    return report


def probes_prune(*, now: datetime | None = None) -> int:
    """Delete probes older than the policy's retention; returns how many."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=policy_get().probe_retention_days)
    deleted, _ = Probe.objects.filter(checked_at__lt=cutoff).delete()
    return deleted


# --- The gate -------------------------------------------------------------------------


@dataclass(frozen=True)
class GateOutcome:
    action: str  # none | disabled | failover | failback | failback_available | stranded | lost_race
    event: FailoverEvent | None = None
    detail: str = ""


def _is_candidate(region: Region) -> bool:
    """Healthy by the thresholds *and* its latest probe passed: never a region that has
    started failing, even if it has not yet failed enough to count as unhealthy."""
    return region.enabled and region.status == RegionStatus.HEALTHY and region.consecutive_failures == 0


def _in_cooldown(policy: FailoverPolicy, now: datetime) -> datetime | None:
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
        first = next((r for r in enabled if _is_candidate(r)), None)
        if first is None:
            return GateOutcome("none", detail="no active region and none healthy")
        return _switch(
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
            return _stranded(
                policy=policy,
                active=active,
                now=now,
                kind="region.down",
                reason="single-region mode: automatic failover is off",
            )
        candidates = [r for r in enabled if r.pk != active.pk and _is_candidate(r)]
        if policy.pinned_region_id == active.pk:
            return _stranded(
                policy=policy,
                active=active,
                now=now,
                kind="region.failover_blocked",
                reason=f"{active.name} is pinned by {policy.pinned_by or 'ops'}; release the pin or fail over by hand",
            )
        if not candidates:
            if enabled and all(r.consecutive_failures > 0 for r in enabled):
                return _stranded(
                    policy=policy,
                    active=active,
                    now=now,
                    kind="region.all_down",
                    reason="all regions unreachable: no failover (the prober itself may be the one cut off)",
                )
            return _stranded(
                policy=policy,
                active=active,
                now=now,
                kind="region.failover_blocked",
                reason="no standby region is healthy",
            )
        until = _in_cooldown(policy, now)
        if until is not None:
            return _stranded(
                policy=policy,
                active=active,
                now=now,
                kind="region.failover_blocked",
                reason=f"cooldown after the last failover until {until:%H:%M:%S} UTC",
            )
        target = candidates[0]
        return _switch(
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

    _clear_stranded(policy=policy, active=active, now=now)
    if not policy.multi_region_enabled:
        return GateOutcome("disabled")

    preferred = next((r for r in enabled if _is_candidate(r)), None)
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
    until = _in_cooldown(policy, now)
    if until is not None:
        return GateOutcome("none", detail=f"failback waits for the cooldown until {until:%H:%M:%S}")
    return _switch(
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


def _stranded(*, policy: FailoverPolicy, active: Region, now: datetime, kind: str, reason: str) -> GateOutcome:
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
                    f"({_ago(active.failing_since, now)}); last error: {active.last_error or '-'}."
                )
                failing_for = _ago(active.failing_since, now)
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


def _clear_stranded(*, policy: FailoverPolicy, active: Region, now: datetime) -> None:
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
                f"{policy.stranded_since:%Y-%m-%d %H:%M:%S} UTC ({_ago(policy.stranded_since, now)} ago)."
            ),
            severity="info",
            link=admin_changelist_url(Region),
            dedup_key=f"region.restored.{policy.epoch}.{policy.stranded_since.isoformat()}",
        )


class _Rollback(Exception):
    pass


def _switch(
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
            _alert_failover(event=event, frm=frm, to=to, now=now)
            transaction.on_commit(routing.publish)
    except _Rollback:
        return GateOutcome("target_unhealthy", detail=f"{to.name} is not healthy")
    return GateOutcome("failback" if kind == FailoverKind.FAILBACK else "failover", event=event)


def _alert_failover(*, event: FailoverEvent, frm: Region | None, to: Region, now: datetime) -> None:
    frm_name = frm.name if frm else "(none)"
    failing = _ago(event.failing_since, now) if event.failing_since else "not failing"
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


# --- Manual failover and the pin ------------------------------------------------------


def region_fail_over(
    *,
    to: Region,
    reason: str,
    actor: Actor,
    force: bool = False,
    pin: bool = False,
    user: Any = None,
    now: datetime | None = None,
) -> FailoverEvent:
    """Move traffic to ``to`` by hand. Refuses an unhealthy target unless ``force``;
    ignores cooldown and pin (a person decided). ``pin`` keeps automation from undoing it."""
    now = now or timezone.now()
    reason = (reason or "").strip()
    if not reason:
        raise FailoverRefused("A reason is required.", field="reason", kind=ErrorKind.INVALID)
    policy = policy_get()
    active = Region.objects.filter(is_active=True).first()
    if not to.enabled:
        raise FailoverRefused(f"{to.name} is disabled.", field="to")
    if active is not None and active.pk == to.pk:
        raise FailoverRefused(f"{to.name} is already the active region.", field="to")
    if not force and not _is_candidate(to):
        raise FailoverRefused(
            f"{to.name} is not healthy (status {to.status}, {to.consecutive_failures} failing probes); "
            "pass force to move traffic anyway.",
            field="to",
        )
    outcome = _switch(
        policy=policy,
        frm=active,
        to=to,
        kind=FailoverKind.MANUAL,
        reason=reason,
        actor=actor,
        now=now,
        force=force,
        pin=pin,
        user=user,
    )
    if outcome.event is None:
        raise FailoverRefused(f"Failover not done: {outcome.detail}; look at the regions again.", field="to")
    return outcome.event


def policy_release_pin(*, actor: Actor) -> bool:
    """Give the active region back to automation. Returns False when nothing was pinned."""
    with transaction.atomic():
        policy = FailoverPolicy.objects.select_for_update().get(pk=policy_get().pk)
        if policy.pinned_region_id is None:
            return False
        pinned = policy.pinned_region
        FailoverPolicy.objects.filter(pk=policy.pk).update(
            pinned_region=None, pinned_at=None, pinned_by="", pin_reason=""
        )
        audit_record(
            action="region.pin.release",
            actor=actor,
            target=Target("regions.failoverpolicy", "1", "Failover policy"),
            details={"pinned_region": pinned.slug if pinned else None, "pinned_by": policy.pinned_by},
        )
    return True


def policy_sync_schedule(*, policy: FailoverPolicy) -> PeriodicTask:
    """Point the probe's beat entry at the policy's interval (beat picks the change up)."""
    schedule, _ = IntervalSchedule.objects.get_or_create(
        every=policy.probe_interval_seconds, period=IntervalSchedule.SECONDS
    )
    task, created = PeriodicTask.objects.get_or_create(
        name=PROBE_TASK_NAME, defaults={"task": PROBE_TASK, "interval": schedule}
    )
    if not created and task.interval_id != schedule.pk:
        task.interval = schedule
        task.save(update_fields=["interval"])
    return task


def policy_changed(*, policy: FailoverPolicy) -> None:
    """After the policy is edited: follow the interval, republish routing on commit."""
    policy_sync_schedule(policy=policy)
    transaction.on_commit(routing.publish)


# --- Game days ------------------------------------------------------------------------


def gameday_take_down(*, region: Region, actor: Actor, method: str = "auto") -> str:
    """Make ``region`` fail its probes: through a fake region's control endpoint when it
    is one, otherwise with the drill switch. Returns the method used."""
    used = "drill-switch"
    if method in ("auto", "control"):
        try:
            control_fake_region(region.base_url, "fail")
            used = "fake-region"
        except RegionGatewayError:
            if method == "control":
                raise
    with transaction.atomic():
        if used == "drill-switch":
            Region.objects.filter(pk=region.pk).update(drill_fail=True)
        audit_record(action="region.gameday.start", actor=actor, target=region, details={"method": used})
    return used


def gameday_restore(*, region: Region, actor: Actor, method: str) -> None:
    if method == "fake-region":
        control_fake_region(region.base_url, "recover")
    with transaction.atomic():
        Region.objects.filter(pk=region.pk).update(drill_fail=False)
        audit_record(action="region.gameday.end", actor=actor, target=region, details={"method": method})


def gameday_blockers(*, region: Region, now: datetime | None = None) -> list[str]:
    """Why taking ``region`` down now would show no failover (empty: go ahead). The gate
    would rightly keep traffic where it is, so the drill would measure nothing and leave
    a dead region serving: a game day checks these first and refuses with the reasons."""
    now = now or timezone.now()
    policy = policy_get()
    reasons = []
    if not policy.multi_region_enabled:
        reasons.append("multi-region is off in the failover policy, so the gate never fails over")
    if not region.is_active:
        reasons.append(f"{region.name} is not the active region: taking it down moves no traffic")
    if policy.pinned_region_id == region.pk:
        reasons.append(
            f"{region.name} is pinned by {policy.pinned_by or 'ops'}: release the pin first (failover policy page)"
        )
    until = _in_cooldown(policy, now)
    if until is not None:
        wait = int((until - now).total_seconds()) + 1
        reasons.append(f"the cooldown after the last failover runs until {until:%H:%M:%S} UTC ({wait} s from now)")
    standbys = list(Region.objects.exclude(pk=region.pk).order_by("order", "pk"))
    if not any(_is_candidate(r) for r in standbys):
        states = ", ".join(
            f"{r.name} {'disabled' if not r.enabled else r.status}"
            + (f" ({r.consecutive_failures} failing probes)" if r.consecutive_failures else "")
            for r in standbys
        )
        reasons.append(f"no standby region is healthy ({states or 'there is none'}): nowhere to fail over to")
    return reasons
