"""A failover drill: take the active region down, measure detection and RTO, restore.

Without ``--drive`` it watches what the running beat and workers do (a true drill of
the whole system); with ``--drive`` it runs the probe cycles itself at the policy
interval, so it also works where no beat runs.

It first checks that a failover can happen at all (multi-region on, the region active
and not pinned, no cooldown, a healthy standby) and refuses with the reasons (exit 2).
It exits 1 when no failover happened or the RTO missed the target, 0 otherwise.
"""

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from audit.services import Actor
from regions.models import FailoverEvent, GameDay, Region, RegionStatus
from regions.selectors import policy_get
from regions.services import gameday_blockers, gameday_restore, gameday_take_down, regions_probe_cycle

REFUSED = 2  # exit status when the preconditions are not met (1: the drill ran and failed)


def _duration(seconds: float) -> str:
    """68.1 -> "1 min 8 s"; 900 -> "15 min"."""
    whole = round(seconds)
    minutes, secs = divmod(whole, 60)
    if not minutes:
        return f"{seconds:.1f} s"
    return f"{minutes} min" + (f" {secs} s" if secs else "")


class Command(BaseCommand):
    help = "Run a failover drill against the configured regions and store the result."

    def add_arguments(self, parser):
        parser.add_argument("--region", help="Slug of the region to take down (default: the active one).")
        parser.add_argument(
            "--method",
            choices=["auto", "control", "drill"],
            default="auto",
            help="fake-region control endpoint, drill switch, or whichever works (auto).",
        )
        parser.add_argument("--drive", action="store_true", help="Run the probe cycles here.")
        parser.add_argument(
            "--interval",
            type=float,
            default=None,
            help="Seconds between driven cycles (default: the policy's interval).",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=None,
            help="Give up after this many seconds (default: interval × (threshold + 3)).",
        )

    def handle(self, *args, **options):
        region = (
            Region.objects.filter(slug=options["region"]).first()
            if options["region"]
            else Region.objects.filter(is_active=True).first()
        )
        if region is None:
            raise CommandError("No such region (and no active region to default to).", returncode=REFUSED)
        if options["drive"]:
            regions_probe_cycle()  # judge the preconditions on fresh probes
            region.refresh_from_db()
        blockers = gameday_blockers(region=region)
        if blockers:
            raise CommandError(
                "Game day refused, nothing was taken down: " + "; ".join(blockers) + ".", returncode=REFUSED
            )
        policy = policy_get()
        interval = options["interval"] if options["interval"] is not None else policy.probe_interval_seconds
        timeout = options["timeout"] or policy.probe_interval_seconds * (policy.failure_threshold + 3)
        target = settings.REGIONS_RTO_TARGET_SECONDS
        actor = Actor.system("gameday")

        started_at = timezone.now()
        started = time.monotonic()
        method = gameday_take_down(region=region, actor=actor, method=options["method"])
        self.stdout.write(f"{started_at:%H:%M:%S} {region.name} taken down ({method}); waiting up to {timeout:g} s")
        event = None
        try:
            while time.monotonic() - started < timeout:
                if options["drive"]:
                    regions_probe_cycle()
                event = (
                    FailoverEvent.objects.filter(from_region=region, decided_at__gte=started_at)
                    .select_related("to_region")
                    .order_by("decided_at")
                    .first()
                )
                if event is not None:
                    break
                time.sleep(interval if options["drive"] else 0.1)
        finally:
            gameday_restore(region=region, actor=actor, method=method)
        region.refresh_from_db()
        detected = (
            (region.status_changed_at - started_at).total_seconds()
            if region.status == RegionStatus.UNHEALTHY and region.status_changed_at
            else None
        )
        switched = (event.decided_at - started_at).total_seconds() if event else None
        if event is None:
            held = policy_get().stranded_reason
            why = (
                f"the gate kept traffic on {region.name}: {held}"
                if held
                else f"{region.name} was not even detected as down"
                + ("" if options["drive"] else " (is beat running? --drive runs the probes here)")
            )
            verdict = f"no failover within {timeout:g} s: {why}"
        elif switched is not None and switched > target:
            verdict = f"RTO {_duration(switched)} missed the {_duration(target)} target"
        else:
            verdict = f"RTO {_duration(switched or 0)} within the {_duration(target)} target"
        passed = event is not None and switched is not None and switched <= target
        game = GameDay.objects.create(
            started_at=started_at,
            region=region,
            method=method,
            detected_after_s=detected,
            switched_after_s=switched,
            switched_to=event.to_region if event else None,
            succeeded=passed,
            notes=verdict,
        )
        if detected is not None:
            self.stdout.write(f"detection: {detected:.2f} s ({_duration(detected)})")
        else:
            self.stdout.write("detection: not detected")
        if event is not None:
            assert event.to_region is not None and switched is not None  # a failover names its target
            style = self.style.SUCCESS if passed else self.style.ERROR
            self.stdout.write(
                style(
                    f"RTO: {switched:.2f} s ({_duration(switched)}) against the {_duration(target)} target — "
                    f"{'met' if passed else 'MISSED'}; traffic moved to {event.to_region.name}"
                )
            )
            self.stdout.write(
                f"{region.name} restored; result stored as game day #{game.pk}. "
                f"Traffic is on {event.to_region.name}: fail back by hand when {region.name} is healthy again "
                "(see README runbook)."
            )
        else:
            self.stdout.write(
                f"{region.name} restored; result stored as game day #{game.pk}. "
                f"Nothing moved: traffic stayed on {region.name}, there is nothing to fail back."
            )
        if not passed:
            raise CommandError(f"Game day failed: {verdict}.")
