"""The benchmark harness (bench/run.py, bench/benchdb.py): a tiny run of every bench renders
one table and RESULTS, leaves no routing state and no database; an unexpected status from
the server (a redirect too) fails the run and writes nothing.

The benches run in a subprocess, as ``make bench`` runs them, against this suite's
PostgreSQL and Redis, with sizes lowered through their BENCH_* variables."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
sys.path.append(str(BENCH))

import benchdb  # noqa: E402
from table import BenchFailure  # noqa: E402

OURS = ["audit", "entitlements", "notify", "regions", "regions_drill", "usage", "webhooks"]
TINY = {
    "BENCH_WORKERS": "1",
    "BENCH_AUDIT_APPENDS": "20", "BENCH_AUDIT_ROUNDS": "1",
    "BENCH_ENTITLEMENT_SECONDS": "1", "BENCH_ENTITLEMENT_ROUNDS": "1",
    "BENCH_NOTIFY_ALERTS": "5", "BENCH_NOTIFY_ROUNDS": "1",
    "BENCH_REGIONS": "3", "BENCH_REGIONS_CYCLES": "1", "BENCH_REGIONS_FAILOVERS": "2", "BENCH_REGIONS_REQUESTS": "20",
    "BENCH_DRILLS": "1",
    "BENCH_USAGE_BATCHES": "1", "BENCH_USAGE_BATCH_SIZE": "10", "BENCH_USAGE_ROUNDS": "1", "BENCH_USAGE_EVENTS": "100",
    "BENCH_USAGE_COMPANIES": "10", "BENCH_USAGE_COMPANIES_BIG": "20", "BENCH_USAGE_SECONDS": "1",
    "BENCH_WEBHOOK_EVENTS": "6", "BENCH_WEBHOOK_ROUNDS": "1", "BENCH_WEBHOOK_CLIENTS": "2",
}
needs_services = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="the benches run on PostgreSQL (make test and make bench point them at it)",
)


class _Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    status = 200

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Length", "2")
        self.send_header("Location", "http://127.0.0.1:9/elsewhere")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = _answer


@pytest.fixture
def answering() -> Iterator[ThreadingHTTPServer]:
    """A loopback server answering every request with ``server.status``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    server.status = 200  # type: ignore[attr-defined]
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_wrk_fails_the_run_on_any_answer_but_2xx(answering):
    requests = [benchdb.Request("POST", "/api/v1/usage/events/", {"Content-Type": "application/json"}, "{}")]
    result = benchdb.wrk(_url(answering), requests, connections=2, seconds=1)
    assert result.requests > 0 and result.p99_ms > 0

    for status in (307, 404):
        answering.status = status
        with pytest.raises(BenchFailure, match=f"first bad status {status}"):
            benchdb.wrk(_url(answering), requests, connections=2, seconds=1)


@pytest.mark.parametrize("status", [302, 400])
def test_a_checked_http_call_never_follows_a_redirect(answering, status):
    answering.status = status
    with benchdb.http_client() as client, pytest.raises(BenchFailure, match=f"HTTP {status}"):
        benchdb.check_status(client.get(_url(answering) + "/summary"))


def test_a_bench_that_leaves_routing_state_behind_fails_the_run():
    import run
    from django.core.cache import cache

    from regions import routing

    cache.set(routing.CACHE_KEY, {"multi_region": True, "active": "elsewhere", "active_url": "http://127.0.0.1:9"})
    with pytest.raises(BenchFailure, match="left the routing state"):
        run._check_clean("leaky")
    assert cache.get(routing.CACHE_KEY) is None


def _start(names: list[str], results: Path, *, redis_url: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(BENCH / "run.py"), *names],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **TINY, "DEBUG": "false", "BENCH_RESULTS": str(results), "CACHE_URL": redis_url,
             "CELERY_BROKER_URL": redis_url, "BENCH_COMMAND": "pytest tiny run", **env},
    )


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode, out, err


def _bench_databases() -> list[str]:
    import psycopg

    base = os.environ["DATABASE_URL"].rsplit("/", 1)[1]
    with psycopg.connect(os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)", [f"{base}_bench_"])
        return [r[0] for r in rows.fetchall()]


