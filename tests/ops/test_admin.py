"""Admin for ops: the task queue with its bulk actions, and the read-only outbox."""

import pytest
from django.urls import reverse

from audit.models import AuditLog
from ops.delivery import notifications_deliver_due
from ops.models import Notification, NotificationStatus, OpsTask, TaskStatus
from ops.services import notify, ops_task_open

TASKS_URL = reverse("admin:ops_opstask_changelist")
OUTBOX_URL = reverse("admin:ops_notification_changelist")


@pytest.fixture
def tasks(acme):
    breach, _ = ops_task_open(kind="usage.breach", title="Acme over quotes", company=acme, severity="high")
    failover, _ = ops_task_open(kind="region.failover", title="Review failover", severity="critical")
    return breach, failover


@pytest.mark.django_db
def test_the_task_list_filters_by_status_kind_severity_and_company(ops_client, tasks, acme):
    breach, failover = tasks
    response = ops_client.get(TASKS_URL, {"kind": "usage.breach"})
    assert response.status_code == 200
    assert "Acme over quotes" in response.text and "Review failover" not in response.text

    response = ops_client.get(TASKS_URL, {"severity": "critical", "status": "open"})
    assert "Review failover" in response.text and "Acme over quotes" not in response.text

    response = ops_client.get(TASKS_URL, {"company__id__exact": acme.pk})
    assert "Acme over quotes" in response.text and "Review failover" not in response.text


@pytest.mark.django_db
def test_bulk_acknowledge_and_assign_to_me(ops_client, ops_user, tasks):
    ids = [t.pk for t in tasks]
    response = ops_client.post(TASKS_URL, {"action": "acknowledge", "_selected_action": ids}, follow=True)
    assert "2 task(s) acknowledged." in response.text
    response = ops_client.post(TASKS_URL, {"action": "assign_to_me", "_selected_action": ids}, follow=True)
    assert "2 task(s) assigned to olivia." in response.text

    assert set(OpsTask.objects.values_list("status", "assignee")) == {(TaskStatus.ACKNOWLEDGED, ops_user.pk)}
    assert AuditLog.objects.filter(action="ops.task.acknowledge", actor_label="olivia").count() == 2
    assert AuditLog.objects.filter(action="ops.task.assign", actor_label="olivia").count() == 2

    response = ops_client.get(TASKS_URL, {"assignee__id__exact": ops_user.pk})
    assert "Acme over quotes" in response.text


@pytest.mark.django_db
def test_resolve_asks_for_a_note_on_an_intermediate_page_then_resolves(ops_client, tasks):
    breach, failover = tasks
    ask = ops_client.post(TASKS_URL, {"action": "resolve_with_note", "_selected_action": [breach.pk]})
    assert ask.status_code == 200
    assert "Resolve 1 task(s)" in ask.text and "Acme over quotes" in ask.text and 'name="note"' in ask.text
    assert OpsTask.objects.get(pk=breach.pk).status == TaskStatus.OPEN

    empty = ops_client.post(
        TASKS_URL, {"action": "resolve_with_note", "_selected_action": [breach.pk], "apply": "1", "note": ""}
    )
    assert empty.status_code == 200 and "This field is required" in empty.text
    assert OpsTask.objects.get(pk=breach.pk).status == TaskStatus.OPEN

    done = ops_client.post(
        TASKS_URL,
        {
            "action": "resolve_with_note",
            "_selected_action": [breach.pk],
            "apply": "1",
            "note": "Upgraded Acme to Pro.",
        },
        follow=True,
    )
    assert "1 task(s) resolved." in done.text
    breach.refresh_from_db()
    assert breach.status == TaskStatus.RESOLVED and breach.resolution_note == "Upgraded Acme to Pro."
    assert OpsTask.objects.get(pk=failover.pk).status == TaskStatus.OPEN
    log = AuditLog.objects.get(action="ops.task.resolve")
    assert log.details["note"] == "Upgraded Acme to Pro."


