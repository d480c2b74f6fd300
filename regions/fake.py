"""A stand-in region: a small stdlib HTTP server for demos, game days, tests and benchmarks.

    GET  /healthz            200 {"status": "ok", "region": ...}; 503 when failing;
                             never answers while hanging (until told to recover)
    POST /_control/fail      start failing           POST /_control/hang   start hanging
    POST /_control/recover   healthy again           GET  /_control/state  the mode
    anything else            200 {"region": ..., "method": ..., "path": ...}, counted in
                             ``requests`` (so a drill can see writes land on it)

``delay`` (seconds) is added before every health answer, to model a distant region.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = ("ok", "fail", "hang")


class _Handler(BaseHTTPRequestHandler):
    server: FakeRegionServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        if self.server.verbose:
            super().log_message(format, *args)

    def _reply(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _drain(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _health(self) -> None:
        server = self.server
        server.health_hits += 1
        if server.delay:
            time.sleep(server.delay)
        if server.mode == "hang":
            # Hold the connection until recovered or the server stops.
            server.recovered.wait(timeout=server.hang_limit)
        if server.mode == "fail":
            self._reply(503, {"status": "fail", "region": server.name})
        else:
            self._reply(200, {"status": "ok", "region": server.name})

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/healthz":
            return self._health()
        if path == "/_control/state":
            return self._reply(200, {"mode": self.server.mode, "region": self.server.name})
        return self._other()

    def do_POST(self):
        path = self.path.split("?")[0]
        if path.startswith("/_control/"):
            self._drain()
            action = path.removeprefix("/_control/")
            if action not in ("fail", "hang", "recover"):
                return self._reply(404, {"error": f"unknown action {action!r}"})
            self.server.set_mode("ok" if action == "recover" else action)
            return self._reply(200, {"mode": self.server.mode, "region": self.server.name})
        return self._other()

    def _other(self):
        body = self._drain()
        self.server.record(self.command, self.path, body)
        self._reply(200, {"region": self.server.name, "method": self.command, "path": self.path})

    do_PUT = do_PATCH = do_DELETE = _other


class FakeRegionServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        *,
        name: str = "fake",
        host: str = "127.0.0.1",
        port: int = 0,
        delay: float = 0.0,
        hang_limit: float = 30.0,
        verbose: bool = False,
    ):
        super().__init__((host, port), _Handler)
        self.name = name
        self.delay = delay
        self.hang_limit = hang_limit
        self.verbose = verbose
        self.mode = "ok"
        self.recovered = threading.Event()
        self.recovered.set()
        self.health_hits = 0
        self.requests: list[tuple[str, str, bytes, float]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        assert isinstance(host, str)  # an AF_INET server's address is a str
        return f"http://{host}:{port}"

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(mode)
        self.mode = mode
        if mode == "hang":
            self.recovered.clear()
        else:
            self.recovered.set()

    def record(self, method: str, path: str, body: bytes) -> None:
        with self._lock:
            self.requests.append((method, path, body, time.time()))

    def start(self) -> FakeRegionServer:
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() returns in 50 ms, not the default 500
            name=f"fake-region-{self.name}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.recovered.set()
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeRegionServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