def _redis_cache(url: str):
    """A Django cache on ``url``, keyed as the benches' own (default) cache is."""
    from django.core.cache.backends.redis import RedisCache

    return RedisCache(url, {})


@needs_services
def test_a_tiny_run_of_every_bench_writes_one_table_and_leaves_nothing_behind(tmp_path):
    from regions import routing
    from tests.own_redis import OwnRedis

    # Each run on a Redis of its own: the drill's web process follows the routing state,
    # which the other benches clear and publish, and no other test's state reaches them.
    with OwnRedis() as first, OwnRedis() as second:
        # What bench_regions used to leave behind: writes on this deployment would be 307s.
        _redis_cache(first.url(0)).set(routing.CACHE_KEY, {
            "multi_region": True, "active": "elsewhere", "active_url": "http://127.0.0.1:9",
            "active_healthy": True, "read_policy": "serve", "retry_after": 30,
        })
        # The drill mostly waits on probe intervals: it runs beside the others.
        drill = _start(["regions_drill"], tmp_path / "drill.md", redis_url=second.url(0))
        rest = [n for n in OURS if n != "regions_drill"]
        code, out, err = _finish(_start(rest, tmp_path / "RESULTS.md", redis_url=first.url(0)))
        drill_code, drill_out, drill_err = _finish(drill)
        left = [_redis_cache(r.url(0)).get(routing.CACHE_KEY) for r in (first, second)]

    assert code == 0, out[-3000:] + err[-3000:]
    assert drill_code == 0, drill_out[-3000:] + drill_err[-3000:]
    results = (tmp_path / "RESULTS.md").read_text() + (tmp_path / "drill.md").read_text()
    assert results.startswith("<!-- Generated by bench/run.py")
    assert "| bench | figure | value | baseline (same run) | ratio | goal | pass/fail |" in results
    for name in OURS:
        assert f"\n| {name} | " in results, name  # its rows in the table
        assert f"**{name}** (`bench/bench_{name}.py`)" in results  # how its baseline is made
    assert "- command: `pytest tiny run`" in results
    assert "PostgreSQL 1" in results and "Redis " in results and " cores, " in results
    assert "## Load average" in results
    assert "| usage | batch ingest" in results and "fair COPY + roll-up" in results
    assert left == [None, None]
    assert _bench_databases() == []


FAILING = [
    # Production settings behind no TLS proxy: every API call is a 301 to https.
    ("entitlements", {"DJANGO_ENV": "production", "ALLOWED_HOSTS": "127.0.0.1",
                      "SECRET_KEY": "bench-" + "k7Qx9vLm2pR4sT8wZ1yB3nC6dF0gH5jJ" * 2}, 301),
    # A host the server does not serve: every call is a 400.
    ("webhooks", {"ALLOWED_HOSTS": "bench.invalid"}, 400),
]


@needs_services
def test_an_unexpected_status_from_the_server_fails_the_run_and_writes_nothing(tmp_path):
    from tests.own_redis import OwnRedis

    with OwnRedis() as own:
        procs = [_start([bench], tmp_path / f"{bench}.md", redis_url=own.url(i), **env)
                 for i, (bench, env, _) in enumerate(FAILING)]
        finished = [_finish(p) for p in procs]

    for (bench, _, status), (code, out, err) in zip(FAILING, finished, strict=True):
        assert code == 1, bench + out[-2000:] + err[-2000:]
        assert "BENCH FAILED" in err and f"HTTP {status}" in err, err[-2000:]
        assert not (tmp_path / f"{bench}.md").exists()
    assert _bench_databases() == []


def test_every_bench_module_is_picked_up_with_a_main_and_its_baseline_text():
    import importlib

    import run

    names = run.available()
    assert set(OURS) <= set(names)
    for name in names:
        module = importlib.import_module(f"bench_{name}")
        assert callable(getattr(module, "main", None)), name
        assert len(run._baseline_text(module)) > 80, f"bench_{name} says nothing about its baseline"
