"""Everything that writes in the ops spine: alerts (the outbox) and ops tasks.

Other apps call only ``notify`` and ``ops_task_open``, inside their own transaction.
Delivery runs after commit in a Celery task; a row is claimed with a conditional UPDATE
(pending -> sending) so however many workers race, one of them sends it. Storm damping is
decided at delivery too, so ``notify`` takes no lock a caller's transaction would hold.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from audit.services import Actor, audit_record
from core.links import admin_changelist_url
from core.queue import enqueue
from ops import gateways, messages
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
from ops.selectors import notifications_due

logger = logging.getLogger(__name__)

OUTBOX_ACTOR = Actor.system("ops-outbox")
SUMMARY_TITLES_SHOWN = 10


# --- Alerts: enqueue -------------------------------------------------------------------


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
    transaction.on_commit(lambda: _enqueue_delivery(pk))
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


def _enqueue_delivery(pk: int, *, eta: datetime | None = None) -> None:
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


def _is_ops_facing(notification: Notification) -> bool:
    """Only alerts to the ops team are damped: a storm summary goes to ops, so folding a
    message addressed to a customer would mean the customer never hears of it."""
    return set(notification.email_to or []) <= set(settings.OPS_EMAILS)


def _storm_fold(notification: Notification) -> Notification | None:
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
            transaction.on_commit(partial(_enqueue_delivery, pk, eta=due))
        locked = Notification.objects.select_for_update().get(dedup_key=key)
        if locked.status == NotificationStatus.PENDING and locked.attempts == 0:
            return locked
    raise RuntimeError(f"no open storm summary for {kind} at {window_start}")


# --- Alerts: delivery ------------------------------------------------------------------


def slack_webhook_for(kind: str) -> str:
    """The webhook for a kind: the longest matching dotted prefix in SLACK_KIND_WEBHOOKS,
    else SLACK_WEBHOOK_URL. Empty means Slack is off for this kind."""
    best, best_len = settings.SLACK_WEBHOOK_URL, -1
    for prefix, url in settings.SLACK_KIND_WEBHOOKS.items():
        if (kind == prefix or kind.startswith(prefix + ".")) and len(prefix) > best_len:
            best, best_len = url, len(prefix)
    return best


def slack_is_configured() -> bool:
    return bool(settings.SLACK_WEBHOOK_URL or any(settings.SLACK_KIND_WEBHOOKS.values()))


def retry_delay(attempts: int) -> timedelta:
    seconds = settings.NOTIFY_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, settings.NOTIFY_RETRY_MAX_SECONDS))


def notification_deliver(*, notification_id: int) -> str:
    """Try to deliver one due alert. Returns its status afterwards, or "skipped" when
    another worker got there first (or it is not due)."""
    now = timezone.now()
    claimed = Notification.objects.filter(
        pk=notification_id, status=NotificationStatus.PENDING, next_attempt_at__lte=now
    ).update(status=NotificationStatus.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    if not claimed:
        return "skipped"
    notification = Notification.objects.select_related("company").get(pk=notification_id)
    if notification.is_summary:
        _render_summary(notification)
    elif notification.attempts == 1 and _is_ops_facing(notification) and _storm_fold(notification) is not None:
        return NotificationStatus.FOLDED

    updates: dict[str, Any] = {}
    errors: list[tuple[str, gateways.DeliveryError]] = []
    if notification.slack_status == ChannelStatus.PENDING:
        url = slack_webhook_for(notification.kind)
        if not url:
            updates["slack_status"] = ChannelStatus.OFF
        else:
            text, blocks = messages.slack_message(notification)
            try:
                gateways.slack_post(url=url, text=text, blocks=blocks)
                updates["slack_status"] = _channel_sent(notification, "slack_status")
            except gateways.DeliveryError as exc:
                errors.append(("slack", exc))
    if notification.email_status == ChannelStatus.PENDING:
        subject, body = messages.email_message(notification)
        try:
            gateways.email_send(subject=subject, body=body, to=list(notification.email_to))
            updates["email_status"] = _channel_sent(notification, "email_status")
        except gateways.DeliveryError as exc:
            errors.append(("email", exc))

    now = timezone.now()
    # Only while the claim is still ours: a claim handed back (this worker hung past
    # NOTIFY_SENDING_TIMEOUT) belongs to whoever took it next.
    ours = Notification.objects.filter(
        pk=notification.pk, status=NotificationStatus.SENDING, claimed_at=notification.claimed_at
    )
    if not errors:
        updates.update(status=NotificationStatus.SENT, sent_at=now, last_error="", next_attempt_at=None)
        ours.update(**updates)
        return NotificationStatus.SENT

    last_error = "; ".join(f"{channel}: {exc}" for channel, exc in errors)[:2000]
    final = any(not exc.retryable for _, exc in errors) or (
        notification.give_up_at is not None and now >= notification.give_up_at
    )
    if not final:
        updates.update(
            status=NotificationStatus.PENDING,
            last_error=last_error,
            next_attempt_at=now + retry_delay(notification.attempts),
        )
        ours.update(**updates)
        logger.info("alert #%s not sent (try %s): %s", notification.pk, notification.attempts, last_error)
        return NotificationStatus.PENDING

    for channel, _ in errors:
        updates[f"{channel}_status"] = ChannelStatus.FAILED
    updates.update(status=NotificationStatus.FAILED, last_error=last_error, next_attempt_at=None)
    with transaction.atomic():
        if not ours.update(**updates):
            return "skipped"
        audit_record(
            action="ops.notification.failed",
            actor=OUTBOX_ACTOR,
            target=notification,
            company=notification.company,
            details={"attempts": notification.attempts, "error": last_error},
        )
        ops_task_open(
            kind="ops.alert_undelivered",
            title=f"Alert not delivered: {notification.title}"[:300],
            details=(
                f"The {notification.kind} alert #{notification.pk} could not be delivered after "
                f"{notification.attempts} attempt(s). Last error: {last_error}\n"
                f"What it said:\n{messages.fallback_text(notification)}\n\n"
                "Read it, act on it, fix the channel (SLACK_WEBHOOK_URL / mail settings), then use "
                "'Retry now' on the outbox entry."
            ),
            severity=TaskSeverity.HIGH if notification.severity == Severity.CRITICAL else TaskSeverity.MEDIUM,
            company=notification.company,
            target=notification,
            dedup_key=f"ops.alert_undelivered:{notification.pk}:{notification.attempts}",
        )
    logger.warning("alert #%s gave up: %s", notification.pk, last_error)
    return NotificationStatus.FAILED


def _channel_sent(notification: Notification, field: str) -> str:
    """Record a channel as sent the moment it is, before trying the next one: if this
    worker then hangs or dies and the claim is handed back, the retry skips it."""
    Notification.objects.filter(pk=notification.pk).update(**{field: ChannelStatus.SENT})
    return ChannelStatus.SENT


def _render_summary(summary: Notification) -> None:
    """A storm summary is written when it is sent, from the alerts folded into it."""
    folded = list(summary.folded.select_related("company").order_by("created_at", "id"))
    count = len(folded)
    window = settings.NOTIFY_STORM_WINDOW_SECONDS
    worst: str = Severity.INFO
    for n in folded:
        if n.severity == Severity.CRITICAL or (n.severity == Severity.WARNING and worst == Severity.INFO):
            worst = n.severity
    companies = sorted({str(n.company) for n in folded if n.company is not None})
    lines = [
        f"{count} more `{summary.kind}` alert(s) arrived within {window} seconds, after the first "
        f"{settings.NOTIFY_STORM_THRESHOLD}; they are folded into this one message instead of being "
        "sent one by one.",
        "",
    ]
    lines += [f"• {n.title}" for n in folded[:SUMMARY_TITLES_SHOWN]]
    if count > SUMMARY_TITLES_SHOWN:
        lines.append(f"• … and {count - SUMMARY_TITLES_SHOWN} more")
    lines += [
        "",
        "What to do: open the outbox (link) to read each alert and work the ops task queue; "
        "a storm usually has one cause, so look for what they have in common.",
    ]
    summary.title = f"Alert storm: {count} more {summary.kind} alerts folded"[:300]
    summary.text = "\n".join(lines)
    summary.severity = worst if count else Severity.INFO
    summary.fields = {"Kind": summary.kind, "Folded alerts": str(count), **summary.fields}
    if companies:
        summary.fields["Companies"] = ", ".join(companies[:20]) + (" …" if len(companies) > 20 else "")
    Notification.objects.filter(pk=summary.pk).update(
        title=summary.title, text=summary.text, severity=summary.severity, fields=summary.fields
    )


def notifications_reclaim_stuck() -> int:
    """Hand back alerts whose worker died mid-send (claimed longer ago than the timeout).
    Such an alert may go out twice; losing it would be worse."""
    cutoff = timezone.now() - timedelta(seconds=settings.NOTIFY_SENDING_TIMEOUT)
    return Notification.objects.filter(status=NotificationStatus.SENDING, claimed_at__lt=cutoff).update(
        status=NotificationStatus.PENDING, next_attempt_at=timezone.now()
    )


def notifications_deliver_due(*, limit: int = 500) -> dict[str, int]:
    """Deliver every due alert in this process, one after another. Tests drive delivery
    with it; in production the beat sweep fans the same ids out to workers instead."""
    results: dict[str, int] = {}
    for pk in notifications_due(limit=limit):
        outcome = notification_deliver(notification_id=pk)
        results[outcome] = results.get(outcome, 0) + 1
    return results


def notification_retry_now(*, notification: Notification, actor: Actor) -> bool:
    """Make a pending or failed alert due now, with a fresh give-up deadline."""
    now = timezone.now()
    retryable = [NotificationStatus.PENDING, NotificationStatus.FAILED]
    with transaction.atomic():
        current = Notification.objects.select_for_update().filter(pk=notification.pk, status__in=retryable)
        before = current.values_list("status", flat=True).first()
        if before is None:
            return False
        Notification.objects.filter(pk=notification.pk).update(
            status=NotificationStatus.PENDING,
            next_attempt_at=now,
            give_up_at=now + timedelta(seconds=settings.NOTIFY_GIVE_UP_AFTER),
            slack_status=Case(
                When(slack_status=ChannelStatus.FAILED, then=Value(ChannelStatus.PENDING)),
                default=F("slack_status"),
            ),
            email_status=Case(
                When(email_status=ChannelStatus.FAILED, then=Value(ChannelStatus.PENDING)),
                default=F("email_status"),
            ),
        )
        audit_record(
            action="ops.notification.retry",
            actor=actor,
            target=notification,
            company=notification.company,
            details={"from": before, "to": NotificationStatus.PENDING},
        )
        pk = notification.pk
        transaction.on_commit(lambda: _enqueue_delivery(pk))
    return True


# --- Ops tasks -------------------------------------------------------------------------


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


def ops_task_acknowledge(*, task: OpsTask, actor: Actor) -> bool:
    return _task_change(
        task=task,
        actor=actor,
        action="ops.task.acknowledge",
        allowed_from=(TaskStatus.OPEN,),
        updates={"status": TaskStatus.ACKNOWLEDGED, "acknowledged_at": timezone.now()},
    )


def ops_task_assign(*, task: OpsTask, assignee: Any, actor: Actor) -> bool:
    return _task_change(
        task=task,
        actor=actor,
        action="ops.task.assign",
        allowed_from=ACTIVE_TASK_STATUSES,
        updates={"assignee": assignee},
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
