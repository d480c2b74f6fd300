"""Print the SQL that creates the owner and application roles and their grants."""

from django.core.management.base import BaseCommand
from django.db import connections

from trans_bot.db_roles import role_setup_sql


class Command(BaseCommand):
    help = (
        "Print the SQL (for a PostgreSQL superuser) that creates the owner role, which runs "
        "migrations, and the application role, which owns nothing, with their grants."
    )

    def add_arguments(self, parser):
        parser.add_argument("--owner", default="transbot_owner", help="owner role (default transbot_owner)")
        parser.add_argument("--app", default="transbot_app", help="application role (default transbot_app)")
        parser.add_argument("--database", default="", help="database name (default: DATABASE_URL's)")

    def handle(self, *args, **options):
        database = options["database"] or str(connections["default"].settings_dict.get("NAME") or "transbot")
        if options["owner"] == options["app"]:
            self.stderr.write("The owner and the application role must differ.")
            raise SystemExit(2)
        self.stdout.write(role_setup_sql(database=database, owner_role=options["owner"], app_role=options["app"]))
