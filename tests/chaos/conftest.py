"""The chaos suite runs only with ``make chaos`` (``CHAOS=1``), never in ``make test``: it
starts and kills its own PostgreSQL, Redis (and RabbitMQ with ``CHAOS_BROKER=rabbitmq``),
gunicorn, a worker and beat, which takes minutes."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from regions.fake import FakeRegionServer
from tests.chaos.stack import Stack
from tests.fakes.stripe_server import FakeStripeServer
from tests.ops.fake_slack import FakeSlack
from tests.silent_server import SilentServer

if not os.environ.get("CHAOS"):
    collect_ignore_glob = ["test_*.py"]


class HeldSlack(FakeSlack):
    """The fake Slack, able to hold posts unanswered until released: a task in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.held = 0

    def hold(self) -> None:
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def _handle(self, handler: Any) -> tuple[int, str]:
        if not self.gate.is_set():
            with self._lock:
                self.held += 1
            self.gate.wait(timeout=60)
        return super()._handle(handler)

    def titles(self) -> list[str]:
        return [t.splitlines()[0] for t in self.texts()]


@pytest.fixture(scope="session")
def fakes() -> Iterator[dict[str, Any]]:
    with (
        HeldSlack() as slack,
        FakeStripeServer() as stripe_fake,
        SilentServer() as smtp,
        FakeRegionServer(name="primary", hang_limit=10) as primary,
        FakeRegionServer(name="secondary", hang_limit=10) as secondary,
    ):
        for code, amount in {"starter": 4_900, "pro": 19_900, "enterprise": 99_900}.items():
            stripe_fake.add_price(price_id=f"price_{code}_month", unit_amount=amount, currency="usd", lookup_key=code)
        yield {"slack": slack, "stripe": stripe_fake, "smtp": smtp, "regions": [primary, secondary]}


@pytest.fixture(scope="session")
def stack(fakes) -> Iterator[Stack]:
    running = Stack(broker=os.environ.get("CHAOS_BROKER", "redis"), fakes=fakes)
    try:
        yield running.start()
    finally:
        running.close()


@pytest.fixture(autouse=True)
def _fresh_routing_state():
    """The root conftest's fixture of this name clears the shared cache: not here."""
    yield


@pytest.fixture(autouse=True)
def _every_process_lives(stack: Stack) -> Iterator[None]:
    """After each scenario, gunicorn, the worker and beat are still the processes we started."""
    yield
    dead = [name for name, process in stack.processes.items() if not process.alive]
    assert not dead, f"died: {dead}; see {stack.base}"
    assert "Unrecoverable error" not in stack.processes["worker"].output()
