import csv
import json
import sys
from datetime import UTC, datetime, time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from audit.selectors import EXPORT_FIELDS, audit_export_rows


def _moment(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(f"--{name}: {value!r} is not a date or ISO date-time")
        moment = datetime.combine(day, time.min)
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)


class Command(BaseCommand):
    help = (
        "Export audit records (SOC 2 evidence) with their chain hashes. "
        "--since is inclusive, --until exclusive; dates are UTC."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", help="ISO date or date-time (inclusive)")
        parser.add_argument("--until", help="ISO date or date-time (exclusive)")
        parser.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
        parser.add_argument("--output", "-o", help="file to write (default: standard output)")

    def handle(self, *args, **options):
        since, until = _moment(options["since"], "since"), _moment(options["until"], "until")
        if since and until and since >= until:
            raise CommandError("--since must be before --until")
        out = open(options["output"], "w", newline="") if options["output"] else sys.stdout
        count = 0
        try:
            rows = audit_export_rows(since=since, until=until)
            if options["format"] == "csv":
                writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS)
                writer.writeheader()
                for row in rows:
                    writer.writerow({**row, "details": json.dumps(row["details"], sort_keys=True)})
                    count += 1
            else:
                for row in rows:
                    out.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")
                    count += 1
        finally:
            if out is not sys.stdout:
                out.close()
        self.stderr.write(f"exported {count} audit records")
