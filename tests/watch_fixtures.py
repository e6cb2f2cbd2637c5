"""Helpers for the supervisor tests: the test child's records, a real
``secretrun --watch`` process (plain, under a pseudo-terminal, or in a new
PID namespace), fake sessions for the poller, and bounded waiting."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

from tests.conftest import ROOT

CHILD_APP = str(ROOT / "tests" / "child_app.py")
PY = sys.executable


def rotate(path: Path, text: str) -> None:
    """Replace a file's content atomically, as a rotation does, so no poll
    catches it half written."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def wait_for(condition: Callable[[], object], timeout: float = 10.0, what: str = "condition"):
    """Poll ``condition`` every 10 ms; its first truthy result, or fail."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


class Records:
    """What ``tests/child_app.py`` wrote into its directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def starts(self) -> List[dict]:
        out = []
        for path in self.dir.glob("*.start.json"):
            try:
                out.append((path.stat().st_mtime_ns, json.loads(path.read_text())))
            except (OSError, ValueError):
                continue
        return [record for _, record in sorted(out, key=lambda item: item[0])]

    def wait_starts(self, count: int, timeout: float = 10.0) -> List[dict]:
        return wait_for(lambda: (lambda s: s if len(s) >= count else None)(self.starts()),
                        timeout, f"{count} child start(s)")

    def events(self, pid: Optional[int] = None, cont: bool = False) -> List[str]:
        """Signals the child recorded. SIGCONT is left out unless ``cont``:
        every stop sends one after the stop signal (a stopped process could
        not act on it), and the child may handle the two in either order."""
        try:
            lines = (self.dir / "events.log").read_text().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            p, _, name = line.partition(" ")
            if (pid is None or int(p) == pid) and (cont or name != "SIGCONT"):
                out.append(name)
        return out

    def wait_event(self, pid: int, name: str, count: int = 1, timeout: float = 10.0) -> List[str]:
        cont = name == "SIGCONT"
        return wait_for(lambda: self.events(pid, cont).count(name) >= count and self.events(pid, cont),
                        timeout, f"{count}x {name} in child {pid}")


def manifest_text(secrets_dir: Path, settings: Dict[str, str] = None, env: str = None,
                  provider: str = None) -> str:
    """A watch manifest over the ``file`` provider (or the given provider block)."""
    lines = ["version = 1", "[settings]", "watch = true"]
    merged = {"poll_interval": '"100ms"', "kill_timeout": '"3s"'}
    merged.update(settings or {})
    lines += [f"{k} = {v}" for k, v in merged.items()]
    lines += [provider or f'[providers.files]\ntype = "file"\npath = "{secrets_dir}"']
    lines += ["[env]", env or 'SECRET = "${files:secret}"']
    return "\n".join(lines) + "\n"


def base_env(tmp_path: Path, extra: Optional[dict] = None) -> dict:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "PYTHONPATH": str(ROOT)}
    env.update(extra or {})
    return env


