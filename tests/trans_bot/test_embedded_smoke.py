"""The demo path: with no DATABASE_URL, broker or cache configured, the back office
migrates, loads its demo data and serves on SQLite, a filesystem broker and a file cache."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_embedded_configuration_boots_and_serves(tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "VAR_DIR": str(tmp_path / "var")}
    run = dict(cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    migrate = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], **run)
    assert migrate.returncode == 0, migrate.stderr
    assert (tmp_path / "var" / "trans_bot.sqlite3").exists()
    demo = subprocess.run([sys.executable, "manage.py", "demo_data"], **run)
    assert demo.returncode == 0, demo.stderr
    assert "Admin login: ops / transbot-demo" in demo.stdout

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{base}/healthz", timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read()
                assert time.monotonic() < deadline, "the embedded server did not come up"
                time.sleep(0.2)
        assert health.status_code == 200, health.text
        assert health.json()["checks"] == {"database": "ok", "cache": "ok", "broker": "ok"}

        with httpx.Client(base_url=base, timeout=10) as browser:
            login_page = browser.get("/admin/login/")
            assert login_page.status_code == 200
            token = browser.cookies["csrftoken"]
            logged_in = browser.post(
                "/admin/login/?next=/admin/",
                data={"username": "ops", "password": "transbot-demo", "csrfmiddlewaretoken": token},
                headers={"Referer": f"{base}/admin/login/"},
                follow_redirects=True,
            )
            assert logged_in.status_code == 200
            assert "Trans Bot back office" in logged_in.text and "executive-dashboard" in logged_in.text
    finally:
        server.terminate()
        server.wait(timeout=10)
