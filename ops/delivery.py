"""Alert delivery: each queued notification sent to its channels (Slack, e-mail), with
retries and backoff, claimed by a conditional UPDATE so two workers never send the same one.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from audit.services import Actor, audit_record
from ops import gateways, messages
from ops.models import (
    ChannelStatus,
    Notification,
    NotificationStatus,
    Severity,
    TaskSeverity,
)
from ops.selectors import notifications_due
from ops.services import OUTBOX_ACTOR, delivery_enqueue, is_ops_facing, ops_task_open, storm_fold

logger = logging.getLogger(__name__)

SUMMARY_TITLES_SHOWN = 10


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
    elif notification.attempts == 1 and is_ops_facing(notification) and storm_fold(notification) is not None:
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
        transaction.on_commit(lambda: delivery_enqueue(pk))
    return True
