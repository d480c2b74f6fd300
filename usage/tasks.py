from celery import shared_task


@shared_task(name="usage.tasks.run_usage_monitor")
def run_usage_monitor(trigger: str = "beat", dry_run: bool = False) -> int:
    from usage.services import usage_monitor_run

    return usage_monitor_run(dry_run=dry_run, trigger=trigger).pk
