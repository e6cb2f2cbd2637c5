"""A fault-injecting TCP proxy for the reliability tests and benchmarks.

    with FaultProxy(upstream_port) as proxy:        # passes bytes through
        url = f"http://127.0.0.1:{proxy.port}"
        proxy.slow(1.0)         # each chunk held 1 s in each direction
        proxy.http(503)         # answer every HTTP request with 503 (plain HTTP only)
        proxy.throttle("aws")   # 400 ThrottlingException as AWS writes it; "http": 429
        proxy.reset()           # connections are reset (RST) as soon as the client speaks
        proxy.stall()           # half of the first answer chunk, then nothing, until healed
        proxy.heal()            # back to passing bytes through

It works below the protocol, so the same proxy stands in front of OpenBao
and moto (HTTP), the Azure fake (HTTPS: the TLS handshake goes through it,
so ``http`` cannot be used there, and ``stall`` stops in the handshake) and
the GCP server (gRPC over HTTP/2). A mode applies to new connections, and
``reset``/``http`` also drop the open ones, so a pooled client meets the
fault on its next request instead of keeping a healthy connection.
``stall`` and ``slow`` apply to open connections from their next chunk.

Only loopback: it listens on 127.0.0.1 and forwards to an upstream that
callers keep on 127.0.0.1. ``connections`` and ``faulted`` count what it saw.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from typing import Dict, Optional, Set

from bench.latency_proxy import LoopProxy

PASS, SLOW, HTTP, RESET, STALL = "pass", "slow", "http", "reset", "stall"


class FaultProxy(LoopProxy):
    name = "fault proxy"

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        super().__init__(upstream_host, upstream_port)
        self.mode = PASS
        self.delay = 0.0
        self.status = 503
        self.body = b""
        self.headers: Dict[str, str] = {}
        self.faulted = 0
        self._writers: Set[asyncio.StreamWriter] = set()

    # --- control, from any thread ---

    def heal(self) -> None:
        self._set(PASS)

    def slow(self, delay: float) -> None:
        """Hold every chunk ``delay`` seconds in each direction."""
        self.delay = delay
        self._set(SLOW)

    def http(self, status: int, body: bytes = b"", headers: Optional[Dict[str, str]] = None) -> None:
        """Answer each HTTP request with ``status`` without forwarding it."""
        self.status, self.body, self.headers = status, body, dict(headers or {})
        self._set(HTTP, drop=True)

    def throttle(self, flavour: str = "http", retry_after: Optional[int] = None) -> None:
        """A store's "slow down": 429 (Vault, Azure), or AWS's 400 with a
        ``ThrottlingException`` body, as ``tests/aws_fixtures.FaultProxy`` sends."""
        if flavour == "aws":
            body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
            self.http(400, body, {"Content-Type": "application/x-amz-json-1.1",
                                  "x-amzn-ErrorType": "ThrottlingException"})
        else:
            headers = {"Content-Type": "application/json"}
            if retry_after is not None:
                headers["Retry-After"] = str(retry_after)
            self.http(429, b'{"errors":["rate limit exceeded"]}', headers)

    def reset(self) -> None:
        self._set(RESET, drop=True)

    def stall(self) -> None:
        self._set(STALL)

    def _set(self, mode: str, drop: bool = False) -> None:
        self.mode = mode
        if drop:
            self._loop.call_soon_threadsafe(self._drop_all)

    # --- lifecycle (the loop, thread and listener are LoopProxy's) ---

    def _before_stop(self) -> None:
        self._drop_all()

    # --- connections, on the proxy's loop ---

    def _drop_all(self) -> None:
        for writer in list(self._writers):
            _abort(writer)
        self._writers.clear()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(client_w)
        try:
            if self.mode == RESET:
                self.faulted += 1
                # Wait for the client to speak, so it sees the reset on a request
                # (an established connection), not as a refused connect.
                await asyncio.wait_for(client_r.read(65536), 10)
                _abort(client_w)
                return
            if self.mode == HTTP:
                await self._answer_http(client_r, client_w)
                return
            try:
                up_r, up_w = await asyncio.open_connection(*self.upstream)
            except OSError:
                _abort(client_w)
                return
            self._writers.add(up_w)
            await asyncio.gather(self._pipe(client_r, up_w, upstream=True),
                                 self._pipe(up_r, client_w, upstream=False), return_exceptions=True)
        except (asyncio.TimeoutError, ConnectionError, OSError, asyncio.IncompleteReadError):
            _abort(client_w)
        except asyncio.CancelledError:
            # The proxy is closing: end quietly, its connections are aborted.
            _abort(client_w)
        finally:
            self._writers.discard(client_w)

    async def _answer_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.faulted += 1
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip() or 0)
        if length:
            await asyncio.wait_for(reader.readexactly(length), 10)
        reason = {400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error",
                  502: "Bad Gateway", 503: "Service Unavailable"}.get(self.status, "Error")
        lines = [f"HTTP/1.1 {self.status} {reason}", f"Content-Length: {len(self.body)}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + self.body)
        await writer.drain()
        writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if self.mode == SLOW:
                    await asyncio.sleep(self.delay)
                if self.mode == STALL and not upstream:
                    # Half an answer, then silence: the client has started reading
                    # and must give up on its own read timeout.
                    self.faulted += 1
                    writer.write(data[:max(1, len(data) // 2)])
                    await writer.drain()
                    while self.mode == STALL:
                        await asyncio.sleep(0.05)
                    _abort(writer)
                    return
                writer.write(data)
                await writer.drain()
        finally:
            try:
                writer.close()
            except Exception:
                pass


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a crashed server or a middlebox does."""
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
    except (OSError, RuntimeError):
        pass