class Watched:
    """``secretrun --watch -- python tests/child_app.py --dir REC ARGS`` as a
    real process in its own session (so nothing reaches the test runner).

    ``tty=True`` runs it as the session leader of a fresh pseudo-terminal
    (its controlling terminal), as an interactive shell would; ``master``
    is the terminal side the test "types" into.
    """

    def __init__(self, tmp_path: Path, manifest: str, child_args=(), *, command=None,
                 env: Optional[dict] = None, tty: bool = False, prefix=(),
                 log_level: str = "debug", preexec=None) -> None:
        self.tmp = tmp_path
        self.records = Records(tmp_path / "rec")
        path = tmp_path / "secretrun.toml"
        path.write_text(textwrap.dedent(manifest))
        cmd = command or [PY, CHILD_APP, "--dir", str(self.records.dir), *child_args]
        argv = [*prefix, PY, "-m", "secretrun", "-m", str(path), "--log-level", log_level, "--", *cmd]
        self.stderr_path = tmp_path / "secretrun.err"
        self.stdout_path = tmp_path / "secretrun.out"
        self.master: Optional[int] = None
        self._err = open(self.stderr_path, "wb")
        if tty:
            import pty
            import termios

            master, slave = pty.openpty()
            self.master = master

            def become_terminal_owner():
                os.setsid()
                import fcntl
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)
                if preexec:
                    preexec()

            self.proc = subprocess.Popen(argv, cwd=tmp_path, env=base_env(tmp_path, env), stdin=slave,
                                         stdout=slave, stderr=self._err, preexec_fn=become_terminal_owner)
            os.close(slave)
            self._out = None
        else:
            self._out = open(self.stdout_path, "wb")
            self.proc = subprocess.Popen(argv, cwd=tmp_path, env=base_env(tmp_path, env),
                                         stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err,
                                         start_new_session=preexec is None, preexec_fn=preexec)
        self.pid = self.proc.pid
        self._tty_out = b""

    # --- interaction ---

    def send(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def read_tty(self, until: bytes, timeout: float = 10.0) -> bytes:
        """Terminal output so far, reading until ``until`` appears."""
        import select

        deadline = time.monotonic() + timeout
        while until not in self._tty_out:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {until!r} on the terminal; got {self._tty_out!r}")
            ready, _, _ = select.select([self.master], [], [], min(left, 0.1))
            if ready:
                try:
                    self._tty_out += os.read(self.master, 65536)
                except OSError:
                    break
        return self._tty_out

    def wait(self, timeout: float = 15.0) -> int:
        return self.proc.wait(timeout)

    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    @property
    def stdout(self) -> bytes:
        return self.stdout_path.read_bytes() if self._out else self._tty_out

    def wait_log(self, text: str, count: int = 1, timeout: float = 10.0) -> str:
        return wait_for(lambda: self.stderr.count(text) >= count and self.stderr, timeout,
                        f"{text!r} in secretrun's log")

    def close(self) -> None:
        """Stop by pid: SIGTERM, wait, SIGKILL; then the children it left."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for record in self.records.starts():
            try:
                os.killpg(record["pgid"], signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.master is not None:
            os.close(self.master)
            self.master = None
        self._err.close()
        if self._out:
            self._out.close()


def proc_state(pid: int) -> Optional[str]:
    """The state letter of a process (R, S, Z...), None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rsplit(")", 1)[1].split()[0]


def proc_ppid(pid: int) -> Optional[int]:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return int(text.rsplit(")", 1)[1].split()[1])


def children_of(pid: int) -> List[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


# --- fakes for the poller and in-process supervisor tests ---


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeLog:
    """Collects ``(level, message, fields)``; ``text`` is everything, for
    canary checks."""

    def __init__(self) -> None:
        self.records: List[tuple] = []

    def _add(self, level, msg, fields):
        self.records.append((level, msg, fields))

    def debug(self, msg, **f): self._add("debug", msg, f)
    def info(self, msg, **f): self._add("info", msg, f)
    def notice(self, msg, **f): self._add("notice", msg, f)
    def warning(self, msg, **f): self._add("warning", msg, f)
    def error(self, msg, **f): self._add("error", msg, f)

    def at(self, level: str) -> List[str]:
        return [m for lv, m, _ in self.records if lv == level]

    @property
    def text(self) -> str:
        return "\n".join(f"{lv} {m} {f}" for lv, m, f in self.records)


def rendered(env: Dict[str, str], files: Optional[Dict[str, bytes]] = None,
             on_change: Optional[Dict[str, str]] = None, default: str = "restart"):
    """A ``ChildEnv`` as the core's session returns it: ``files`` by
    variable, delivered at the path that variable holds in ``env``."""
    from secretrun.childenv import ChildEnv

    names = tuple(env)
    policy = {name: default for name in names}
    policy.update(on_change or {})
    return ChildEnv(dict(env), dict(files or {}), policy, list(env.values()),
                    {name: f"${{test:{name.lower()}}}" for name in names}, {n: None for n in names}, names,
                    paths={name: env[name] for name in files or {}})


def settings(**overrides):
    from secretrun.manifest import Settings

    base = dict(watch=True, poll_interval=1.0, kill_timeout=2.0)
    base.update(overrides)
    return Settings(**base)


class FakeSession:
    """The core's Session contract with scripted outcomes: each
    ``refresh()`` takes the next item of ``script`` (a ChildEnv, an
    exception, or a function returning either), repeating the last one when
    the script runs out."""

    def __init__(self, settings, first, script=(), expiry=None) -> None:
        self.settings = settings
        self.rendered = first
        self.script = list(script)
        self.expiry = expiry
        self.refreshes = 0
        self.keepalives = 0
        self.revoked = 0
        self.closed = 0
        self._last = first

    def resolve(self):
        return self.rendered

    def refresh(self):
        self.refreshes += 1
        item = self.script.pop(0) if self.script else self._last
        self._last = item
        if callable(item):
            item = item()
        if isinstance(item, BaseException):
            raise item
        self.rendered = item
        return item

    def keepalive(self) -> None:
        self.keepalives += 1

    def next_expiry(self):
        return self.expiry() if callable(self.expiry) else self.expiry

    def revoke_leases(self) -> None:
        self.revoked += 1

    def close(self) -> None:
        self.closed += 1


def outage(kind: str = "UNAVAILABLE"):
    from secretrun.errors import Kind, Problem, ResolutionError

    return ResolutionError([Problem(getattr(Kind, kind), "store at http://127.0.0.1:1 did not answer",
                                    provider="vault", reference="${vault:secret/db}")],
                           title="could not refresh secrets")
