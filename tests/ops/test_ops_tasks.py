"""The ops task queue: one task per dedup key, status changes audited."""

import pytest

from audit.models import AuditLog
from audit.services import Actor
from ops.models import OpsTask, TaskStatus
from ops.services import ops_task_acknowledge, ops_task_assign, ops_task_dismiss, ops_task_open, ops_task_resolve


def _history(task):
    return list(
        AuditLog.objects.filter(target_type="ops.opstask", target_id=str(task.pk))
        .order_by("seq")
        .values_list("action", flat=True)
    )


@pytest.mark.django_db
def test_a_job_that_runs_twice_opens_one_task(acme):
    first, created = ops_task_open(
        kind="usage.breach", title="Acme over quotes", company=acme, target=acme, dedup_key="k-1"
    )
    again, created_again = ops_task_open(kind="usage.breach", title="Acme over quotes", dedup_key="k-1")

    assert (created, created_again) == (True, False)
    assert again.pk == first.pk
    assert first.target == acme and first.company == acme and first.status == TaskStatus.OPEN
    assert _history(first) == ["ops.task.open"]


@pytest.mark.django_db
def test_acknowledge_assign_resolve_each_leave_an_audit_record(acme, ops_user):
    task, _ = ops_task_open(kind="region.failover", title="Check the failover", severity="high", company=acme)
    actor = Actor.of_user(ops_user)

    assert ops_task_acknowledge(task=task, actor=actor)
    assert ops_task_assign(task=task, assignee=ops_user, actor=actor)
    assert ops_task_resolve(task=task, note="Primary is back; failed back at 03:10.", actor=actor)

    task.refresh_from_db()
    assert task.status == TaskStatus.RESOLVED and task.assignee == ops_user
    assert task.resolution_note == "Primary is back; failed back at 03:10."
    assert task.acknowledged_at is not None and task.closed_at is not None
    assert _history(task) == ["ops.task.open", "ops.task.acknowledge", "ops.task.assign", "ops.task.resolve"]
    resolve = AuditLog.objects.get(action="ops.task.resolve")
    assert resolve.actor_label == "olivia" and resolve.company_id == acme.pk
    assert resolve.details["changes"]["status"] == {"before": "acknowledged", "after": "resolved"}
    assert resolve.details["note"] == "Primary is back; failed back at 03:10."


@pytest.mark.django_db
def test_a_closed_task_cannot_be_acknowledged_or_resolved_again(ops_user):
    task, _ = ops_task_open(kind="usage.breach", title="x")
    actor = Actor.of_user(ops_user)
    assert ops_task_dismiss(task=task, note="Test company", actor=actor)

    assert not ops_task_acknowledge(task=task, actor=actor)
    assert not ops_task_resolve(task=task, note="again", actor=actor)
    assert OpsTask.objects.get(pk=task.pk).status == TaskStatus.DISMISSED
    assert _history(task) == ["ops.task.open", "ops.task.dismiss"]


@pytest.mark.django_db
def test_an_unknown_severity_is_refused():
    with pytest.raises(ValueError, match="severity"):
        ops_task_open(kind="x", title="x", severity="urgent")
    assert not OpsTask.objects.exists()
