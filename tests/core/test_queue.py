"""Services queue Celery tasks by name (``core.queue.enqueue``): eager mode, and a process
that never imported the task module (a web process), find the same task a worker runs."""

import subprocess
import sys
from pathlib import Path

import pytest
from celery.exceptions import NotRegistered
from django.db import transaction

from core.queue import enqueue
from ops.models import NotificationStatus
from ops.services import notify
from tests.ops.fake_slack import FakeSlack
from trans_bot.celery import app

ROOT = Path(__file__).resolve().parents[2]


def test_an_unknown_task_name_fails_loudly():
    with pytest.raises(NotRegistered, match="ops.no_such_task"):
        enqueue("ops.no_such_task", 1)


@pytest.mark.django_db(transaction=True)
def test_in_eager_mode_an_alert_is_delivered_at_commit_without_a_worker(settings, monkeypatch):
    monkeypatch.setattr(app.conf, "task_always_eager", True)
    with FakeSlack() as slack:
        settings.SLACK_WEBHOOK_URL = slack.url
        settings.SLACK_KIND_WEBHOOKS = {}
        with transaction.atomic():
            alert = notify(kind="region.failover", title="Failed over to standby", text="...", email_to=[])
            assert slack.messages == []  # not before the commit
        alert.refresh_from_db()
        assert alert.status == NotificationStatus.SENT and alert.attempts == 1
        assert [m["text"].splitlines()[0] for m in slack.messages] == ["[Info] Failed over to standby"]


def test_a_process_that_never_imported_a_task_module_finds_the_task_by_name():
    code = (
        "import sys\n"
        "from core.queue import registered_task\n"
        "assert 'billing.tasks' not in sys.modules, 'already imported: this test proves nothing'\n"
        "print(registered_task('billing.tasks.send_billing_event').name)\n"
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "billing.tasks.send_billing_event"
