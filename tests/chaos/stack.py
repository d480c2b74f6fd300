"""The whole service on loopback, with parts of its own that a chaos test may kill.

A private PostgreSQL cluster (``initdb`` in a temporary folder, as the ``postgres`` user when
run as root, which initdb refuses), a private ``redis-server``, optionally a private
RabbitMQ node, then gunicorn, one Celery worker and beat, all on free ports, plus the
stand-ins for the outside (Slack, Stripe, an SMTP server that never answers, two regions).
The shared PostgreSQL, Redis and RabbitMQ of the machine are never touched.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.own_redis import OwnRedis, free_port, port_open

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
WEBHOOK_SECRET = "whsec_chaos"


def eventually(
    predicate: Callable[[], Any], *, timeout: float = 30, what: str | Callable[[], str] = ""
) -> Any:
    """Poll ``predicate`` until it returns something true (bounded); fail saying ``what``
    (a callable is asked at the end, to describe what was seen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"not within {timeout:g} s: {said or predicate}")
        time.sleep(0.2)


class OwnPostgres:
    """A PostgreSQL cluster of our own: ``start()``, ``stop()`` (immediate: a crash, not a
    goodbye), on one port for its whole life so clients find it again after a restart."""

    def __init__(self, base: Path) -> None:
        self.port = free_port()
        self.base = base / "pg"
        self.base.mkdir()
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user:
            uid = pwd.getpwnam(self._user).pw_uid
            os.chmod(base, 0o755)
            os.chown(self.base, uid, -1)
        self._run(PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    def _run(self, *args: Any) -> None:
        command = [str(a) for a in args]
        if self._user:
            command = ["runuser", "-u", self._user, "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=60)

    def url(self, db: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-o", options, "-l", self.log, "-w", "start")

    def stop(self) -> None:
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")

    def sql(self, db: str, query: str, params: tuple | list = ()) -> list[tuple]:
        with psycopg.connect(self.url(db), autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []


class OwnRabbit:
    """A RabbitMQ node of our own (its own name, ports, cookie, data), beside the shared one."""

    def __init__(self, base: Path) -> None:
        self.port = free_port()
        self.dist_port = free_port()
        self.base = base / "rabbit"
        self.base.mkdir()
        self.name = f"chaos{self.port}@localhost"
        (self.base / "enabled_plugins").write_text("[].\n")
        (self.base / "rabbitmq.conf").write_text("loopback_users = none\n")
        self.process: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0:
            shutil.chown(self.base, "rabbitmq")

    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.base),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq"),
            "RABBITMQ_PID_FILE": str(self.base / "rabbit.pid"),
        }

    def start(self) -> None:
        # The server script itself, not the /usr/sbin wrapper (which su's into a session of its
        # own that a signal to our process group would not reach).
        command = ["/usr/lib/rabbitmq/bin/rabbitmq-server"]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "rabbitmq", "--", *command]
        self.process = subprocess.Popen(
            command, env=self._env(), stdout=open(self.base / "stdout.log", "ab"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        eventually(lambda: port_open(self.port), timeout=60, what="RabbitMQ listening")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None
        eventually(lambda: not port_open(self.port), timeout=30, what="RabbitMQ stopped")


class Process:
    """One of our processes (gunicorn, worker, beat): started with the stack's environment,
    its output in a log file, stopped with a signal of the test's choosing."""

    def __init__(self, name: str, command: list[str], log: Path) -> None:
        self.name = name
        self.command = command
        self.log = log
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            self.command, cwd=ROOT, env=env, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        self.popen = None


class Stack:
    DB = "transbot_chaos"

    def __init__(self, *, broker: str, fakes: dict[str, Any]) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="tb-chaos-"))
        self.fakes = fakes
        self.broker_kind = broker
        self.postgres = OwnPostgres(self.base)
        self.redis = OwnRedis()
        self.rabbit = OwnRabbit(self.base) if broker == "rabbitmq" else None
        self.web_port = free_port()
        (self.base / "var").mkdir()
        self.processes = {
            "web": Process(
                "web",
                [str(VENV_BIN / "gunicorn"), "trans_bot.wsgi", "--workers", "2", "--bind",
                 f"127.0.0.1:{self.web_port}", "--timeout", "60", "--graceful-timeout", "5"],
                self.base / "web.log",
            ),
            "worker": Process(
                "worker",
                [str(VENV_BIN / "celery"), "-A", "trans_bot", "worker", "--concurrency", "2", "--loglevel", "INFO",
                 "--hostname", f"chaos-{self.web_port}@%h", "--without-mingle", "--without-gossip"],
                self.base / "worker.log",
            ),
            "beat": Process(
                "beat",
                [str(VENV_BIN / "celery"), "-A", "trans_bot", "beat", "--loglevel", "INFO",
                 "--schedule", str(self.base / "beat-schedule")],
                self.base / "beat.log",
            ),
        }
        self.overrides: dict[str, str] = {}
        self.token = ""
        self.api_key = ""

    # --- environment --------------------------------------------------------------------

    @property
    def broker_url(self) -> str:
        return self.rabbit.url() if self.rabbit else self.redis.url(0)

    def env(self, **extra: str) -> dict[str, str]:
        slack, stripe_fake, regions = self.fakes["slack"], self.fakes["stripe"], self.fakes["regions"]
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.base),
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "trans_bot.settings",
            "DEBUG": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "VAR_DIR": str(self.base / "var"),
            "DATABASE_URL": self.postgres.url(self.DB),
            "DATABASE_CONNECT_TIMEOUT": "2",
            "CACHE_URL": self.redis.url(1),
            "CACHE_TIMEOUT_SECONDS": "1",
            "CELERY_BROKER_URL": self.broker_url,
            "SITE_URL": f"http://127.0.0.1:{self.web_port}",
            "REGION_NAME": "primary",
            "SLACK_WEBHOOK_URL": slack.url,
            "OPS_EMAILS": "ops@chaos.test",
            "EMAIL_URL": "consolemail://",
            "EMAIL_TIMEOUT": "3",
            "NOTIFY_RETRY_BASE_SECONDS": "2",
            "NOTIFY_RETRY_MAX_SECONDS": "4",
            "NOTIFY_SENDING_TIMEOUT": "2",
            "STRIPE_SECRET_KEY": stripe_fake.api_key,
            "STRIPE_API_BASE": stripe_fake.url,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STRIPE_MAX_NETWORK_RETRIES": "0",
            "STRIPE_WEBHOOK_SWEEP_AFTER_SECONDS": "3",
            "USAGE_INGEST_RATE": "100000/min",
            "REGIONS_PRIMARY_URL": regions[0].base_url,
            "REGIONS_SECONDARY_URL": regions[1].base_url,
            **self.overrides,
            **extra,
        }

    # --- life -------------------------------------------------------------------------

    def start(self) -> Stack:
        self.postgres.start()
        self.postgres.sql("postgres", f"CREATE DATABASE {self.DB}")
        self.redis.start()
        if self.rabbit:
            self.rabbit.start()
        self.manage("migrate", "--noinput")
        seed = (Path(__file__).parent / "seed.py").read_text()
        seeded = json.loads(self.manage("shell", "-c", seed).splitlines()[-1])
        self.token, self.api_key = seeded["token"], seeded["api_key"]
        for process in self.processes.values():
            process.start(self.env())
        eventually(lambda: port_open(self.web_port), timeout=30, what="gunicorn listening")
        eventually(lambda: "ready." in self.processes["worker"].output(), timeout=60, what="worker ready")
        return self

    def close(self) -> None:
        for process in self.processes.values():
            process.stop(signal.SIGKILL)
        if self.rabbit:
            self.rabbit.stop()
        self.redis.close()
        try:
            self.postgres.stop()
        except subprocess.CalledProcessError:
            pass
        if not os.environ.get("CHAOS_KEEP"):
            shutil.rmtree(self.base, ignore_errors=True)

    def manage(self, *args: str, **extra: str) -> str:
        done = subprocess.run(
            [str(VENV_BIN / "python"), "manage.py", *args], cwd=ROOT, env=self.env(**extra),
            capture_output=True, text=True, timeout=300,
        )
        if done.returncode:
            raise AssertionError(f"manage.py {args[0]} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def restart(self, name: str, **overrides: str) -> None:
        """Stop one process (SIGTERM) and start it again, with extra settings if given."""
        process = self.processes[name]
        process.stop()
        self.overrides.update(overrides)
        process.start(self.env())
        if name == "worker":
            eventually(lambda: process.output().count("ready.") >= 1 and process.alive, timeout=60, what="worker")

    @contextmanager
    def broker_down(self) -> Iterator[None]:
        """The broker stopped, then started again (empty, as a restart without persistence)."""
        if self.rabbit:
            self.rabbit.stop()
            try:
                yield
            finally:
                self.rabbit.start()
        else:
            self.redis.stop()
            try:
                yield
            finally:
                self.redis.start()

    def purge(self) -> None:
        """Drop every queued message (what a broker restart without persistence loses;
        RabbitMQ keeps persistent messages over a restart, so a test that needs them lost
        says so)."""
        subprocess.run(
            [str(VENV_BIN / "celery"), "-A", "trans_bot", "purge", "-f"], cwd=ROOT, env=self.env(),
            check=True, capture_output=True, timeout=60,
        )

    # --- talking to it ----------------------------------------------------------------

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{self.web_port}", timeout=30)

    def sql(self, query: str, params: tuple | list = ()) -> list[tuple]:
        return self.postgres.sql(self.DB, query, params)

    def value(self, query: str, params: tuple | list = ()) -> Any:
        rows = self.sql(query, params)
        return rows[0][0] if rows else None

    def shell(self, code: str) -> str:
        """Run Python in a management shell of the stack (a service call, as a task would)."""
        return self.manage("shell", "-c", code)
