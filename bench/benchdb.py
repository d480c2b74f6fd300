"""What every benchmark shares: a throwaway database, gunicorn, wrk, status checks and
taking turns.

Databases. A run migrates one template database once (``<name>_bench_<pid>_tmpl``, where
``<name>`` is the configured database) and gives each benchmark a copy of it
(``CREATE DATABASE … TEMPLATE``, well under a second), dropped when the benchmark ends;
``cleanup()`` drops the template. So a benchmark runs on the configured engine with every
migration applied and never touches demo or test data.

Honesty. ``check_status`` and ``wrk`` raise ``BenchFailure`` on any status but the
expected one, 3xx included (wrk itself counts only 4xx/5xx as errors; ``wrk_requests.lua``
counts every class). ``take_turns`` alternates the project and its baseline so both see
the same machine.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlunsplit

import django
from table import BenchFailure

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
WRK_SCRIPT = HERE / "wrk_requests.lua"

_original_name: str | None = None
_template: str | None = None
_counter = itertools.count(1)


def _maintenance(sender: Any, connection: Any, **kwargs: Any) -> None:
    # Benchmarks may TRUNCATE the audit table (see audit migration 0002).
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET trans_bot.audit_maintenance = 'on'")


def _setup() -> None:
    global _original_name
    django.setup()
    from django.db import connection
    from django.db.backends.signals import connection_created

    connection_created.connect(_maintenance, dispatch_uid="bench_maintenance")
    if _original_name is None:
        _original_name = connection.settings_dict["NAME"]


def base_name() -> str:
    """The configured database name: bench databases are named after it."""
    _setup()
    assert _original_name is not None
    return _original_name


def bench_prefix(pid: int | None = None) -> str:
    """This process's bench databases: ``<name>_bench_<pid>_…`` (so runs side by side never
    meet, and a run that was killed can be told from one still going)."""
    return f"{base_name()}_bench_{pid or os.getpid()}_"


def drop_stale() -> list[str]:
    """Drop bench databases left by runs whose process is gone (killed mid-run)."""
    from django.db import connection

    _setup()
    with connection._nodb_cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)", [f"{base_name()}_bench_"])
        names = [n for (n,) in cursor.fetchall()]
        stale = []
        for name in names:
            pid = name.removeprefix(f"{base_name()}_bench_").split("_", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                stale.append(name)
    return stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _use(name: str) -> None:
    from django.conf import settings
    from django.db import connection

    connection.close()
    settings.DATABASES["default"]["NAME"] = name
    connection.settings_dict["NAME"] = name


def _ensure_template() -> str:
    global _template
    if _template is not None:
        return _template
    from django.db import connection

    name = f"{bench_prefix()}tmpl"
    connection.settings_dict.setdefault("TEST", {})["NAME"] = name
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    connection.close()
    _template = name
    return name


@contextlib.contextmanager
def bench_database() -> Iterator[str]:
    """A fresh, migrated database of this benchmark's own; dropped at the end."""
    _setup()
    from django.db import connection, connections

    if connection.vendor != "postgresql":
        raise BenchFailure("benchmarks run on PostgreSQL (DATABASE_URL=postgres://…)")
    template = _ensure_template()
    name = f"{bench_prefix()}{next(_counter)}"
    _use(base_name())
    with connection._nodb_cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    _use(name)
    try:
        yield name
    finally:
        connections.close_all()
        _use(base_name())
        with connection._nodb_cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def leftover_databases() -> list[str]:
    """Bench databases that exist now (the template excluded)."""
    _setup()
    from django.db import connection

    with connection._nodb_cursor() as cursor:
        cursor.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY 1", [bench_prefix()]
        )
        return [n for (n,) in cursor.fetchall() if n != _template]


def cleanup() -> None:
    """Drop the template; after this no bench database is left."""
    global _template
    if _template is None:
        return
    from django.db import connection

    _use(base_name())
    with connection._nodb_cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{_template}" WITH (FORCE)')
    _template = None


def database_url(db_name: str) -> str:
    from django.db import connection

    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return urlunsplit(("postgres", f"{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}", f"/{db_name}", "", ""))


# --- figures -------------------------------------------------------------------------


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def describe(samples_ms: list[float]) -> str:
    return (
        f"p50 {percentile(samples_ms, 50):.2f} ms, p99 {percentile(samples_ms, 99):.2f} ms, "
        f"mean {statistics.fmean(samples_ms):.2f} ms over {len(samples_ms)}"
    )


def size(name: str, default: int) -> int:
    """A size from the environment (``BENCH_…``), so a quick or tiny run can lower it."""
    return int(os.environ.get(name, default))


def take_turns(rounds: int, **turns: Callable[[int], Any]) -> dict[str, list[Any]]:
    """Call each turn once per round, in the same order every round, so the project and
    its baseline share whatever else the machine is doing; returns each turn's results."""
    out: dict[str, list[Any]] = {name: [] for name in turns}
    for r in range(rounds):
        for name, turn in turns.items():
            out[name].append(turn(r))
    return out


def check_status(response: Any, expected: Iterable[int] = (200,), what: str = "") -> Any:
    """Fail the run on any status but the expected ones (a 3xx too: redirects are never
    followed, so a redirect measured as a success cannot happen)."""
    if response.status_code not in tuple(expected):
        raise BenchFailure(
            f"{what or response.request.method + ' ' + str(response.request.url)}: HTTP {response.status_code} "
            f"(expected {', '.join(map(str, expected))}): {response.text[:200]}"
        )
    return response


