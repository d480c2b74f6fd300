"""Report new overage units to Stripe now (what the 02:30 and 00:15 UTC beat runs do).

    python manage.py report_overage

Safe to run at any time and next to the scheduled runs: each unit is billed once.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from billing.stripe.overage import overage_report_run


class Command(BaseCommand):
    help = "Report new overage units to Stripe Billing Meters (idempotent)."

    def handle(self, *args, **options):
        result = overage_report_run(trigger="command")
        if result.disabled:
            self.stdout.write("STRIPE_LIVE_BILLING is off: nothing reported.")
            return
        self.stdout.write(
            f"planned {result.planned}, sent {result.sent}, retrying {result.retrying}, "
            f"failed {result.failed}, skipped {result.skipped}, "
            f"paid by credits {result.credited_units} unit(s)"
        )
