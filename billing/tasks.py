"""Celery tasks of billing: thin, each loads by id and calls a service."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from billing.stripe import overage, webhook_processing


@shared_task(name="billing.tasks.report_overage")
def report_overage(trigger: str = "beat") -> dict:
    """Beat: 02:30 UTC after the usage monitor, and 00:15 UTC when periods close."""
    return overage.overage_report_run(trigger=trigger).as_dict()


@shared_task(name="billing.tasks.send_billing_event")
def send_billing_event(billing_event_id: int) -> str:
    """Queued on commit after a report is planned, and again with ``countdown=`` the
    backoff after each retryable failure (the service queues it)."""
    return overage.billing_event_send(billing_event_id=billing_event_id)


@shared_task(name="billing.tasks.sweep_billing_events")
def sweep_billing_events() -> int:
    """Beat, every minute: queue overage reports that are due or stuck in "sending", and
    stop those 24 h past their first attempt."""
    return overage.overage_sweep()


@shared_task(bind=True, name="billing.tasks.process_stripe_event", max_retries=None)
def process_stripe_event(self: Task[Any, Any], webhook_event_id: int) -> str:
    """Retried with exponential backoff (10 s, 20 s, ... about 40 min in all). The event
    row counts the tries and says when the next is due, so a retry lost with the broker is
    found by the sweep; after the last, the service has opened an ops task."""
    try:
        return webhook_processing.webhook_event_process(webhook_event_id=webhook_event_id)
    except webhook_processing.WebhookProcessingError as exc:
        if exc.retry_in is None:
            return "gave up"
        raise self.retry(exc=exc, countdown=exc.retry_in)


@shared_task(name="billing.tasks.sweep_stripe_events")
def sweep_stripe_events() -> int:
    """Beat, every 5 minutes: events stored but never queued (broker down), or whose retry
    was lost (broker restarted), get processed."""
    return webhook_processing.webhook_events_sweep()
