"""A server on loopback that accepts connections and never says a word: what a wedged SMTP
relay (no 220 greeting) or a hung HTTP API (no status line) looks like to a client."""

from __future__ import annotations

import socketserver
import threading


class _Silent(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server = self.server
        assert isinstance(server, _Server)
        with server.lock:
            server.connections += 1
        server.released.wait(timeout=300)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Silent)
        self.released = threading.Event()
        self.lock = threading.Lock()
        self.connections = 0


class SilentServer:
    """``with SilentServer() as smtp:`` then ``EMAIL_HOST="127.0.0.1", EMAIL_PORT=smtp.port``."""

    def __init__(self) -> None:
        self._server = _Server()
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def connections(self) -> int:
        return self._server.connections

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.released.set()
        self._server.shutdown()
        self._server.server_close()
