"""``make demo`` for real (scripts/demo.sh on the embedded defaults, ports moved by the
environment): the banner names the ports in use, and the logs carry no noise: no kombu
"No hostname was supplied", each request logged once, a console e-mail at INFO, no
/favicon.ico 404."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _wait_for(check, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_make_demo_prints_its_real_ports_and_logs_each_thing_once(tmp_path):
    port, primary, secondary = _free_ports(3)
    var = tmp_path / "var"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "VAR_DIR": str(var),
        "PORT": str(port),
        "DEMO_PRIMARY_REGION_PORT": str(primary),
        "DEMO_SECONDARY_REGION_PORT": str(secondary),
    }
    demo = subprocess.Popen(
        ["bash", "scripts/demo.sh"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(demo.stdout.readline, "")), daemon=True)
    reader.start()
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert demo.poll() is None, "".join(lines)
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        _wait_for(up, "the demo web server")
        assert httpx.get(f"{base}/favicon.ico").status_code == 204
        assert httpx.get(f"{base}/no-such-page").status_code == 404
        assert httpx.get(f"{base}/api/v1/usage/summary/").status_code == 401
        worker_log = var / "worker.log"
        # The welcome alert demo_data queued goes out by e-mail on the console backend.
        _wait_for(lambda: worker_log.exists() and "Subject:" in worker_log.read_text(), "the console e-mail")
        _wait_for(lambda: any('"GET /api/v1/usage/summary/' in line for line in lines), "the request log")
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):  # then whatever of the group outlived the script
            try:
                os.killpg(demo.pid, sig)
            except ProcessLookupError:
                break
            try:
                demo.wait(timeout=30)
            except subprocess.TimeoutExpired:  # a worker still finishing its task: no need to wait
                pass
        demo.wait(timeout=10)
        reader.join(timeout=10)

    out = "".join(lines)
    assert f"Ports: PORT={port} DEMO_PRIMARY_REGION_PORT={primary} DEMO_SECONDARY_REGION_PORT={secondary}" in out
    assert f"curl -XPOST 127.0.0.1:{primary}/_control/fail" in out
    assert f"stand-in regions on :{primary}" in out and f"and :{secondary};" in out
    assert f"Primary (eu-west) on :{primary} (active)" in out
    for default in ("127.0.0.1:8000", "127.0.0.1:8101", ":8102"):
        assert default not in out

    worker = (var / "worker.log").read_text()
    beat = (var / "beat.log").read_text()
    for log in (out, worker, beat):
        assert "No hostname was supplied" not in log
    assert "WARNING" not in worker, [line for line in worker.splitlines() if "WARNING" in line]
    # The e-mail is one record: its first line carries the level.
    assert re.search(r"INFO/ForkPoolWorker-\d+\] Content-Type: text/plain", worker), worker
    # One line per request, the access log's; not a second "Not Found:" / "Unauthorized:" record.
    assert sum("/no-such-page" in line for line in lines) == 1
    assert sum('"GET /api/v1/usage/summary/' in line for line in lines) == 1
    assert not [line for line in lines if line.startswith(("Not Found:", "Unauthorized:")) or "django.request" in line]
    assert [line for line in lines if "favicon.ico" in line][0].rstrip().endswith('" 204 0')
