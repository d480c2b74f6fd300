"""Celery entry points: thin, they load by id and call a service."""

from celery import shared_task

from ops import delivery, selectors


@shared_task(name="ops.deliver_notification", ignore_result=True)
def deliver_notification(notification_id: int) -> str:
    return delivery.notification_deliver(notification_id=notification_id)


@shared_task(name="ops.sweep_notifications", ignore_result=True)
def sweep_notifications() -> int:
    """Beat, every 30 s: hand back stuck claims and fan due retries out to workers."""
    delivery.notifications_reclaim_stuck()
    due = selectors.notifications_due()
    for pk in due:
        deliver_notification.delay(pk)
    return len(due)
