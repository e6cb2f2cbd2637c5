"""A store that trickles: an HTTP server on 127.0.0.1 that answers every
request, but one byte every ``interval`` seconds, never tripping a
client's per-read timeout. ``healthy(body)`` makes it answer at once with
a JSON body instead (a Vault KV v2 read, say) until ``trickle()``.

    with TrickleServer() as server:
        url = server.url
        ...

One thread per connection, all daemon; ``close()`` stops the listener and
ends every connection (a trickling answer gives up at the next byte).
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Optional


class TrickleServer:
    def __init__(self, interval: float = 0.3, body_size: int = 100_000) -> None:
        self.interval = interval
        self.body_size = body_size
        self.requests = 0
        self._healthy: Optional[bytes] = None
        self._closed = threading.Event()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def healthy(self, body: dict) -> None:
        self._healthy = json.dumps(body).encode()

    def trickle(self) -> None:
        self._healthy = None

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                while not self._closed.is_set():
                    request = b""
                    while b"\r\n\r\n" not in request:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        request += chunk
                    head, _, rest = request.partition(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":", 1)[1])
                    while len(rest) < length:
                        rest += conn.recv(65536)
                    self.requests += 1
                    body = self._healthy
                    if body is not None and b"/sys/internal/ui/mounts/" in head.split(b"\r\n")[0]:
                        # No mount endpoint: the Vault provider reads paths as they are.
                        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                                     b"Content-Length: 13\r\n\r\n{\"errors\":[]}")
                        continue
                    if body is not None:
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                        continue
                    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              b"Content-Length: %d\r\n\r\n" % self.body_size) + b" " * self.body_size
                    for i in range(len(answer)):
                        if self._closed.wait(self.interval):
                            return
                        conn.sendall(answer[i:i + 1])
            except OSError:
                return

    def close(self) -> None:
        self._closed.set()
        self._sock.close()

    def __enter__(self) -> "TrickleServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def kv1_body(data: dict) -> dict:
    """What a Vault KV v1 (or any generic) read returns for ``data``."""
    return {"request_id": "x", "lease_id": "", "renewable": False, "lease_duration": 0,
            "data": data, "wrap_info": None, "warnings": None, "auth": None}
