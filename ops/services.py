"""Everything that writes in the ops spine: alerts (the outbox) and ops tasks.

Other apps call only ``notify`` and ``ops_task_open``, inside their own transaction.
Delivery runs after commit in a Celery task; a row is claimed with a conditional UPDATE
(pending -> sending) so however many workers race, one of them sends it. Storm damping is
decided at delivery too, so ``notify`` takes no lock a caller's transaction would hold.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from audit.services import Actor, AuditEntry, Target, audit_record, audit_record_many
from core.links import admin_changelist_url
from core.queue import enqueue
from core.tenant_scope import ops_scope
from ops.models import (
    ACTIVE_TASK_STATUSES,
    ChannelStatus,
    Notification,
    NotificationStatus,
    OpsTask,
    Severity,
    StormWindow,
    TaskSeverity,
    TaskStatus,
)

logger = logging.getLogger(__name__)

OUTBOX_ACTOR = Actor.system("ops-outbox")


# --- Alerts: enqueue -------------------------------------------------------------------


# Alerts and tasks are the ops team's, whichever request or job raises them: they are
# written (and deduplicated against every company's) in the ops scope of row-level security.
@ops_scope("ops-spine")
def notify(
    *,
    kind: str,
    title: str,
    text: str,
    severity: str = "info",
    link: str | None = None,
    company: Any = None,
    dedup_key: str | None = None,
    slack: bool = True,
    email_to: list[str] | None = None,
    fields: dict[str, str] | None = None,
) -> Notification | None:
    """Ask for an alert. Stored in the caller's transaction and delivered after it
    commits; returns None when ``dedup_key`` was used before (nothing is sent again)."""
    if severity not in Severity.values:
        raise ValueError(f"severity must be one of {Severity.values}, not {severity!r}")
    now = timezone.now()
    recipients = list(settings.OPS_EMAILS) if email_to is None else list(email_to)
    notification = Notification(
        kind=kind,
        title=title[:300],
        text=text,
        severity=severity,
        link=link or "",
        company=company,
        dedup_key=dedup_key or None,
        fields={str(k): str(v) for k, v in (fields or {}).items()},
        slack_status=ChannelStatus.PENDING if slack else ChannelStatus.NONE,
        email_to=recipients,
        email_status=ChannelStatus.PENDING if recipients else ChannelStatus.NONE,
        created_at=now,
        next_attempt_at=now,
        give_up_at=now + timedelta(seconds=settings.NOTIFY_GIVE_UP_AFTER),
    )
    if not _insert_once(notification):
        return None

    pk = notification.pk
    transaction.on_commit(lambda: delivery_enqueue(pk))
    return notification


def _insert_once(obj: models.Model) -> bool:
    """Insert unless the unique dedup key is taken. In a savepoint, so a duplicate does
    not break the caller's transaction; a concurrent insert of the same key waits for the
    first transaction and then loses."""
    if getattr(obj, "dedup_key", None) is None:
        obj.save(force_insert=True)
        return True
    try:
        with transaction.atomic():
            obj.save(force_insert=True)
    except IntegrityError:
        return False
    return True


def delivery_enqueue(pk: int, *, eta: datetime | None = None) -> None:
    try:
        enqueue("ops.deliver_notification", pk, eta=eta)
    except Exception:  # broker down: the row is safe, the beat sweep delivers it
        logger.warning("could not enqueue alert #%s; the sweep will deliver it", pk, exc_info=True)


def _storm_window_start(moment: datetime) -> datetime:
    window = settings.NOTIFY_STORM_WINDOW_SECONDS
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % window, tz=UTC)


def _storm_count(*, kind: str, window_start: datetime) -> int:
    """Count one more alert of this kind in its window, in one atomic statement (run at
    delivery, in autocommit: the row is locked only for that statement, never for the
    length of a caller's transaction)."""
    table = connection.ops.quote_name(StormWindow._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (kind, window_start, count) VALUES (%s, %s, 1) "  # noqa: S608
            f"ON CONFLICT (kind, window_start) DO UPDATE SET count = {table}.count + 1 RETURNING count",
            [kind, connection.ops.adapt_datetimefield_value(window_start)],
        )
        return cursor.fetchone()[0]


def is_ops_facing(notification: Notification) -> bool:
    """Only alerts to the ops team are damped: a storm summary goes to ops, so folding a
    message addressed to a customer would mean the customer never hears of it."""
    return set(notification.email_to or []) <= set(settings.OPS_EMAILS)


def storm_fold(notification: Notification) -> Notification | None:
    """On an alert's first delivery attempt: past the threshold for its kind in the window
    it was raised in, fold it into that window's summary instead of sending it."""
    window_start = _storm_window_start(notification.created_at)
    if _storm_count(kind=notification.kind, window_start=window_start) <= settings.NOTIFY_STORM_THRESHOLD:
        return None
    with transaction.atomic():
        summary = _open_storm_summary(kind=notification.kind, window_start=window_start)
        Notification.objects.filter(pk=notification.pk, status=NotificationStatus.SENDING).update(
            status=NotificationStatus.FOLDED, folded_into=summary, next_attempt_at=None
        )
    return summary


def _open_storm_summary(*, kind: str, window_start: datetime) -> Notification:
    """The window's summary that has not been sent yet, locked so it cannot be claimed
    (and rendered) before this fold commits. If delivery lagged and the window's summary
    went out already, a follow-up summary collects the rest."""
    window_end = window_start + timedelta(seconds=settings.NOTIFY_STORM_WINDOW_SECONDS)
    base_key = f"ops.storm:{kind}:{window_start:%Y%m%dT%H%M%S}"
    for round_ in range(1000):
        key = base_key if round_ == 0 else f"{base_key}:{round_}"
        now = timezone.now()
        due = max(window_end, now + timedelta(seconds=settings.NOTIFY_STORM_WINDOW_SECONDS if round_ else 0))
        summary = Notification(
            kind=kind,
            title=f"Alert storm: more {kind} alerts than usual",
            text="",
            severity=Severity.WARNING,
            link=admin_changelist_url(Notification, kind=kind),
            dedup_key=key,
            slack_status=ChannelStatus.PENDING,
            email_to=list(settings.OPS_EMAILS),
            email_status=ChannelStatus.PENDING if settings.OPS_EMAILS else ChannelStatus.NONE,
            created_at=now,
            next_attempt_at=due,
            give_up_at=due + timedelta(seconds=settings.NOTIFY_GIVE_UP_AFTER),
            is_summary=True,
            fields={"Window": f"{window_start:%Y-%m-%d %H:%M:%S}–{window_end:%H:%M:%S} UTC"},
        )
        if _insert_once(summary):
            pk = summary.pk
            transaction.on_commit(partial(delivery_enqueue, pk, eta=due))
        locked = Notification.objects.select_for_update().get(dedup_key=key)
        if locked.status == NotificationStatus.PENDING and locked.attempts == 0:
            return locked
    raise RuntimeError(f"no open storm summary for {kind} at {window_start}")


# --- Ops tasks -------------------------------------------------------------------------


@ops_scope("ops-spine")
def ops_task_open(
    *,
    kind: str,
    title: str,
    details: str = "",
    severity: str = "medium",
    company: Any = None,
    target: models.Model | None = None,
    dedup_key: str | None = None,
    due_at: datetime | None = None,
    actor: Actor | None = None,
) -> tuple[OpsTask, bool]:
    """Open a task for the ops team; with a ``dedup_key`` a job that runs twice opens
    one task (the second call returns the first task and False)."""
    if severity not in TaskSeverity.values:
        raise ValueError(f"severity must be one of {TaskSeverity.values}, not {severity!r}")
    if dedup_key:
        existing = OpsTask.objects.filter(dedup_key=dedup_key).first()
        if existing is not None:
            return existing, False
    now = timezone.now()
    task = OpsTask(
        kind=kind,
        title=title[:300],
        details=details,
        severity=severity,
        company=company,
        dedup_key=dedup_key or None,
        due_at=due_at,
        created_at=now,
        updated_at=now,
    )
    if target is not None:
        task.target_content_type = ContentType.objects.get_for_model(target)
        task.target_object_id = str(target.pk)
    if not _insert_once(task):
        return OpsTask.objects.get(dedup_key=dedup_key), False
    audit_record(
        action="ops.task.open",
        actor=actor or Actor.system(kind.split(".")[0] or "ops"),
        target=task,
        company=company,
        details={"kind": kind, "severity": severity, "status": TaskStatus.OPEN, "dedup_key": dedup_key or ""},
    )
    return task, True


def _task_change(
    *,
    task: OpsTask,
    actor: Actor,
    action: str,
    allowed_from: tuple[str, ...],
    updates: dict[str, Any],
    note: str = "",
) -> bool:
    """Apply one change to a task if its current status allows it; audited with before
    and after. The row is locked, so two people acting at once do not both win."""
    with transaction.atomic():
        current = OpsTask.objects.select_for_update().filter(pk=task.pk).first()
        if current is None or current.status not in allowed_from:
            return False
        before = {name: _plain(getattr(current, name)) for name in updates}
        now = timezone.now()
        OpsTask.objects.filter(pk=task.pk).update(updated_at=now, **updates)
        audit_record(
            action=action,
            actor=actor,
            target=current,
            company=current.company,
            details={
                "changes": {
                    name: {"before": before[name], "after": _plain(value)} for name, value in updates.items()
                },
                **({"note": note} if note else {}),
            },
        )
    task.refresh_from_db()
    return True


def _plain(value: Any) -> Any:
    if isinstance(value, models.Model):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def ops_task_acknowledge(*, task: OpsTask, actor: Actor, note: str = "") -> bool:
    """Someone is on it. The optional note goes to the audit trail."""
    return _task_change(
        task=task,
        actor=actor,
        action="ops.task.acknowledge",
        allowed_from=(TaskStatus.OPEN,),
        updates={"status": TaskStatus.ACKNOWLEDGED, "acknowledged_at": timezone.now()},
        note=note,
    )


def ops_task_assign(*, task: OpsTask, assignee: Any, actor: Actor, note: str = "") -> bool:
    """The optional note goes to the audit trail."""
    return _task_change(
        task=task,
        actor=actor,
        action="ops.task.assign",
        allowed_from=ACTIVE_TASK_STATUSES,
        updates={"assignee": assignee},
        note=note,
    )


def ops_task_resolve(*, task: OpsTask, note: str, actor: Actor) -> bool:
    return _task_change(
        task=task,
        actor=actor,
        action="ops.task.resolve",
        allowed_from=ACTIVE_TASK_STATUSES,
        updates={"status": TaskStatus.RESOLVED, "closed_at": timezone.now(), "resolution_note": note},
        note=note,
    )


def ops_task_dismiss(*, task: OpsTask, note: str, actor: Actor) -> bool:
    return _task_change(
        task=task,
        actor=actor,
        action="ops.task.dismiss",
        allowed_from=ACTIVE_TASK_STATUSES,
        updates={"status": TaskStatus.DISMISSED, "closed_at": timezone.now(), "resolution_note": note},
        note=note,
    )


# --- Many at once (a job that finds thousands of things to say) ---------------------------

# Up to this many new alerts are handed to workers one by one after commit; more go to
# one sweep (ops.sweep_notifications), so queueing 10,000 costs one broker message.
MANY_ENQUEUE_ONE_BY_ONE = 50


@dataclass(frozen=True)
class AlertSpec:
    """What ``notify`` takes, for ``notify_many``."""

    kind: str
    title: str
    text: str
    dedup_key: str
    severity: str = "info"
    link: str = ""
    company_id: int | None = None
    slack: bool = True
    email_to: list[str] | None = None
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskSpec:
    """What ``ops_task_open`` takes, for ``ops_tasks_open_many``; the target by its
    model and primary key (no instance needed)."""

    kind: str
    title: str
    dedup_key: str
    details: str = ""
    severity: str = "medium"
    company: Any = None
    target_model: type[models.Model] | None = None
    target_id: str = ""
    target_repr: str = ""


@ops_scope("ops-spine")
def notify_many(alerts: list[AlertSpec]) -> int:
    """``notify`` for a batch, in the caller's transaction: one insert for all; an alert
    whose dedup key was used before is skipped (as ``notify`` skips it). Delivery and
    storm folding are the outbox's as for one alert. Returns how many were new."""
    if not alerts:
        return 0
    for alert in alerts:
        if alert.severity not in Severity.values:
            raise ValueError(f"severity must be one of {Severity.values}, not {alert.severity!r}")
    keys = [a.dedup_key for a in alerts]
    taken = set(Notification.objects.filter(dedup_key__in=keys).values_list("dedup_key", flat=True))
    now = timezone.now()
    give_up = now + timedelta(seconds=settings.NOTIFY_GIVE_UP_AFTER)
    rows = []
    for alert in alerts:
        if alert.dedup_key in taken:
            continue
        taken.add(alert.dedup_key)
        recipients = list(settings.OPS_EMAILS) if alert.email_to is None else list(alert.email_to)
        rows.append(
            Notification(
                kind=alert.kind,
                title=alert.title[:300],
                text=alert.text,
                severity=alert.severity,
                link=alert.link,
                company_id=alert.company_id,
                dedup_key=alert.dedup_key,
                fields={str(k): str(v) for k, v in alert.fields.items()},
                slack_status=ChannelStatus.PENDING if alert.slack else ChannelStatus.NONE,
                email_to=recipients,
                email_status=ChannelStatus.PENDING if recipients else ChannelStatus.NONE,
                created_at=now,
                next_attempt_at=now,
                give_up_at=give_up,
            )
        )
    # A concurrent writer of the same key commits first or waits: its row wins, ours is dropped.
    Notification.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
    new_keys = [row.dedup_key for row in rows]
    if len(rows) <= MANY_ENQUEUE_ONE_BY_ONE:
        ids = list(Notification.objects.filter(dedup_key__in=new_keys, created_at=now).values_list("pk", flat=True))
        for pk in ids:
            transaction.on_commit(partial(delivery_enqueue, pk))
        return len(ids)
    transaction.on_commit(_sweep_enqueue)
    return len(rows)


def _sweep_enqueue() -> None:
    try:
        enqueue("ops.sweep_notifications")
    except Exception:  # broker down: the beat sweep delivers them
        logger.warning("could not enqueue an outbox sweep; the beat sweep will deliver", exc_info=True)


@ops_scope("ops-spine")
def ops_tasks_open_many(tasks: list[TaskSpec], *, actor: Actor | None = None) -> int:
    """``ops_task_open`` for a batch, in the caller's transaction: one insert for all,
    each new task audited as one opened alone is; a task whose dedup key is taken is not
    opened again. Returns how many were opened."""
    if not tasks:
        return 0
    for spec in tasks:
        if spec.severity not in TaskSeverity.values:
            raise ValueError(f"severity must be one of {TaskSeverity.values}, not {spec.severity!r}")
    keys = [t.dedup_key for t in tasks]
    taken = set(OpsTask.objects.filter(dedup_key__in=keys).values_list("dedup_key", flat=True))
    now = timezone.now()
    content_types = ContentType.objects.get_for_models(*{t.target_model for t in tasks if t.target_model})
    fresh: dict[str, TaskSpec] = {}
    for spec in tasks:
        if spec.dedup_key not in taken:
            fresh.setdefault(spec.dedup_key, spec)
    OpsTask.objects.bulk_create(
        [
            OpsTask(
                kind=spec.kind,
                title=spec.title[:300],
                details=spec.details,
                severity=spec.severity,
                company=spec.company,
                dedup_key=spec.dedup_key,
                target_content_type=content_types.get(spec.target_model) if spec.target_model else None,
                target_object_id=spec.target_id,
                created_at=now,
                updated_at=now,
            )
            for spec in fresh.values()
        ],
        batch_size=1000,
        ignore_conflicts=True,
    )
    opened = OpsTask.objects.filter(dedup_key__in=list(fresh), created_at=now).values_list("pk", "dedup_key", "title")
    audits = []
    for pk, key, title in opened:
        spec = fresh[str(key)]
        audits.append(
            AuditEntry(
                action="ops.task.open",
                actor=actor or Actor.system(spec.kind.split(".")[0] or "ops"),
                target=Target(type=OpsTask._meta.label_lower, id=str(pk), repr=title),
                company=spec.company,
                details={"kind": spec.kind, "severity": spec.severity, "status": TaskStatus.OPEN, "dedup_key": key},
            )
        )
    return audit_record_many(audits)

