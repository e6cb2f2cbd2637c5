"""The audit log (``settings.audit_log``): one JSON object per line, per
secret access and per change acted on. Never a value.

Access records::

    {"time": "2026-11-25T04:01:02.345Z", "event": "access", "provider": "vault",
     "reference": "${vault:secret/app/db}", "variables": ["DATABASE_URL", "DB_USER"],
     "version": "7", "outcome": "ok", "duration_ms": 21.4}

``outcome`` is ``ok`` or the failure kind (``missing``, ``denied``,
``unavailable``, ``invalid``, ``manifest``), with ``error``, our own message
(names and references, never values). Change records (watch mode)::

    {"time": ..., "event": "change", "action": "restart", "variables": ["DB_PASSWORD"],
     "reason": "DB_PASSWORD (${vault:secret/app/db#password}) changed"}

The file is opened for appending, created 0600 (a symlink, or a file
someone else owns or can write, is refused: ``safefile.open_append``), and written a whole line at
a time under a lock, so concurrent fetches never interleave; ``stderr``
writes to secretrun's standard error instead.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any, Optional


class AuditLog:
    def __init__(self, target: str) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._fd: Optional[int] = None
        if target != "stderr":
            from .safefile import open_append

            self._fd = open_append(target, 0o600)

    def write(self, event: str, **fields: Any) -> None:
        now = time.time()
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z",
                  "event": event}
        record.update(fields)
        line = (json.dumps(record, default=str) + "\n").encode("utf-8")
        with self._lock:
            if self._fd is None:
                sys.stderr.buffer.write(line)
                sys.stderr.flush()
            else:
                os.write(self._fd, line)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
