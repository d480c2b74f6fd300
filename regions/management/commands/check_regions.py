"""Run one probe cycle now (the same one beat runs) and print what it found and did."""

from django.core.management.base import BaseCommand

from regions.services import regions_probe_cycle


class Command(BaseCommand):
    help = "Probe every enabled region now, let the gate decide, and print the result."

    def handle(self, *args, **options):
        report = regions_probe_cycle()
        if not report.probes:
            self.stdout.write("No enabled regions.")
        for region, result in report.probes:
            latency = f"{result.latency_ms:.0f} ms" if result.latency_ms is not None else "-"
            mark = "active " if region.is_active else "standby"
            line = f"{region.slug:<16} {mark} {'ok  ' if result.ok else 'FAIL'} {latency:>8}"
            line += f"  {result.status_code or '-'}  {result.error}"
            self.stdout.write(self.style.SUCCESS(line) if result.ok else self.style.ERROR(line))
        for slug, status in report.transitions.items():
            self.stdout.write(f"{slug} is now {status}")
        gate = report.gate
        assert gate is not None  # a cycle always ends by asking the gate
        self.stdout.write(f"gate: {gate.action}" + (f" ({gate.detail})" if gate.detail else ""))
        if gate.event is not None:
            self.stdout.write(self.style.WARNING(f"traffic moved: {gate.event}"))
