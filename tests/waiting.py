"""Waiting for a real worker in tests: poll a condition, never sleep for time logic."""

import time
from collections.abc import Callable


def until(predicate: Callable[[], bool], timeout: float = 60) -> bool:
    """Poll until the worker has done it (True) or give up (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False
