"""Loaded before Django (``-p tests.parallel`` in pyproject.toml): under pytest-xdist each
worker gets its own Redis database and ``VAR_DIR`` (pytest-django already gives each its own
test database), so two workers never share a cache key, a Celery queue or a file. Worker
``gwN`` uses the configured Redis database number plus N. Processes a test starts inherit
the worker's environment, so a Celery worker started by a test talks to the same Redis
database as the test itself."""

from __future__ import annotations

import os
import re

_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw"):
    _n = int(_worker.removeprefix("gw"))
    for _name in ("CACHE_URL", "CELERY_BROKER_URL"):
        _match = re.fullmatch(r"(rediss?://[^/]+)/(\d+)", os.environ.get(_name, ""))
        if _match:
            os.environ[_name] = f"{_match[1]}/{int(_match[2]) + _n}"
    if os.environ.get("VAR_DIR"):
        os.environ["VAR_DIR"] = os.path.join(os.environ["VAR_DIR"], _worker)
