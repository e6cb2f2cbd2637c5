"""Signals no supervisor may die of, and a stop request that comes while the
secrets are still being resolved: as a plain process and as PID 1 (a new PID
namespace, as in a container)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from secretrun.supervise import FORWARDED, OWN
from tests.conftest import assert_no_canary
from tests.process.test_supervise import _unshare_works
from tests.watch_fixtures import Watched, base_env, children_of, manifest_text, wait_for

# The signals that used to kill a supervisor that is not PID 1 (and were
# dropped by one that is), each of which must now reach the command once.
NEWLY_FORWARDED = [signal.SIGALRM, signal.SIGVTALRM, signal.SIGPROF, signal.SIGIO, signal.SIGPWR,
                   signal.SIGXCPU, signal.SIGSTKFLT, signal.SIGURG, signal.SIGRTMIN, signal.SIGRTMAX]
UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc"]
needs_unshare = pytest.mark.skipif(bool(_unshare_works()), reason=_unshare_works() or "ok")


def test_the_table_covers_every_catchable_signal():
    catchable = set(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}
    assert catchable <= set(FORWARDED) | OWN
    assert not set(FORWARDED) & OWN
    assert set(NEWLY_FORWARDED) <= set(FORWARDED)


@pytest.fixture
def watched(tmp_path, secrets_dir):
    made = []

    def start(prefix=()):
        w = Watched(tmp_path, manifest_text(secrets_dir), prefix=list(prefix))
        made.append(w)
        return w

    yield start
    for w in made:
        w.close()


def _forwards_each_signal(w, supervisor_pid: int) -> None:
    (c,) = w.records.wait_starts(1)
    for sig in NEWLY_FORWARDED:
        os.kill(supervisor_pid, sig)
        w.records.wait_event(c["pid"], signal.Signals(sig).name)
    assert w.records.events(c["pid"]) == [signal.Signals(s).name for s in NEWLY_FORWARDED]
    assert w.alive() and len(w.records.starts()) == 1
    os.kill(supervisor_pid, signal.SIGTERM)
    assert w.wait() == 143


def test_each_signal_reaches_the_command_and_the_supervisor_survives(watched):
    w = watched()
    _forwards_each_signal(w, w.pid)
    assert_no_canary(w.stderr, w.stdout)


@needs_unshare
def test_each_signal_reaches_the_command_from_pid1(watched):
    w = watched(UNSHARE)
    (c,) = w.records.wait_starts(1)
    assert c["ppid"] == 1
    supervisor = wait_for(lambda: children_of(w.pid), what="secretrun under unshare")[0]
    _forwards_each_signal(w, supervisor)


# --- a stop request during resolution ------------------------------------------


class SlowStore:
    """A TCP server that accepts connections and never answers: a store that
    takes as long as the client's timeout."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connected = threading.Event()
        self.held = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            self.connected.set()

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()
        self.thread.join(5)


@pytest.fixture
def slow_store():
    store = SlowStore()
    yield store
    store.close()


def _slow_manifest(tmp_path, port: int, watch: bool):
    path = tmp_path / "secretrun.toml"
    path.write_text(f"""version = 1
[settings]
watch = {str(watch).lower()}
timeout = "20s"
retries = 0
[providers.vault]
type = "vault"
address = "http://127.0.0.1:{port}"
[env]
SECRET = "${{vault:secret/app#value}}"
""")
    return path


@pytest.mark.parametrize("watch", [True, False], ids=["watch", "exec"])
@pytest.mark.parametrize("pid1", [False, True], ids=["plain", "pid1"])
def test_sigterm_during_a_slow_resolution_starts_nothing(tmp_path, slow_store, watch, pid1):
    if pid1 and _unshare_works():
        pytest.skip(_unshare_works())
    manifest = _slow_manifest(tmp_path, slow_store.port, watch)
    started = tmp_path / "started"
    prefix = UNSHARE if pid1 else []
    argv = [*prefix, sys.executable, "-m", "secretrun", "-m", str(manifest), "--",
            sys.executable, "-c", f"open({str(started)!r}, 'w')"]
    proc = subprocess.Popen(argv, cwd=tmp_path, env=base_env(tmp_path, {"VAULT_TOKEN": "t"}),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        assert slow_store.connected.wait(15), "secretrun never asked the store"
        target = wait_for(lambda: children_of(proc.pid), what="secretrun under unshare")[0] if pid1 else proc.pid
        asked = time.monotonic()
        os.kill(target, signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
        took = time.monotonic() - asked
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    assert proc.returncode == 143, err
    assert took < 3.0, f"the stop took {took:.1f}s; the store's timeout is 20s"
    assert not started.exists(), "the command started after the stop request"
    assert "received SIGTERM while resolving the secrets; the command was not started" in err.decode()


def test_a_sigterm_shutdown_waits_as_long_as_kill_timeout_says(tmp_path, secrets_dir):
    """kill_timeout is the only bound: a command that takes 3 s to stop
    gracefully is not cut at some shorter default."""
    w = Watched(tmp_path, manifest_text(secrets_dir, {"kill_timeout": '"6s"'}), ["--ignore-term", "--exit-after", "4"])
    try:
        (c,) = w.records.wait_starts(1)
        began = time.monotonic()
        w.send(signal.SIGTERM)
        code = w.wait(15)
        took = time.monotonic() - began
    finally:
        w.close()
    assert code == 0 and 2.0 < took < 5.5, (code, took)
    assert w.records.events(c["pid"]) == ["SIGTERM"]
