#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trans_bot.settings")
    from django.core.management import execute_from_command_line

    from core import tenant_scope

    # A command sees every company's rows (row-level security), and says so in the database.
    tenant_scope.set_process_scope(tenant_scope.ops(f"command:{sys.argv[1] if len(sys.argv) > 1 else 'help'}"))
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
