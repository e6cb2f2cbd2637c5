"""When is a newly started command ready to serve (``settings.ready``)?

- ``"notify"``: the command sends ``READY=1`` to the ``NOTIFY_SOCKET``
  secretrun gives it (a fresh abstract-namespace datagram socket for each
  start, so a message always comes from the command it was made for). The
  sd_notify protocol: gunicorn, systemd-aware Go and C servers, ``sdnotify``.
- ``"tcp"``: a connection to the first ``listen`` address succeeds; or
  ``"tcp://HOST:PORT"``, an address of the command's own.
- ``"http://127.0.0.1:8080/healthz"`` (or https): a 2xx answer.
- ``"delay:2s"``: a fixed time after the start.

While secretrun holds a listening socket, the kernel completes a TCP
handshake on it before any process accepts, and the old command still
answers requests on it. So ``tcp`` and ``http`` on a held address cannot
tell the new command from the old: they prove only that the new command
survived one probe interval. ``notify`` is exact; ``delay`` is the fallback
for servers that cannot notify; ``tcp``/``http`` fit an address the command
binds itself (an admin port with ``SO_REUSEPORT``, say).
"""

from __future__ import annotations

import os
import secrets
import socket
from typing import Any, Dict, NamedTuple, Optional

PROBE_INTERVAL = 0.1   # tcp and http: how often to try


class Ready(NamedTuple):
    kind: str                   # notify | tcp | http | delay
    target: str = ""            # tcp://host:port or the URL; "" = the first listen address
    delay: float = 0.0

    def describe(self) -> str:
        if self.kind == "delay":
            return f"delay:{self.delay:g}s"
        return self.target or self.kind


def parse(text: object) -> Ready:
    """``settings.ready``; ``ValueError`` saying why not."""
    if not isinstance(text, str) or not text:
        raise ValueError("must be \"notify\", \"tcp\", \"tcp://HOST:PORT\", an http(s):// URL or \"delay:DURATION\"")
    if text == "notify":
        return Ready("notify")
    if text == "tcp":
        return Ready("tcp")
    if text.startswith("tcp://"):
        from .sockets import parse as parse_address

        parse_address(text)      # the same syntax as listen
        return Ready("tcp", text)
    if text.startswith(("http://", "https://")):
        from urllib.parse import urlsplit

        if not urlsplit(text).hostname:
            raise ValueError(f"{text!r} has no host")
        return Ready("http", text)
    if text.startswith("delay:"):
        from .units import parse_duration

        seconds = parse_duration(text[len("delay:"):])
        if seconds is None:
            raise ValueError(f"{text!r}: the delay is not a duration (like \"delay:2s\")")
        return Ready("delay", delay=seconds)
    raise ValueError(f"{text!r} is not \"notify\", \"tcp\", \"tcp://HOST:PORT\", an http(s):// URL "
                     "or \"delay:DURATION\"")


class Probe:
    """The readiness check of one started command. ``env()`` goes into the
    command's environment; ``check(now)`` is called by the supervisor's
    loop and is True once the command is ready."""

    def __init__(self, spec: Ready, listeners, started: float) -> None:
        self.spec = spec
        self.started = started
        self.next_try = started
        self.notify_sock: Optional[socket.socket] = None
        self.notify_name = ""
        self.status = ""
        self._ready = False
        self.family: int = socket.AF_INET
        self.where: Any = None
        if spec.kind == "notify":
            self.notify_name = f"@secretrun-{os.getpid()}-{secrets.token_hex(8)}"
            self.notify_sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self.notify_sock.bind("\0" + self.notify_name[1:])
            self.notify_sock.setblocking(False)
        elif spec.kind == "tcp":
            from .sockets import parse as parse_address

            address = parse_address(spec.target) if spec.target else listeners.first
            self.family, self.where = address.probe_target

    def fileno(self) -> Optional[int]:
        return self.notify_sock.fileno() if self.notify_sock is not None else None

    def env(self) -> Dict[str, str]:
        return {"NOTIFY_SOCKET": self.notify_name} if self.notify_name else {}

    def deadline(self) -> float:
        if self.spec.kind == "notify":
            return self.started + 3600   # the selector wakes the loop
        if self.spec.kind == "delay":
            return self.started + self.spec.delay
        return self.next_try

    def check(self, now: float) -> bool:
        if self._ready:
            return True
        kind = self.spec.kind
        if kind == "notify":
            self._ready = self._read_notify()
        elif kind == "delay":
            self._ready = now >= self.started + self.spec.delay
        elif now >= self.next_try:
            self.next_try = now + PROBE_INTERVAL
            self._ready = self._tcp() if kind == "tcp" else self._http()
        return self._ready

    def _read_notify(self) -> bool:
        ready = False
        sock = self.notify_sock
        if sock is None:      # only the notify kind has one
            return False
        for _ in range(64):
            try:
                data = sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            for line in data.decode("utf-8", "replace").splitlines():
                key, _, value = line.partition("=")
                if key == "READY" and value == "1":
                    ready = True
                elif key == "STATUS":
                    self.status = value[:200]
        return ready

    def _tcp(self) -> bool:
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        sock.settimeout(0.5)
        try:
            sock.connect(self.where)
            return True
        except OSError:
            return False
        finally:
            sock.close()

    def _http(self) -> bool:
        import urllib.error
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # loopback: never a proxy
        try:
            with opener.open(self.spec.target, timeout=1.0) as answer:
                return 200 <= answer.status < 300
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def close(self) -> None:
        if self.notify_sock is not None:
            self.notify_sock.close()
            self.notify_sock = None
