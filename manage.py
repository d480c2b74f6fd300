#!/usr/bin/env python
import getpass
import os
import socket
import sys

# Commands that run whatever their user types with every company's rows in view: each run
# is put on the audit trail (who, where) before it starts. Other commands are known code,
# and name themselves to the database (see core.tenant_scope).
INTERACTIVE_COMMANDS = {"shell", "shell_plus"}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trans_bot.settings")
    from django.core.management import execute_from_command_line

    from core import tenant_scope

    command = sys.argv[1] if len(sys.argv) > 1 else "help"
    # A command sees every company's rows (row-level security), and says so in the database.
    tenant_scope.set_process_scope(tenant_scope.ops(f"command:{command}"))
    if command in INTERACTIVE_COMMANDS:
        audit_interactive_command(command)
    execute_from_command_line(sys.argv)


def audit_interactive_command(command: str) -> None:
    """One audit record per interactive session in the ops scope (its input is not recorded:
    it may hold secrets)."""
    import django

    django.setup()
    from django.db import OperationalError

    from audit.services import Actor, audit_record

    try:
        audit_record(
            action="ops.scope_entered",
            actor=Actor.system(f"command:{command}"),
            details={"command": command, "os_user": getpass.getuser(), "host": socket.gethostname()},
        )
    except OperationalError as exc:  # no database: the session can read no rows either
        print(f"Not audited (the database cannot be reached: {exc}).", file=sys.stderr)


if __name__ == "__main__":
    main()
