"""The Celery app. Configuration comes from Django settings (``CELERY_*``)."""

import gc
import os
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_process_init
from celery.worker.consumer import Consumer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trans_bot.settings")


class BrokerRestartSafeConsumer(Consumer):
    """Celery 5.7.0's consumer, surviving a broker restart with a task in flight.

    On a lost broker connection, celery 5.7.0 (celery#10242, the fix for GH-9705) first
    ``collect()``s the connection, which detaches its transport, then ``close()``s it.
    ``close()`` still closes the default channel, whose Redis QoS restores unacknowledged
    messages through that detached transport; kombu's ``_connparams`` then reads
    ``None.hostname`` and the ``AttributeError`` (not a connection error, so not ignored)
    ends the worker: ``Unrecoverable error: AttributeError("'NoneType' object has no
    attribute 'hostname'")`` in ``restore_unacked``. No newer celery or kombu release
    fixes it (5.7.0 of both is the newest), and 5.6.3 lacks #10242's bounded collect, so
    it can hang on a dead socket instead.

    Workaround: the default channel belongs to the collected transport, so it is
    forgotten with it and ``close()`` has nothing left to do. The in-flight task runs to
    its end; its message was either lost with the broker (Redis without persistence) or
    comes back after the visibility timeout, and every task here is safe to run twice.
    Remove once celery or kombu closes a collected connection cleanly
    (``make chaos`` shows when: tests/chaos/test_broker_restart.py).
    """

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        connection = self.connection
        if connection is not None:
            collect = connection.collect

            def collect_and_forget_its_channel(*args: Any, **kwargs: Any) -> None:
                try:
                    collect(*args, **kwargs)
                finally:
                    connection._default_channel = None  # type: ignore[attr-defined]  # kombu private, untyped

            connection.collect = collect_and_forget_its_channel  # type: ignore[method-assign]
        super().on_connection_error_after_connected(exc)


app = Celery("trans_bot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect  # the worker's main process (the solo and thread pools run tasks in it)
@worker_process_init.connect  # each prefork child, once forked
def freeze_startup_objects(**kwargs: Any) -> None:
    """What the worker has loaded by now (Django, the apps, the task modules) lives as long
    as the process: frozen out of the garbage collector's sight, its first full collection
    does not stall a task (a region probe cycle: 100 ms) scanning them, as for the web
    process (``trans_bot.wsgi``)."""
    gc.collect()
    gc.freeze()
