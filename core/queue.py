"""Queue a Celery task by its registered name.

Tasks call services, and services queue tasks (an alert to deliver after commit, a
webhook to process, an overage report to send again after a backoff). If services
imported the task modules, each app would have an import loop; so a service names the
task it queues, and only the task module imports the service.

The task object comes from the app's registry, so ``CELERY_TASK_ALWAYS_EAGER`` and the
task's own options apply exactly as with ``task.apply_async``. A process that never
imported the task module (a web process) discovers every app's ``tasks`` module first,
as a worker does at start. An unknown name raises ``celery.exceptions.NotRegistered``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from celery import current_app
from celery.app.task import Task
from celery.result import AsyncResult


def registered_task(name: str) -> Task:
    tasks = current_app.tasks
    if name not in tasks:
        current_app.autodiscover_tasks(force=True)
    return tasks[name]


def enqueue(
    task_name: str, *args: Any, countdown: float | None = None, eta: datetime | None = None
) -> AsyncResult:
    """``enqueue("ops.deliver_notification", pk)``: the task runs in a worker (or inline
    when eager). Raises what the broker raises when it is down: callers that keep a row
    for a sweep to pick up catch it."""
    # Only what was given: celery reads an absent option and None alike, its stubs accept no None.
    options: dict[str, Any] = {}
    if countdown is not None:
        options["countdown"] = countdown
    if eta is not None:
        options["eta"] = eta
    return registered_task(task_name).apply_async(args, **options)
