"""The ops spine: an outbox of alerts (``Notification``) and the ops task queue (``OpsTask``).

An alert is a row written in the caller's transaction and delivered after commit, so it
is never sent for something that rolled back and never lost when Slack or mail is down.
The row is the delivery record: status, attempts, last error, when the next try is due.
Statuses only change through ``ops.services`` (conditional updates, audited there).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone


class Severity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # waiting for (another) delivery attempt
    SENDING = "sending", "Sending"  # claimed by one worker
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"  # gave up; an ops task says so
    FOLDED = "folded", "Folded into a storm summary"


class ChannelStatus(models.TextChoices):
    NONE = "none", "Not requested"
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    OFF = "off", "Off (not configured)"
    FAILED = "failed", "Failed"


class Notification(models.Model):
    kind = models.CharField(max_length=100, db_index=True)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.INFO)
    title = models.CharField(max_length=300)
    text = models.TextField(blank=True)
    link = models.CharField(max_length=500, blank=True)
    fields = models.JSONField(default=dict, blank=True)
    company = models.ForeignKey(
        "accounts.Company", null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications"
    )
    # Unique: the same key is accepted once, ever; callers put the period in the key.
    dedup_key = models.CharField(max_length=200, null=True, blank=True, unique=True)

    slack_status = models.CharField(max_length=10, choices=ChannelStatus.choices, default=ChannelStatus.NONE)
    email_to = models.JSONField(default=list, blank=True)
    email_status = models.CharField(max_length=10, choices=ChannelStatus.choices, default=ChannelStatus.NONE)

    status = models.CharField(
        max_length=10, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # After this moment a failed attempt is final (set at creation and by "retry now").
    give_up_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    is_summary = models.BooleanField(default=False)
    folded_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="folded"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="ops_notif_due_idx")]

    def __str__(self) -> str:
        return f"[{self.kind}] {self.title}"


class StormWindow(models.Model):
    """How many alerts of one kind arrived in one fixed window; past the threshold the
    rest fold into one summary. The counter is bumped with INSERT ... ON CONFLICT."""

    kind = models.CharField(max_length=100)
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "window_start"], name="ops_storm_kind_window_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.kind} @ {self.window_start:%Y-%m-%d %H:%M:%S}: {self.count}"


class TaskSeverity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class TaskStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"
    DISMISSED = "dismissed", "Dismissed"


ACTIVE_TASK_STATUSES = (TaskStatus.OPEN, TaskStatus.ACKNOWLEDGED)


class OpsTask(models.Model):
    """Something a person on the ops team has to look at and close."""

    kind = models.CharField(max_length=100, db_index=True)
    title = models.CharField(max_length=300)
    details = models.TextField(blank=True)
    severity = models.CharField(max_length=10, choices=TaskSeverity.choices, default=TaskSeverity.MEDIUM)
    status = models.CharField(max_length=15, choices=TaskStatus.choices, default=TaskStatus.OPEN)
    company = models.ForeignKey(
        "accounts.Company", null=True, blank=True, on_delete=models.SET_NULL, related_name="ops_tasks"
    )
    target_content_type = models.ForeignKey(
        ContentType, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    target_object_id = models.CharField(max_length=64, blank=True)
    target = GenericForeignKey("target_content_type", "target_object_id")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="ops_tasks"
    )
    due_at = models.DateTimeField(null=True, blank=True)
    # Unique: a job that runs twice opens one task.
    dedup_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    resolution_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "severity"], name="ops_task_status_idx")]

    def __str__(self) -> str:
        return f"{self.title}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_TASK_STATUSES
