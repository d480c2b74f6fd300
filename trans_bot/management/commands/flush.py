"""``flush`` as the owner role (``DATABASE_MIGRATE_URL``): the application role may not
truncate. The test suite's flushes go through here too."""

from django.core.management.commands.flush import Command as DjangoFlushCommand

from core.db_owner import as_owner


class Command(DjangoFlushCommand):
    def handle(self, **options):
        with as_owner(options["database"]):
            return super().handle(**options)
