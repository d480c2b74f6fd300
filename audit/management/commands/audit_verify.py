from django.core.management.base import BaseCommand, CommandError

from audit.selectors import audit_verify_chain


class Command(BaseCommand):
    help = "Walk the audit chain; name the first broken record and exit non-zero if any."

    def handle(self, *args, **options):
        result = audit_verify_chain()
        b = result.broken
        if b is not None:
            where = f"record #{b.seq}" + (f" (id {b.pk})" if b.pk is not None else "")
            raise CommandError(
                f"audit chain BROKEN at {where}: {b.reason}. "
                f"{result.checked} records before it verify."
            )
        self.stdout.write(self.style.SUCCESS(f"audit chain OK: {result.checked} records verify."))
