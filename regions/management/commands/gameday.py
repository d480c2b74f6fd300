"""A failover drill: take the active region down, measure detection and RTO, restore.

Without ``--drive`` it watches what the running beat and workers do (a true drill of
the whole system); with ``--drive`` it runs the probe cycles itself at the policy
interval, so it also works where no beat runs.
"""

import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from audit.services import Actor
from regions.models import FailoverEvent, GameDay, Region, RegionStatus
from regions.selectors import policy_get
from regions.services import gameday_restore, gameday_take_down, regions_probe_cycle


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
        policy = policy_get()
        if not policy.multi_region_enabled:
            raise CommandError("Multi-region is off in the failover policy: the gate would never fail over.")
        region = (
            Region.objects.filter(slug=options["region"]).first()
            if options["region"]
            else Region.objects.filter(is_active=True).first()
        )
        if region is None:
            raise CommandError("No such region (and no active region to default to).")
        interval = options["interval"] if options["interval"] is not None else policy.probe_interval_seconds
        timeout = options["timeout"] or policy.probe_interval_seconds * (policy.failure_threshold + 3)
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
        game = GameDay.objects.create(
            started_at=started_at,
            region=region,
            method=method,
            detected_after_s=detected,
            switched_after_s=switched,
            switched_to=event.to_region if event else None,
            succeeded=event is not None,
            notes="" if event else f"no failover within {timeout:g} s",
        )
        self.stdout.write(f"detection: {detected:.2f} s" if detected is not None else "detection: not detected")
        if event:
            assert event.to_region is not None  # a failover names its target; only deleting a region clears it
            self.stdout.write(self.style.SUCCESS(f"RTO: {switched:.2f} s — traffic moved to {event.to_region.name}"))
        else:
            self.stdout.write(self.style.ERROR(f"no failover within {timeout:g} s (pin? cooldown? standby?)"))
        self.stdout.write(
            f"{region.name} restored; result stored as game day #{game.pk}. "
            "Fail back by hand when it is healthy again (see README runbook)."
        )
