"""The trust boundary, attacked the way an attacker would: as another uid,
through /proc, with planted symlinks and files owned by someone else.

CI runs as root, so each attack runs as ``nobody`` (65534) or a second
numeric uid: a small ``/usr/bin/python3`` trampoline drops to the uid, and
secretrun itself runs on the system interpreter from a world-readable copy
of the checkout (the venv may live under /root, which other users cannot
enter). The system interpreter has no click or python-dotenv: these runs use
the exec path's hand parser and the ``env`` and ``file`` providers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import CANARY, ROOT, assert_no_canary

NOBODY = 65534
OTHER = 4243                                 # a second uid with no passwd entry
SYSTEM_PYTHON = "/usr/bin/python3"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="attacks as another uid need root to set them up"),
    pytest.mark.skipif(not os.access(SYSTEM_PYTHON, os.X_OK), reason="needs a system interpreter other users can run"),
]

# Drops to uid:gid (no supplementary groups), then execs the rest of argv.
TRAMPOLINE = ("import os, sys; u, g = map(int, sys.argv[1].split(':')); os.setgroups([]); os.setgid(g); "
              "os.setuid(u); os.execvp(sys.argv[2], sys.argv[2:])")


def as_uid(uid: int, gid: int = None) -> list:
    return [SYSTEM_PYTHON, "-c", TRAMPOLINE, f"{uid}:{uid if gid is None else gid}"]


@pytest.fixture(scope="module")
def public():
    """A world-readable copy of the package, and a directory for scripts."""
    base = Path(tempfile.mkdtemp(prefix="secretrun-trust-", dir="/tmp"))
    os.chmod(base, 0o755)
    shutil.copytree(ROOT / "secretrun", base / "secretrun",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for root, dirs, files in os.walk(base):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def home(tmp_path):
    """A working directory nobody may use: /tmp/…, mode 0755, owned by ``nobody``."""
    d = Path(tempfile.mkdtemp(prefix="secretrun-home-", dir="/tmp"))
    os.chown(d, NOBODY, NOBODY)
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def write(path: Path, text: str, owner: int = 0, mode: int = 0o600) -> Path:
    path.write_text(textwrap.dedent(text))
    os.chown(path, owner, owner)
    os.chmod(path, mode)
    return path


def secretrun_as(uid, public, cwd, *args, env=None, timeout=60):
    """``secretrun ARGS`` on the system interpreter, as ``uid`` (None: as root)."""
    prefix = as_uid(uid) if uid is not None else []
    full_env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(public), "LANG": "C.UTF-8", "HOME": str(cwd)}
    full_env.update(env or {})
    return subprocess.run([*prefix, SYSTEM_PYTHON, "-m", "secretrun", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


# --- hole 1: the watched command reads the supervisor ------------------------------

PROBE = """
import json, os, sys
ppid = os.getppid()
out = {"uid": os.getuid()}
for what in ("environ", "mem", "maps"):
    try:
        with open(f"/proc/{ppid}/{what}", "rb") as handle:
            data = handle.read(1 << 20)
        out[what] = "read " + ("WITH THE CREDENTIAL" if sys.argv[2].encode() in data else "without it")
    except OSError as exc:
        out[what] = exc.errno
with open(f"/proc/self/environ", "rb") as handle:
    out["own_environ"] = len(handle.read())
json.dump(out, open(sys.argv[1], "w"))
"""


def test_the_watched_command_cannot_read_the_supervisors_environ_or_memory(public, home):
    """Same uid as the supervisor; the credential is only in the supervisor's
    original environment block (inherit_env = false keeps it from the command)."""
    probe = write(home / "probe.py", PROBE, mode=0o644)
    write(home / "secretrun.toml", """
        version = 1
        [settings]
        inherit_env = false
        [env]
        GREETING = "hello"
    """, owner=NOBODY)
    out = home / "out.json"
    run = secretrun_as(NOBODY, public, home, "--watch", "--", SYSTEM_PYTHON, str(probe), str(out), CANARY,
                       env={"BOOT_TOKEN": CANARY})
    assert run.returncode == 0, run.stderr
    seen = json.loads(out.read_text())
    assert seen["uid"] == NOBODY and seen["own_environ"] > 0
    import errno

    assert seen["environ"] == errno.EACCES
    assert seen["mem"] == errno.EACCES
    assert_no_canary(out.read_text(), run.stdout, run.stderr)


def test_the_command_dies_with_a_supervisor_killed_outright(tmp_path, secretrun):
    pidfile = tmp_path / "child.pid"
    (tmp_path / "secretrun.toml").write_text("version = 1\n")
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8"}
    sup = subprocess.Popen([sys.executable, "-m", "secretrun", "--watch", "--", "/bin/sh", "-c",
                            f"echo $$ > {pidfile}; exec sleep 30"], cwd=tmp_path, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(pidfile.read_text())
        sup.kill()
        sup.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the command outlived its supervisor"
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for an init that does not reap is dead)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
