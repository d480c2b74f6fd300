"""The append-only audit trail.

Each record carries ``hash = sha256(prev_hash + canonical content)``, so changing,
removing or reordering any record breaks every hash after it; ``audit_verify`` finds the
first break. ``seq`` is unique and handed out by the single ``ChainHead`` row, which
appenders lock: concurrent writers queue on that row and the chain never forks.
On PostgreSQL a trigger rejects UPDATE, DELETE and TRUNCATE; the ORM refuses as well.
"""

from __future__ import annotations

from typing import Any

from django.db import models


class AppendOnlyError(Exception):
    """Audit records cannot be changed or deleted."""


class AuditLogQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("audit records cannot be updated")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("audit records cannot be deleted")

    def _raw_delete(self, using: str | None) -> int:
        raise AppendOnlyError("audit records cannot be deleted")


class ActorType(models.TextChoices):
    USER = "user", "User"
    SYSTEM = "system", "System task"
    EXTERNAL = "external", "Outside caller"


class AuditLog(models.Model):
    seq = models.BigIntegerField(unique=True, editable=False)
    created_at = models.DateTimeField(db_index=True, editable=False)
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    # No foreign keys: deleting a user or company must not touch (or be blocked by) history.
    actor_user_id = models.BigIntegerField(null=True, blank=True)
    actor_label = models.CharField(max_length=150)
    action = models.CharField(max_length=100)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=200, blank=True)
    company_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    company_name = models.CharField(max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, editable=False)

    objects = AuditLogQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]
        indexes = [
            # Plain b-trees (no LIKE-pattern twins): every index costs each append.
            models.Index(fields=["action"], name="audit_log_action"),
            models.Index(fields=["target_type", "target_id"]),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor_label}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("audit records cannot be updated")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("audit records cannot be deleted")


class ChainHead(models.Model):
    """One row: the last sequence number and hash. Appenders lock it to extend the chain."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64)
    # The hash before the last append: lets one UPDATE advance the head and hand back
    # both hashes (RETURNING shows only new values), without a separate row lock.
    prev_hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return f"audit chain at #{self.seq}"
