"""The systemd notification protocol (sd_notify), for ``Type=notify`` units.

One datagram per message to the ``AF_UNIX`` socket named by
``$NOTIFY_SOCKET``: a path, or an abstract-namespace name written with a
leading ``@``. Messages are newline-separated ``KEY=VALUE`` pairs
(``READY=1``, ``RELOADING=1``, ``STOPPING=1``, ``MAINPID=N``, ``WATCHDOG=1``,
``STATUS=...``). ``RELOADING=1`` carries ``MONOTONIC_USEC``, as systemd 253+
asks of ``Type=notify-reload`` services.

Only the supervisor uses this. In exec mode ``NOTIFY_SOCKET`` is passed to
the command untouched, so an app that notifies keeps working; when watching,
secretrun is the unit's main process and notifies for the app, and removes
``NOTIFY_SOCKET`` from the child's environment so the two never disagree.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Mapping, Optional


class Notifier:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.address = environ.get("NOTIFY_SOCKET") or None
        usec = environ.get("WATCHDOG_USEC")
        pid = environ.get("WATCHDOG_PID")
        self.watchdog_interval: Optional[float] = None
        if usec and usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            # Ping at half the deadline, as sd_watchdog_enabled(3) advises.
            self.watchdog_interval = int(usec) / 1e6 / 2

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: object) -> bool:
        """Send one message; False (never an exception) when it cannot be sent."""
        if not self.address:
            return False
        address = self.address
        if address.startswith("@"):
            address = "\0" + address[1:]
        message = "\n".join(f"{key.upper()}={value}" for key, value in fields.items())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(address)
                sock.sendall(message.encode())
            return True
        except OSError:
            return False

    def ready(self, child_pid: Optional[int] = None, status: str = "") -> bool:
        fields: dict = {"READY": 1, "MAINPID": os.getpid()}
        if status:
            fields["STATUS"] = status
        return self.send(**fields)

    def reloading(self, status: str = "") -> bool:
        fields: dict = {"RELOADING": 1, "MONOTONIC_USEC": int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6)}
        if status:
            fields["STATUS"] = status
        return self.send(**fields)

    def stopping(self) -> bool:
        return self.send(STOPPING=1)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)
