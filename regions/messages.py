"""What ops are told when traffic moves or cannot move, one wording per situation.

An alert and its ops task state only what happened: a manual move away from a healthy
region does not ask why it failed, a region that never failed is not "recovered", and
a failover task's title carries its time, so two open tasks never read alike.
Pure functions of the stored rows: the gate decides, this module words it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from core.durations import duration_text
from regions.models import FailoverEvent, FailoverKind, FailoverPolicy, Region, RegionStatus

HOW_TO_FAIL_OVER = (
    "the 'Fail over to…' button on the admin dashboard, the regions list's action "
    "'Fail over to the selected region', or POST /api/v1/regions/failover/"
)


def time_ago(since: datetime | None, now: datetime) -> str:
    """ "1 min 8 s", "42 s"; "unknown" without a start."""
    if since is None:
        return "unknown"
    return duration_text((now - since).total_seconds())


def _at(moment: datetime) -> str:
    return f"{moment:%H:%M} UTC"


@dataclass(frozen=True)
class Message:
    """One alert (title, text, severity, fields) and, when ops must act, the task to open."""

    title: str
    text: str
    severity: str
    fields: dict[str, str] = field(default_factory=dict)
    task_title: str = ""
    task_severity: str = "medium"


def failback_policy_text(*, policy: FailoverPolicy, left: Region, to: Region, pinned: bool) -> str:
    """What happens when the region traffic left is healthy again."""
    if pinned:
        return (
            f"{to.name} is pinned: automation will not move traffic away until the pin is released "
            "(failover policy page → 'Release the pin')."
        )
    if policy.auto_failback and (left.order, left.pk) < (to.order, to.pk):
        return (
            f"Automatic failback is on: traffic returns to {left.name} once it passes "
            f"{policy.recovery_threshold} probes in a row and the cooldown has passed."
        )
    return f"Traffic stays on {to.name} until someone moves it ({HOW_TO_FAIL_OVER})."


def failover_message(
    *, event: FailoverEvent, frm: Region | None, to: Region, policy: FailoverPolicy, now: datetime
) -> Message:
    """The alert and ops task for one failover event: automatic (a failing or disabled
    region, or none active), manual (by whom, why, from a healthy or failing region),
    or an automatic failback."""
    when = _at(event.decided_at)
    failed = frm is not None and event.failing_since is not None
    failing_for = time_ago(event.failing_since, now) if failed else ""
    fields = {"From": frm.name if frm else "(none)", "To": to.name, "Kind": event.get_kind_display()}
    if failed:
        fields["Failing for"] = failing_for
    check = f"Check: {to.name} carries the load (latency, errors)"
    why_failed = f"; find out why {frm.name} failed (its /healthz, database, broker, network)" if failed and frm else ""

    if event.kind == FailoverKind.FAILBACK and frm is not None:
        return Message(
            title=f"Automatic failback: {frm.name} → {to.name}",
            text=(
                f"{to.name} is healthy again and took traffic back from {frm.name} at {when} "
                f"(automatic failback is on).\nWhy: {event.reason}.\n"
                f"{check}; the task about its earlier outage can be closed once it does."
            ),
            severity="info",
            fields=fields,
            task_title=f"Confirm {to.name} carries the load after the failback from {frm.name} at {when}",
            task_severity="low",
        )

    if event.kind == FailoverKind.MANUAL:
        if frm is None:
            state = "No region was active."
        elif failed:
            state = f"{frm.name} had been failing for {failing_for}; last error: {frm.last_error or '-'}."
        else:
            state = f"{frm.name} was passing its probes (status {frm.get_status_display()})."
        forced = (
            f"\nForced: {to.name} was not healthy (status {to.get_status_display()}, "
            f"{to.consecutive_failures} failing probes)."
            if event.forced
            else ""
        )
        after = failback_policy_text(policy=policy, left=frm, to=to, pinned=event.pinned) if frm else ""
        frm_text = f" from {frm.name}" if frm else ""
        return Message(
            title=f"Manual failover by {event.actor}: {fields['From']} → {to.name}",
            text=(
                f"{event.actor} moved traffic{frm_text} to {to.name} at {when}.\n"
                f"Reason given: {event.reason}\n{state}{forced}\n{check}{why_failed}.\n{after}"
            ).rstrip(),
            severity="warning",
            fields=fields,
            task_title=(
                f"Find out why {frm.name} failed: {event.actor} moved traffic to {to.name} at {when}"
                if failed and frm
                else f"Check {to.name} after the manual failover{frm_text} by {event.actor} at {when}"
            ),
            task_severity="high" if failed or event.forced else "medium",
        )

    # Automatic: the active region failed its probes, was disabled while active, or none was active.
    if frm is None:
        return Message(
            title=f"No region was active: {to.name} takes traffic",
            text=(
                f"No region was serving, so the gate gave traffic to {to.name} (the first healthy one) at {when}.\n"
                f"{check}; find out how the service came to have no active region (the audit trail shows "
                "who changed the regions)."
            ),
            severity="critical",
            fields=fields,
            task_title=f"Find out why no region was active before {to.name} took traffic at {when}",
            task_severity="high",
        )
    after = failback_policy_text(policy=policy, left=frm, to=to, pinned=False)
    if failed and frm.enabled:
        return Message(
            title=f"Automatic failover: {frm.name} → {to.name}",
            text=(
                f"{frm.name} had been failing for {failing_for}, so the gate moved traffic to {to.name} at {when}.\n"
                f"Why: {event.reason}.\n{check}{why_failed}.\n{after}"
            ),
            severity="critical",
            fields=fields,
            task_title=f"Find out why {frm.name} failed (automatic failover to {to.name} at {when})",
            task_severity="high",
        )
    return Message(
        title=f"Automatic failover: {frm.name} (disabled) → {to.name}",
        text=(
            f"{frm.name} was disabled by ops while it was the active region, so the gate moved traffic "
            f"to {to.name} at {when}.\n{check}. Disable a region only after moving traffic off it.\n{after}"
        ),
        severity="warning",
        fields=fields,
        task_title=f"Check {to.name}: it took traffic at {when} when {frm.name} was disabled while active",
        task_severity="medium",
    )


def stranded_message(
    *, kind: str, active: Region, reason: str, remedy: str, multi_region: bool, now: datetime
) -> Message:
    """The active region is down (or disabled) and traffic stays on it: why, and what to do."""
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
    refused = "Writes are refused (503 no_healthy_region) until a region serves.\n" if multi_region else ""
    return Message(
        title=(
            "All regions unreachable"
            if kind == "region.all_down"
            else f"Active region {active.name} is down; traffic was not moved"
        ),
        text=f"{down}\nWhy traffic stayed: {reason}.\n{refused}What to do: {remedy}",
        severity="critical",
        fields={"Active": active.name, "Failing for": failing_for},
    )


def restored_message(*, active: Region, stranded_since: datetime, now: datetime) -> Message:
    """The region that was down while traffic stayed on it serves again."""
    health = (
        f"passed {active.consecutive_successes} probes in a row"
        if active.consecutive_successes
        else f"is enabled again (status {active.get_status_display()})"
    )
    return Message(
        title=f"Service restored: {active.name} is serving again",
        text=(
            f"{active.name} {health}; writes are accepted again. The outage began "
            f"{stranded_since:%Y-%m-%d %H:%M:%S} UTC ({time_ago(stranded_since, now)} ago)."
        ),
        severity="info",
    )


def has_recovered(region: Region, policy: FailoverPolicy) -> bool:
    """The region was unhealthy and became healthy after traffic last moved: a real
    recovery. (``status_epoch`` 1 is its first verdict; only from 2 on has it been both.)"""
    return bool(
        region.status == RegionStatus.HEALTHY
        and region.status_epoch >= 2
        and region.status_changed_at is not None
        and policy.last_failover_at is not None
        and region.status_changed_at > policy.last_failover_at
    )


def failback_available_message(
    *, preferred: Region, active: Region, policy: FailoverPolicy, last: FailoverEvent | None
) -> Message:
    """A higher-priority region is healthy while traffic stays on ``active``: say so, and
    call it a recovery only when it did fail."""
    if policy.pinned_region_id is not None:
        why = f"{active.name} is pinned by {policy.pinned_by or 'ops'}" + (
            f" ({policy.pin_reason})" if policy.pin_reason else ""
        )
        how = "To fail back, release the pin (failover policy page → 'Release the pin')" + (
            "; automatic failback then moves traffic after the cooldown."
            if policy.auto_failback
            else f", then use {HOW_TO_FAIL_OVER}."
        )
    else:
        why = "automatic failback is off"
        how = f"To fail back, use {HOW_TO_FAIL_OVER}."
    if has_recovered(preferred, policy):
        title = f"Failback available: {preferred.name} has recovered"
        state = f"{preferred.name} passed {preferred.consecutive_successes} probes in a row after failing."
    else:
        title = f"Failback available: {preferred.name} is healthy"
        moved = (
            f" since the {last.get_kind_display().lower()} failover by {last.actor} at {_at(last.decided_at)}"
            f" ({last.reason})"
            if last is not None
            else ""
        )
        state = f"{preferred.name} is healthy and has not failed; traffic is on {active.name}{moved}."
    return Message(title=title, text=f"{state} Traffic stays on {active.name} because {why}. {how}", severity="info")
