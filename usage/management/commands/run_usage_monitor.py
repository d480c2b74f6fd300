"""Run the nightly usage monitor by hand: ``python manage.py run_usage_monitor [--dry-run]``."""

from django.core.management.base import BaseCommand

from usage.monitor import usage_monitor_run


class Command(BaseCommand):
    help = "Scan every company's usage against its limits; --dry-run reports without acting."

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="Compute and report only: no tasks, e-mails or Slack."
        )

    def handle(self, *args, dry_run: bool = False, **options):
        run = usage_monitor_run(dry_run=dry_run, trigger="command")
        kind = "Dry run" if run.dry_run else "Run"
        self.stdout.write(
            f"{kind} #{run.pk} {run.status} in {run.duration_ms} ms: "
            f"{run.companies_scanned} companies, {run.warnings} at warning, {run.breaches} over; "
            f"new: {run.new_warnings} warnings, {run.new_breaches} breaches"
            + ("" if run.dry_run else f", {run.new_tasks} ops tasks")
            + f"; {run.missed_by_ingest} crossing(s) ingestion had missed"
        )
        for worst in run.report.get("worst_offenders", []):
            self.stdout.write(
                f"  {worst['company']:<30} {worst['feature']:<20} {worst['percent']:>7g} %  "
                f"{worst['used']:,}/{worst['included']:,}"
            )
