"""Demo regions: two stand-in regions that ``scripts/demo.sh`` serves with ``fake_region``
on ``DEMO_PRIMARY_REGION_PORT`` and ``DEMO_SECONDARY_REGION_PORT``.

Safe to run again: creates what is missing and follows the ports of this run. The demo
starts on the primary: a rerun after a game day finds the secondary active (a stand-in
whose answer to a write is a 307 to a stub that stores nothing), so it moves traffic back
the way ops would, a manual failover (audited, alerted) by "make demo", and says so.
"""

from __future__ import annotations

import os

from django.db import transaction
from django.utils import timezone

from audit.services import Actor
from core.durations import duration_text
from regions import routing
from regions.gate import cooldown_until, region_is_candidate
from regions.models import FailoverEvent, Region, RegionStatus
from regions.selectors import policy_get
from regions.services import gameday_restore, policy_sync_schedule, region_fail_over

DEMO_ACTOR = Actor.system("make demo")


def _ports() -> tuple[int, int]:
    return (
        int(os.environ.get("DEMO_PRIMARY_REGION_PORT", "8101")),
        int(os.environ.get("DEMO_SECONDARY_REGION_PORT", "8102")),
    )


def load(*, stdout) -> None:
    primary_port, secondary_port = _ports()
    with transaction.atomic():
        primary, _ = Region.objects.get_or_create(
            slug="primary",
            defaults={
                "name": "Primary (eu-west)",
                "base_url": f"http://127.0.0.1:{primary_port}",
                "order": 0,
                "probe_timeout": 2.0,
            },
        )
        secondary, _ = Region.objects.get_or_create(
            slug="secondary",
            defaults={
                "name": "Secondary (us-east)",
                "base_url": f"http://127.0.0.1:{secondary_port}",
                "order": 1,
                "probe_timeout": 2.0,
            },
        )
        # The stand-ins listen where this run says (a region someone pointed elsewhere stays).
        for region, port in ((primary, primary_port), (secondary, secondary_port)):
            url = f"http://127.0.0.1:{port}"
            if region.base_url != url and region.base_url.startswith("http://127.0.0.1:"):
                Region.objects.filter(pk=region.pk).update(base_url=url)
        if not Region.objects.filter(is_active=True).exists():
            Region.objects.filter(pk=primary.pk).update(is_active=True)
        policy = policy_get()
        if not policy.multi_region_enabled:
            policy.multi_region_enabled = True
            policy.save(update_fields=["multi_region_enabled"])
        policy_sync_schedule(policy=policy)
        transaction.on_commit(routing.publish)

    notes = []
    primary.refresh_from_db()
    if primary.drill_fail:  # a game day stopped before it could switch the drill off
        gameday_restore(region=primary, actor=DEMO_ACTOR, method="drill-switch")
        notes.append(f"switched off the game-day drill switch left on {primary.name}")
    active = Region.objects.filter(is_active=True).first()
    if active is not None and active.pk != primary.pk and not primary.enabled:
        notes.append(f"{primary.name} is disabled, so traffic stays on {active.name}")
    elif active is not None and active.pk != primary.pk:
        last = FailoverEvent.objects.filter(to_region=active).order_by("-epoch").first()
        why = f" since {last.decided_at:%Y-%m-%d %H:%M} UTC ({last.reason})" if last else ""
        region_fail_over(
            to=primary,
            reason=f"make demo starts on {primary.name}; {active.name} was active{why}",
            actor=DEMO_ACTOR,
            force=not region_is_candidate(primary),
        )
        notes.append(
            f"{active.name} was active{why}: traffic is back on {primary.name}, "
            "audited and alerted as a manual failover by 'make demo'"
        )
        primary.refresh_from_db()
    policy = policy_get()
    if primary.status == RegionStatus.UNHEALTHY:
        wait = policy.recovery_threshold * policy.probe_interval_seconds
        notes.append(
            f"{primary.name} was unhealthy at its last probe: writes are refused (503) until it passes "
            f"{policy.recovery_threshold} probes in a row (about {duration_text(wait)} after start)"
        )
    until = cooldown_until(policy, timezone.now())
    if until is not None:
        notes.append(f"`manage.py gameday` waits for the failover cooldown, until {until:%H:%M} UTC")
    stdout.write(
        f"Regions: {primary.name} on :{primary_port} (active), {secondary.name} on :{secondary_port} (standby); "
        "run `manage.py gameday` for a drill."
        + "".join(f"\n  Note: {note}." for note in notes)
    )
