"""The web and worker processes' garbage collector: what Django and the apps load at start lives as
long as the process, so ``trans_bot.wsgi`` freezes it. Unfrozen, each worker's first full
collection scans it all and stalls whichever request triggers it for tens of
milliseconds (bench/RESULTS.md: the entitlement check's first turn)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_COUNTS = 'print(json.dumps({"frozen": gc.get_freeze_count(), "tracked": len(gc.get_objects())}))'

_WEB_PROBE = f"""
import gc, json
import trans_bot.wsgi
{_COUNTS}
"""

_WORKER_PROBE = f"""
import gc, json
import django
django.setup()
from celery.signals import worker_process_init
from trans_bot.celery import app
app.loader.import_default_modules()  # the task modules, as a worker imports them
worker_process_init.send(sender=None)
{_COUNTS}
"""


def _assert_start_up_objects_frozen(probe: str) -> None:
    """``probe`` (a new process) loads what a process loads at start; a full collection
    then scans what is tracked, not the frozen start-up objects."""
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "trans_bot.settings"},
    )
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["frozen"] > 100_000
    assert counts["tracked"] * 10 < counts["frozen"]


def test_what_the_web_process_loads_at_start_is_kept_out_of_the_collectors_sight():
    _assert_start_up_objects_frozen(_WEB_PROBE)


def test_a_worker_process_keeps_what_it_loaded_out_of_the_collectors_sight_too():
    _assert_start_up_objects_frozen(_WORKER_PROBE)
