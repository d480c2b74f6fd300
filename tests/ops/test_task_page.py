"""An ops task's own page: Acknowledge, Assign to me, Resolve and Dismiss as buttons, each
with its note page, through the ops services (audited); no Delete. Lists show a long title
on one line with the whole of it on hover."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from audit.models import AuditLog
from ops.models import OpsTask, TaskStatus
from ops.services import notify, ops_task_open

pytestmark = pytest.mark.django_db

LONG = (
    "Find out why Primary (eu-west) failed: olivia moved traffic to Secondary (us-east) at 09:01 UTC "
    "after the database on the primary stopped answering"
)


@pytest.fixture
def task(db) -> OpsTask:
    task, _ = ops_task_open(kind="region.failover", title=LONG, severity="high", details="...")
    return task


def page_of(task: OpsTask) -> str:
    return reverse("admin:ops_opstask_change", args=[task.pk])


def test_the_task_page_offers_the_four_buttons_and_no_delete(ops_client, task):
    page = ops_client.get(page_of(task)).content.decode()
    for verb, label in [
        ("acknowledge", "Acknowledge…"),
        ("assign-to-me", "Assign to me…"),
        ("resolve", "Resolve…"),
        ("dismiss", "Dismiss…"),
    ]:
        assert f'href="/admin/ops/opstask/{task.pk}/{verb}/" id="task-{verb}">{label}</a>' in page
    assert "deletelink" not in page and f"/admin/ops/opstask/{task.pk}/delete/" not in page
    assert ops_client.get(f"/admin/ops/opstask/{task.pk}/delete/").status_code == 403
    assert OpsTask.objects.filter(pk=task.pk).exists()


def test_acknowledge_asks_for_an_optional_note_then_acknowledges(ops_client, task):
    url = f"/admin/ops/opstask/{task.pk}/acknowledge/"
    ask = ops_client.get(url)
    assert ask.status_code == 200 and 'name="note"' in ask.content.decode()
    assert "This task will be <strong>acknowledged</strong>" in ask.content.decode()
    assert OpsTask.objects.get(pk=task.pk).status == TaskStatus.OPEN

    done = ops_client.post(url, {"note": "Looking at the EU database."}, follow=True)
    assert done.redirect_chain[-1][0] == page_of(task)
    assert "Task acknowledged" in done.content.decode()
    assert OpsTask.objects.get(pk=task.pk).status == TaskStatus.ACKNOWLEDGED
    log = AuditLog.objects.get(action="ops.task.acknowledge")
    assert log.actor_label == "olivia" and log.details["note"] == "Looking at the EU database."
    # Acknowledged: that button is gone, the others stay.
    page = ops_client.get(page_of(task)).content.decode()
    assert 'id="task-acknowledge"' not in page and 'id="task-resolve"' in page


def test_assign_to_me_without_a_note(ops_client, ops_user, task):
    ops_client.post(f"/admin/ops/opstask/{task.pk}/assign-to-me/", {"note": ""})
    assert OpsTask.objects.get(pk=task.pk).assignee == ops_user
    assert AuditLog.objects.filter(action="ops.task.assign", actor_label="olivia").count() == 1
    assert 'id="task-assign-to-me"' not in ops_client.get(page_of(task)).content.decode()


@pytest.mark.parametrize(("verb", "status"), [("resolve", TaskStatus.RESOLVED), ("dismiss", TaskStatus.DISMISSED)])
def test_resolve_and_dismiss_need_a_note(ops_client, task, verb, status):
    url = f"/admin/ops/opstask/{task.pk}/{verb}/"
    empty = ops_client.post(url, {"note": "  "})
    assert empty.status_code == 200 and "This field is required" in empty.content.decode()
    assert OpsTask.objects.get(pk=task.pk).status == TaskStatus.OPEN

    ops_client.post(url, {"note": "EU database restarted; failover task done."})
    task.refresh_from_db()
    assert task.status == status and task.resolution_note == "EU database restarted; failover task done."
    page = ops_client.get(page_of(task)).content.decode()
    assert "task-resolve" not in page and "task-dismiss" not in page and "task-acknowledge" not in page


def test_a_view_only_user_gets_no_buttons_and_cannot_act(client, staff_user, task):
    staff_user.user_permissions.add(Permission.objects.get(codename="view_opstask"))
    client.force_login(staff_user)
    page = client.get(page_of(task)).content.decode()
    assert "task-acknowledge" not in page and "task-resolve" not in page
    assert client.post(f"/admin/ops/opstask/{task.pk}/resolve/", {"note": "x"}).status_code == 403
    assert OpsTask.objects.get(pk=task.pk).status == TaskStatus.OPEN


def test_lists_shorten_long_titles_with_the_whole_on_hover(ops_client, task):
    notify(kind="region.failover", title=LONG, text="...", severity="critical")
    for url in ("/admin/ops/opstask/", "/admin/ops/notification/"):
        page = ops_client.get(url).content.decode()
        assert f'title="{LONG}"' in page
        assert f">{LONG}<" not in page  # never the whole title as the cell's text
