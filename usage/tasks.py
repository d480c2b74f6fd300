"""Celery entry points; each one calls a service."""

from celery import shared_task

from usage.monitor import usage_monitor_run


@shared_task(name="usage.tasks.run_usage_monitor")
def run_usage_monitor(trigger: str = "beat", dry_run: bool = False) -> int:
    return usage_monitor_run(dry_run=dry_run, trigger=trigger).pk
