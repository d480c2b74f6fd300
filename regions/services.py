"""Everything that writes, but the gate itself (regions/gate.py): probes and health
transitions, manual failover, the pin, the probe schedule, game days.

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
from core.links import admin_url
from ops.services import notify
from regions import routing
from regions.gate import GateOutcome, cooldown_until, failover_switch, gate_evaluate, region_is_candidate
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
class FailoverRefused(ApplicationError):
    """A manual failover that must not happen as asked; ``field`` names the culprit."""

    kind = ErrorKind.CONFLICT


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
    if not force and not region_is_candidate(to):
        raise FailoverRefused(
            f"{to.name} is not healthy (status {to.status}, {to.consecutive_failures} failing probes); "
            "pass force to move traffic anyway.",
            field="to",
        )
    outcome = failover_switch(
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
    until = cooldown_until(policy, now)
    if until is not None:
        wait = int((until - now).total_seconds()) + 1
        reasons.append(f"the cooldown after the last failover runs until {until:%H:%M:%S} UTC ({wait} s from now)")
    standbys = list(Region.objects.exclude(pk=region.pk).order_by("order", "pk"))
    if not any(region_is_candidate(r) for r in standbys):
        states = ", ".join(
            f"{r.name} {'disabled' if not r.enabled else r.status}"
            + (f" ({r.consecutive_failures} failing probes)" if r.consecutive_failures else "")
            for r in standbys
        )
        reasons.append(f"no standby region is healthy ({states or 'there is none'}): nowhere to fail over to")
    return reasons
