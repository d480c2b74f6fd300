"""Compare what we reported to Stripe with Stripe's meter event summaries.

    python manage.py billing_reconcile --period previous      # the period that just closed
    python manage.py billing_reconcile --period 2026-10-15    # the period containing that day
    python manage.py billing_reconcile --period current --no-tasks

Each company's period follows its own anchor day. Every difference opens an ops task
(once per company, feature, period and pair of totals).
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing.stripe.gateway import StripeGatewayError
from billing.stripe.reconcile import billing_reconcile


class Command(BaseCommand):
    help = "Compare overage reported to Stripe with Stripe's meter event summaries; open ops tasks for differences."

    def add_arguments(self, parser):
        parser.add_argument(
            "--period",
            default="previous",
            help="'current', 'previous' (default) or a date YYYY-MM-DD inside the period.",
        )
        parser.add_argument("--no-tasks", action="store_true", help="Report only; open no ops tasks.")

    def handle(self, *args, period: str, no_tasks: bool, **options):
        now = timezone.now()
        if period == "current":
            at = now
        elif period == "previous":
            at = None
        else:
            try:
                at = datetime.strptime(period, "%Y-%m-%d").replace(hour=12, tzinfo=UTC)
            except ValueError:
                raise CommandError("--period must be 'current', 'previous' or YYYY-MM-DD")
        try:
            rows = billing_reconcile(at=at or now, previous=at is None, open_tasks=not no_tasks)
        except StripeGatewayError as exc:
            raise CommandError(str(exc))
        differences = 0
        for row in rows:
            if row.error:
                state = "ERROR"
            elif row.matches:
                state = "OK"
            else:
                state = "DIFF"
                differences += 1
            self.stdout.write(
                f"{state:5} {row.company.slug:30} {row.feature.code:20} {row.period_start:%Y-%m-%d} "
                f"ours={row.ours} stripe={row.theirs if row.theirs is not None else '?'} unsent={row.unsent}"
                + (f" error={row.error}" if row.error else "")
            )
        self.stdout.write(f"{len(rows)} checked, {differences} difference(s)")
