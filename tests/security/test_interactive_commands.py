"""An interactive shell runs with every company's rows in view: each one is audited."""

from __future__ import annotations

import getpass
import sys

import pytest

import manage
from audit.models import AuditLog
from core import tenant_scope

pytestmark = pytest.mark.django_db


@pytest.fixture
def restore_process_scope():
    yield
    tenant_scope.set_process_scope(tenant_scope.ops("tests"))


def test_a_shell_session_is_on_the_audit_trail_before_it_runs(monkeypatch, restore_process_scope):
    monkeypatch.setattr(sys, "argv", ["manage.py", "shell", "-c", "print('hello')"])
    manage.main()
    record = AuditLog.objects.get(action="ops.scope_entered")
    assert record.actor_label == "command:shell"
    assert record.details["command"] == "shell"
    assert record.details["os_user"] == getpass.getuser()
    assert "print" not in str(record.details)  # what was typed is not recorded


def test_other_commands_are_not_audited_for_their_scope(monkeypatch, restore_process_scope):
    monkeypatch.setattr(sys, "argv", ["manage.py", "check"])
    manage.main()
    assert not AuditLog.objects.filter(action="ops.scope_entered").exists()
