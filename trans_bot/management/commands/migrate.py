"""``migrate`` as the owner role (``DATABASE_MIGRATE_URL``), then row-level security on every
tenant table and the application role's grants (``trans_bot.db_roles``)."""

from django.core.management.commands.migrate import Command as DjangoMigrateCommand
from django.db import connections

from core.db_owner import as_owner
from trans_bot.db_roles import apply_after_migrate


class Command(DjangoMigrateCommand):
    help = DjangoMigrateCommand.help + " Runs as the owner role (DATABASE_MIGRATE_URL) when one is set."

    def handle(self, *args, **options):
        alias = options["database"]
        app_role = connections[alias].settings_dict.get("USER") or None
        with as_owner(alias):
            super().handle(*args, **options)
            apply_after_migrate(connections[alias], app_role=app_role)
