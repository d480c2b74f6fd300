"""The broker restarts while a worker holds a task in flight: the worker lives (celery
5.7.0 alone exits with "Unrecoverable error: AttributeError ... 'hostname'", see
trans_bot.celery.BrokerRestartSafeConsumer), the task completes once, and the worker
takes new work afterwards."""

from __future__ import annotations

import itertools

from tests.chaos.stack import Stack, eventually

_n = itertools.count(1)


def _alert(stack: Stack, title: str) -> int:
    out = stack.shell(
        "from ops.services import notify\n"
        f"print(notify(kind='chaos.broker', title={title!r}, text='...', email_to=[]).pk)"
    )
    return int(out.strip().splitlines()[-1])


def _status(stack: Stack, pk: int) -> str:
    return stack.value("SELECT status FROM ops_notification WHERE id = %s", [pk])


def test_a_broker_restart_with_a_task_in_flight_leaves_the_worker_alive_and_the_task_done_once(stack: Stack, fakes):
    slack = fakes["slack"]
    worker = stack.processes["worker"]
    title = f"In flight through a broker restart {next(_n)}"
    slack.hold()
    try:
        pk = _alert(stack, title)
        eventually(lambda: slack.held >= 1, timeout=30, what="the delivery task posting to Slack")
        lost_before = worker.output().count("Connection to broker lost")
        with stack.broker_down():
            eventually(
                lambda: worker.output().count("Connection to broker lost") > lost_before,
                timeout=30,
                what="the worker noticing the broker is gone",
            )
    finally:
        slack.release()

    eventually(lambda: _status(stack, pk) == "sent", timeout=60, what="the held alert delivered")
    assert worker.alive and "Unrecoverable error" not in worker.output()
    assert slack.titles().count(f"[Info] {title}") == 1
    assert stack.value("SELECT attempts FROM ops_notification WHERE id = %s", [pk]) == 1

    after = f"After the broker restart {next(_n)}"
    later = _alert(stack, after)
    eventually(lambda: _status(stack, later) == "sent", timeout=60, what="the worker taking new work")
    assert slack.titles().count(f"[Info] {after}") == 1
