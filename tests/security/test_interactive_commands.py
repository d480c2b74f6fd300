"""An interactive shell runs with every company's rows in view: each one is audited."""

from __future__ import annotations

import getpass
import sys

import django.core.management
import pytest

import manage
from audit.models import AuditLog
from core import tenant_scope

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(monkeypatch):
    """``manage.py <argv>`` up to the command itself (which would close the test's database
    connection on its way out): the scope it sets and what it audits first."""
    ran: list[list[str]] = []
    monkeypatch.setattr(django.core.management, "execute_from_command_line", ran.append)

    def run(*argv: str) -> list[list[str]]:
        monkeypatch.setattr(sys, "argv", ["manage.py", *argv])
        manage.main()
        return ran

    yield run
    tenant_scope.set_process_scope(tenant_scope.ops("tests"))


def test_a_shell_session_is_on_the_audit_trail_before_it_runs(run):
    assert run("shell", "-c", "print('hello')") == [["manage.py", "shell", "-c", "print('hello')"]]
    assert tenant_scope.current().reason == "command:shell"
    record = AuditLog.objects.get(action="ops.scope_entered")
    assert record.actor_label == "command:shell"
    assert record.details["command"] == "shell"
    assert record.details["os_user"] == getpass.getuser()
    assert "print" not in str(record.details)  # what was typed is not recorded


def test_other_commands_run_in_their_named_scope_without_a_record(run):
    assert run("audit_verify") == [["manage.py", "audit_verify"]]
    assert tenant_scope.current().reason == "command:audit_verify"
    assert not AuditLog.objects.filter(action="ops.scope_entered").exists()
