from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit.services import Actor
from compliance.pack import PackInvalid, zip_verify
from compliance.periods import PeriodError, period_parse
from compliance.services import evidence_pack_export


class Command(BaseCommand):
    help = (
        "Build a SOC 2 evidence pack for a period (--period 2026-10-01..2026-12-31 -o evidence.zip), "
        "or check one (--verify evidence.zip): manifest hashes and the audit chain; exit 1 on any mismatch."
    )

    def add_arguments(self, parser):
        parser.add_argument("--period", help="FIRST..LAST, UTC days, both included, e.g. 2026-10-01..2026-12-31")
        parser.add_argument("--output", "-o", help="the zip to write")
        parser.add_argument("--verify", metavar="ZIP", help="check a pack instead of building one")

    def handle(self, *args, **options):
        if options["verify"]:
            if options["period"] or options["output"]:
                raise CommandError("--verify takes only the zip: leave out --period and -o")
            return self._verify(Path(options["verify"]))
        if not options["period"]:
            raise CommandError("--period is required, e.g. --period 2026-10-01..2026-12-31")
        try:
            period = period_parse(options["period"])
        except PeriodError as exc:
            raise CommandError(f"--period: {exc}")
        if not options["output"]:
            raise CommandError("-o/--output is required: the zip to write, e.g. -o evidence.zip")
        out = Path(options["output"])
        if not out.parent.is_dir():
            raise CommandError(f"-o/--output: folder {out.parent} does not exist")
        built = evidence_pack_export(period=period, actor=Actor.system("manage.py soc2_evidence"))
        out.write_bytes(built.data)
        self.stdout.write(
            self.style.SUCCESS(f"wrote {out} ({len(built.data)} bytes) for {period.label}; sha256 {built.sha256}")
        )

    def _verify(self, path):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"--verify: cannot read {path}: {exc.strerror or exc}")
        try:
            check = zip_verify(data)
        except PackInvalid as exc:
            raise CommandError(f"evidence pack {path} does NOT verify: {exc}")
        self.stdout.write(
            self.style.SUCCESS(
                f"evidence pack {path} verifies: {check.files} files match the manifest; "
                f"{check.audit_records} audit records chain from {check.head_at_start} to {check.head_at_end}."
            )
        )
