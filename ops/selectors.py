"""Reads of the ops spine that need more than one line."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from audit.models import AuditLog
from ops.models import Notification, NotificationStatus, OpsTask


def notifications_due(*, limit: int = 500) -> list[int]:
    """Ids of alerts waiting for a delivery attempt whose time has come, oldest first."""
    return list(
        Notification.objects.filter(status=NotificationStatus.PENDING, next_attempt_at__lte=timezone.now())
        .order_by("next_attempt_at", "id")
        .values_list("id", flat=True)[:limit]
    )


def task_audit_history(*, task: OpsTask) -> QuerySet[AuditLog]:
    return AuditLog.objects.filter(
        target_type=OpsTask._meta.label_lower, target_id=str(task.pk)
    ).order_by("seq")
