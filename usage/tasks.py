"""Celery entry points; each one calls a service."""

from celery import shared_task

from usage.monitor import usage_monitor_run
from usage.partitions import usage_partitions_ensure, usage_partitions_retire


@shared_task(name="usage.tasks.run_usage_monitor")
def run_usage_monitor(trigger: str = "beat", dry_run: bool = False) -> int:
    return usage_monitor_run(dry_run=dry_run, trigger=trigger).pk


@shared_task(name="usage.tasks.ensure_event_partitions")
def ensure_event_partitions() -> list[str]:
    return usage_partitions_ensure().created


@shared_task(name="usage.tasks.retire_event_partitions")
def retire_event_partitions() -> list[str]:
    return [archive.partition for archive in usage_partitions_retire()]
