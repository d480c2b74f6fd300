"""A Slack incoming webhook on loopback, spoken to by the real ``slack_sdk`` client.

Slack itself is unreachable here, so this stands in for it over real HTTP: it accepts
the JSON the SDK posts, answers like Slack does (200 ``ok``; 400 ``invalid_payload`` /
``no_text``; whatever failures a test scripts), and records what was delivered.

    with FakeSlack() as slack:
        settings.SLACK_WEBHOOK_URL = slack.url
        slack.fail_next(3, status=500)
        ...
        assert len(slack.messages) == 1
        assert "Region primary" in slack.messages[0]["text"]

Other areas' tests may import it: ``from tests.ops.fake_slack import FakeSlack``.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeSlack:
    def __init__(self, path: str = "/services/T000/B000/fake-secret") -> None:
        self.path = path
        self.messages: list[dict[str, Any]] = []  # answered 200: what Slack would show
        self.requests: list[dict[str, Any]] = []  # every attempt, with the answer given
        self._failures: list[tuple[int, str]] = []
        self._lock = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- scripting --------------------------------------------------------------------

    def fail_next(self, count: int, *, status: int = 500, body: str = "internal_error") -> None:
        """Answer the next ``count`` posts with this status instead of delivering them."""
        with self._lock:
            self._failures.extend([(status, body)] * count)

    @property
    def url(self) -> str:
        assert self._server is not None, "start the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.path}"

    def texts(self) -> list[str]:
        with self._lock:
            return [m.get("text", "") for m in self.messages]

    def wait_for(self, count: int, *, timeout: float = 30, attempts: bool = False) -> bool:
        """Block until ``count`` messages were delivered (or, with ``attempts``, posts were
        answered at all) — for a real worker posting from another thread; False if that
        did not happen within ``timeout``."""
        seen = self.requests if attempts else self.messages
        with self._lock:
            return self._lock.wait_for(lambda: len(seen) >= count, timeout=timeout)

    def block_text(self, index: int) -> str:
        """Every piece of text in one delivered message's blocks, joined, for assertions."""
        with self._lock:
            message = self.messages[index]
        return "\n".join(_block_strings(message.get("blocks", [])))

    # --- server -----------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> tuple[int, str]:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length)
        if handler.path != self.path:
            return 404, "no_service"
        try:
            payload = json.loads(raw or b"{}")
        except ValueError:
            return 400, "invalid_payload"
        with self._lock:
            if self._failures:
                status, body = self._failures.pop(0)
                self.requests.append({"payload": payload, "status": status})
                self._lock.notify_all()
                return status, body
            if not payload.get("text") and not payload.get("blocks"):
                self.requests.append({"payload": payload, "status": 400})
                return 400, "no_text"
            blocks = payload.get("blocks") or []
            if not isinstance(blocks, list) or any(
                not isinstance(b, dict) or "type" not in b for b in blocks
            ):
                self.requests.append({"payload": payload, "status": 400})
                return 400, "invalid_blocks"
            self.requests.append({"payload": payload, "status": 200})
            self.messages.append(payload)
            self._lock.notify_all()
        return 200, "ok"

    def start(self) -> FakeSlack:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                status, body = fake._handle(self)
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _block_strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        out = []
        for key, item in value.items():
            if key in ("text", "url") and isinstance(item, str):
                out.append(item)
            else:
                out.extend(_block_strings(item))
        return out
    if isinstance(value, list):
        return [s for item in value for s in _block_strings(item)]
    return []