@pytest.mark.django_db
def test_a_task_page_links_to_its_target_and_shows_its_audit_history(ops_client, ops_user, fake_slack):
    fake_slack.fail_next(1, status=404, body="no_service")
    alert = notify(kind="region.failover", title="Failed over", text="...", email_to=[])
    notifications_deliver_due()
    task = OpsTask.objects.get(kind="ops.alert_undelivered")
    ops_client.post(TASKS_URL, {"action": "acknowledge", "_selected_action": [task.pk]})

    page = ops_client.get(reverse("admin:ops_opstask_change", args=[task.pk]))

    assert page.status_code == 200
    assert reverse("admin:ops_notification_change", args=[alert.pk]) in page.text
    assert "ops.task.open" in page.text and "ops.task.acknowledge" in page.text
    assert "status: open → acknowledged" in page.text
    assert "olivia" in page.text


@pytest.mark.django_db
def test_editing_a_task_in_admin_is_audited(ops_client, ops_user, tasks):
    breach, _ = tasks
    response = ops_client.post(
        reverse("admin:ops_opstask_change", args=[breach.pk]),
        {"severity": "low", "assignee": ops_user.pk, "due_at_0": "2026-03-05", "due_at_1": "09:00:00"},
    )
    assert response.status_code == 302
    breach.refresh_from_db()
    assert breach.severity == "low" and breach.assignee == ops_user
    log = AuditLog.objects.get(action="admin.ops.opstask.change")
    assert log.details["changes"]["severity"] == {"before": "high", "after": "low"}


@pytest.mark.django_db
def test_the_outbox_says_when_slack_is_off(ops_client, settings):
    settings.SLACK_WEBHOOK_URL = ""
    settings.SLACK_KIND_WEBHOOKS = {}
    assert "Slack is off: SLACK_WEBHOOK_URL is empty" in ops_client.get(OUTBOX_URL).text

    settings.SLACK_WEBHOOK_URL = "http://127.0.0.1:9/hook"
    assert "Slack is off" not in ops_client.get(OUTBOX_URL).text


@pytest.mark.django_db
def test_the_outbox_is_read_only_and_retry_now_resends_a_failed_alert(ops_client, fake_slack):
    fake_slack.fail_next(1, status=404, body="no_service")
    alert = notify(kind="region.failover", title="Failed over to standby", text="...", email_to=[])
    notifications_deliver_due()

    listing = ops_client.get(OUTBOX_URL, {"status": "failed"})
    assert "Failed over to standby" in listing.text and "no_service" in listing.text
    assert ops_client.get(reverse("admin:ops_notification_add")).status_code == 403
    detail = ops_client.get(reverse("admin:ops_notification_change", args=[alert.pk]))
    assert detail.status_code == 200 and 'name="title"' not in detail.text

    response = ops_client.post(
        OUTBOX_URL, {"action": "retry_now", "_selected_action": [alert.pk]}, follow=True
    )
    assert "1 alert(s) queued for delivery now." in response.text
    notifications_deliver_due()
    alert.refresh_from_db()
    assert alert.status == NotificationStatus.SENT
    assert len(fake_slack.messages) == 1


@pytest.mark.django_db
def test_a_view_only_user_cannot_change_tasks_or_retry_alerts(client, staff_user, tasks):
    from django.contrib.auth.models import Permission

    staff_user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_opstask", "view_notification"])
    )
    client.force_login(staff_user)
    ids = [t.pk for t in tasks]
    listing = client.get(TASKS_URL)
    assert listing.status_code == 200 and 'value="acknowledge"' not in listing.text
    client.post(TASKS_URL, {"action": "acknowledge", "_selected_action": ids})
    client.post(TASKS_URL, {"action": "resolve_with_note", "_selected_action": ids, "apply": "1", "note": "x"})
    assert set(OpsTask.objects.values_list("status", flat=True)) == {TaskStatus.OPEN}

    alert = notify(kind="usage.breach", title="Over", text="...", email_to=[])
    outbox = reverse("admin:ops_notification_changelist")
    assert 'value="retry_now"' not in client.get(outbox).text
    Notification.objects.filter(pk=alert.pk).update(status=NotificationStatus.FAILED)
    client.post(outbox, {"action": "retry_now", "_selected_action": [alert.pk]})
    assert Notification.objects.get(pk=alert.pk).status == NotificationStatus.FAILED
