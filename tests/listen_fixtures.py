"""Helpers for the listen tests and bench.listen: a real HTTP server under
``secretrun --watch``, a client that sends requests continuously, and the
rotation loop that checks what every response carried."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, List, NamedTuple, Optional, Sequence

from tests.conftest import ROOT

APPS = ROOT / "tests" / "apps"
BIN = Path(sys.executable).parent


def gunicorn_command(workers: int = 2, port: Optional[int] = None) -> List[str]:
    """Flask under gunicorn; ``port``: bind it itself (no listen)."""
    cmd = [str(BIN / "gunicorn"), "-w", str(workers), "--preload", "--graceful-timeout", "5",
           "--chdir", str(APPS), "--log-level", "warning"]
    if port is not None:
        cmd += ["-b", f"127.0.0.1:{port}"]
    return cmd + ["flask_app:app"]


def uvicorn_command() -> List[str]:
    return [str(BIN / "uvicorn"), "--fd", "3", "--app-dir", str(APPS), "--log-level", "warning",
            "--timeout-graceful-shutdown", "5", "asgi_app:app"]


def node_command() -> List[str]:
    return [shutil.which("node") or "/usr/bin/node", str(APPS / "node_app.js")]


class Reply(NamedTuple):
    began: float
    ended: float
    body: Optional[str]     # None: the request failed
    error: str = ""


class Client:
    """Sends GET / to ``port`` continuously (a new connection each time,
    ``interval`` apart) from a thread, until ``stop()`` or ``limit``
    requests."""

    def __init__(self, port: int, interval: float = 0.01, limit: int = 100_000, timeout: float = 10.0) -> None:
        self.port = port
        self.interval = interval
        self.limit = limit
        self.timeout = timeout
        self.replies: List[Reply] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "Client":
        self._thread.start()
        return self

    def stop(self) -> List[Reply]:
        self._stop.set()
        self._thread.join(self.timeout + 5)
        return self.replies

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.replies) < self.limit:
            began = time.monotonic()
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                conn.request("GET", "/", headers={"Connection": "close"})
                answer = conn.getresponse()
                body = answer.read().decode()
                if answer.status != 200:
                    raise OSError(f"HTTP {answer.status}")
                self.replies.append(Reply(began, time.monotonic(), body))
            except (OSError, http.client.HTTPException) as exc:
                self.replies.append(Reply(began, time.monotonic(), None, type(exc).__name__))
            finally:
                conn.close()
            self._stop.wait(self.interval)


def wait_serving(port: int, expect: Optional[str] = None, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/")
            body = conn.getresponse().read().decode()
            conn.close()
            if expect is None or body == expect:
                return
        except (OSError, http.client.HTTPException):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing served {expect!r} on port {port} within {timeout}s")
        time.sleep(0.05)


class Service:
    """``secretrun --watch`` in front of ``command`` (its own session), with
    its log in a file; the pids it names are collected to check that none
    is left over."""

    def __init__(self, tmp: Path, manifest: str, command: Sequence[str], env: Optional[dict] = None,
                 log_level: str = "info") -> None:
        self.tmp = tmp
        self.manifest = tmp / "secretrun.toml"
        self.manifest.write_text(manifest)
        self.err_path = tmp / "secretrun.err"
        self._err = open(self.err_path, "wb")
        full_env = {"PATH": os.environ["PATH"], "HOME": str(tmp), "LANG": "C.UTF-8", "PYTHONPATH": str(ROOT)}
        full_env.update(env or {})
        self.proc = subprocess.Popen([sys.executable, "-m", "secretrun", "-m", str(self.manifest), "--log-level",
                                      log_level, "--", *command], cwd=tmp, env=full_env,
                                     stdin=subprocess.DEVNULL, stdout=self._err, stderr=self._err,
                                     start_new_session=True)

    @property
    def log(self) -> str:
        return self.err_path.read_text(errors="replace")

    def count(self, text: str) -> int:
        return self.log.count(text)

    def wait_log(self, text: str, count: int = 1, timeout: float = 30.0) -> float:
        """Wait for ``count`` occurrences; the time it was seen."""
        deadline = time.monotonic() + timeout
        while self.count(text) < count:
            if self.proc.poll() is not None:
                raise AssertionError(f"secretrun exited ({self.proc.returncode}) before {text!r}:\n{self.log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {count}x {text!r}:\n{self.log}")
            time.sleep(0.01)
        return time.monotonic()

    def pids(self) -> List[int]:
        return sorted({int(p) for p in re.findall(r"\bpid=(\d+)", self.log)})

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        for pid in self.pids():
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if not self._err.closed:
            self._err.close()


def leftovers(pids: Sequence[int]) -> List[int]:
    """Processes still alive whose pid or process group is one of ``pids``."""
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        pgrp = int(fields[2])
        if (int(entry) in pids or pgrp in pids) and fields[0] != "Z":
            alive.append(int(entry))
    return alive


def port_closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


class Rotation(NamedTuple):
    value: str
    written: float       # the store has the new value
    ready: float         # secretrun logged the new command ready (or the restart)
    old_gone: float      # the previous command exited


def rotate_loop(service: Service, write: Callable[[str], None], values: Sequence[str],
                overlap: bool) -> List[Rotation]:
    """Write each value in turn and wait until the supervisor has applied it."""
    out = []
    for i, value in enumerate(values, start=1):
        written = time.monotonic()
        write(value)
        ready = service.wait_log("restarted the command", i)
        old_gone = service.wait_log("the previous command", i) if overlap else ready
        out.append(Rotation(value, written, ready, old_gone))
    return out


def check_replies(replies: Sequence[Reply], first: str, rotations: Sequence[Rotation]) -> dict:
    """Counts for the report: requests, failed ones, and ``stale`` ones: an
    old value in the answer to a request begun after its rotation's old
    command was gone; ``stale_after_ready``: begun after secretrun logged the
    new command ready (the old one may still be finishing what it accepted)."""
    failed = [r for r in replies if r.body is None]
    order = [first] + [r.value for r in rotations]

    def older(r: Reply, when: str) -> bool:
        applied = sum(1 for rot in rotations if getattr(rot, when) <= r.began)
        return r.body not in order or order.index(r.body) < applied

    answered = [r for r in replies if r.body is not None]
    stale = [r for r in answered if older(r, "old_gone")]
    return {"requests": len(replies), "failed": len(failed), "stale": len(stale),
            "stale_after_ready": sum(1 for r in answered if older(r, "ready")),
            "failures": failed[:5], "stale_examples": stale[:5]}