def http_client(**kwargs: Any) -> Any:
    import httpx

    return httpx.Client(follow_redirects=False, timeout=kwargs.pop("timeout", 30), **kwargs)


# --- servers -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(
    db_name: str, *, env: dict[str, str] | None = None, workers: int | None = None, app: str = "trans_bot.wsgi"
) -> tuple[subprocess.Popen[bytes], str]:
    """gunicorn serving ``app`` (the back office by default) on the benchmark database;
    returns (process, base URL) once /healthz answers. The caller terminates the process.
    Workers: BENCH_WORKERS (default 3), the same for the project and its yardstick."""
    import httpx

    workers = workers or size("BENCH_WORKERS", 3)

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", app, "-b", f"127.0.0.1:{port}", "-w", str(workers),
         "--log-level", "warning", "--pythonpath", str(HERE)],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url(db_name), "DEBUG": "false", "LOG_LEVEL": "WARNING",
             "CONN_MAX_AGE": "600", **(env or {})},
    )
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise BenchFailure(f"gunicorn {app} exited with {proc.returncode} before answering")
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                stop(proc)
                raise BenchFailure(f"gunicorn {app} did not answer /healthz within 60 s") from None
            time.sleep(0.1)
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextlib.contextmanager
def gunicorn(db_name: str, **kwargs: Any) -> Iterator[str]:
    proc, base = start_gunicorn(db_name, **kwargs)
    try:
        yield base
    finally:
        stop(proc)


# --- wrk -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: str = ""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def text(self) -> str:
        return f"{self.rate:,.0f} req/s, p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms"


def wrk(base: str, requests: list[Request], *, connections: int, seconds: float, threads: int = 1,
        what: str = "") -> WrkResult:
    """Load ``base`` with wrk, cycling through ``requests`` (each connection starts at its
    own place). Any answer that is not 2xx (3xx included) or any socket error fails the run."""
    import shutil

    if shutil.which("wrk") is None:
        raise BenchFailure("wrk is not installed (make bench installs it: apt-get install -y wrk)")
    for r in requests:
        for text in (r.method, r.path, r.body, *r.headers, *r.headers.values()):
            if "\t" in text or "\n" in text or "\x1f" in text:
                raise ValueError(f"request field with a tab, newline or \\x1f: {text!r}")
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as f:
        for r in requests:
            headers = "\x1f".join(f"{k}: {v}" for k, v in r.headers.items())
            f.write(f"{r.method}\t{r.path}\t{headers}\t{r.body}\n")
    try:
        out = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
             "-s", str(WRK_SCRIPT), base, "--", f.name],
            capture_output=True, text=True, timeout=seconds + 60,
        )
    finally:
        os.unlink(f.name)
    if out.returncode != 0 or "WRK " not in out.stdout:
        raise BenchFailure(f"wrk failed ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}")
    stats = {k: int(v) for k, v in (item.split("=") for item in out.stdout.split("WRK ", 1)[1].split())}
    bad = {k: stats[k] for k in ("s1xx", "s3xx", "s4xx", "s5xx", "errors") if stats[k]}
    if bad or stats["requests"] == 0:
        raise BenchFailure(
            f"{what or base}: {stats['requests']} requests, unexpected answers {bad or 'none at all'} "
            f"(first bad status {stats['first_bad']}); only 2xx counts"
        )
    return WrkResult(
        requests=stats["requests"], seconds=stats["duration_us"] / 1e6,
        p50_ms=stats["p50_us"] / 1000, p90_ms=stats["p90_us"] / 1000, p99_ms=stats["p99_us"] / 1000,
    )


def warm_up(base: str, requests: list[Request], times: int = 10, concurrency: int = 8) -> None:
    """Each request ``times`` over, ``concurrency`` at once, each answer checked: a
    misconfigured server fails here, before anything is measured. Sent one at a time, the
    requests would all reach the one worker the kernel wakes first (a sync gunicorn worker
    answers one connection at a time); sent together they reach every worker, so none
    meets its first request (imports, its database connection, its caches) inside a
    measured turn. Then, where wrk is installed, ``BENCH_WARM_SECONDS`` (2) of wrk load, not
    measured: the first seconds under load are slower on either side, whatever is served."""
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    def send(r: Request) -> None:
        with http_client() as client:
            check_status(client.request(r.method, base + r.path, headers=r.headers, content=r.body or None),
                         expected=range(200, 300))

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for _ in range(times):
            list(pool.map(send, [r for r in requests for _ in range(concurrency)]))
    if shutil.which("wrk") is not None:
        wrk(base, requests, connections=concurrency, seconds=size("BENCH_WARM_SECONDS", 2), what=f"warm-up of {base}")


def merge(results: list[WrkResult]) -> WrkResult:
    """Several turns as one figure: total requests over total time, the worst percentiles
    (wrk gives percentiles per run, not samples; the worst turn is the honest tail)."""
    return WrkResult(
        requests=sum(r.requests for r in results), seconds=sum(r.seconds for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results), p90_ms=max(r.p90_ms for r in results),
        p99_ms=max(r.p99_ms for r in results),
    )


# --- shared state --------------------------------------------------------------------


def routing_state_clear() -> bool:
    """Delete the routing state (``regions:routing:v1``) from the shared cache and forget it
    in this process; True when there was one."""
    _setup()
    from django.core.cache import cache

    from regions import routing

    had = cache.get(routing.CACHE_KEY) is not None
    cache.delete(routing.CACHE_KEY)
    routing.reset_process_state()
    return had
