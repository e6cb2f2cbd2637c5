"""The supervisor with real processes: signals, exit codes, kill_timeout,
reaping (subreaper and PID 1 in a new PID namespace), the terminal, and the
life cycle driven by a scripted session."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from secretrun import child
from secretrun.supervise import Supervisor
from tests.conftest import CANARY, assert_no_canary
from tests.watch_fixtures import (
    CHILD_APP,
    PY,
    FakeLog,
    FakeSession,
    Records,
    Watched,
    children_of,
    manifest_text,
    proc_ppid,
    proc_state,
    rendered,
    rotate,
    settings,
    wait_for,
)

NEW = CANARY + "-rotated"
STANDARD = (1 << 31) - 1        # signals 1..31 in a SigIgn/SigBlk mask


@pytest.fixture
def watched(tmp_path, secrets_dir):
    made = []

    def start(child_args=(), settings=None, **kwargs):
        w = Watched(tmp_path, manifest_text(secrets_dir, settings), child_args, **kwargs)
        made.append(w)
        return w

    yield start
    for w in made:
        w.close()


# --- signals --------------------------------------------------------------------


def test_every_signal_reaches_the_command_once(watched):
    w = watched()
    (c,) = w.records.wait_starts(1)
    sent = [signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH]
    for sig in sent:
        w.send(sig)
        w.records.wait_event(c["pid"], sig.name)
    w.send(signal.SIGTERM)
    assert w.wait() == 128 + signal.SIGTERM
    assert w.records.events(c["pid"]) == [s.name for s in sent] + ["SIGTERM"]
    assert len(w.records.starts()) == 1
    assert_no_canary(w.stderr, w.stdout)


def test_sigint_reaches_the_command_and_its_code_is_kept(watched):
    w = watched(["--int-exit"])
    (c,) = w.records.wait_starts(1)
    w.send(signal.SIGINT)
    assert w.wait() == 128 + signal.SIGINT
    assert w.records.events(c["pid"]) == ["SIGINT"]


def test_the_command_starts_clean_whatever_secretrun_inherited(watched):
    """Own process group, empty signal mask, no ignored signal, even when
    secretrun itself was started with SIGINT/SIGHUP/SIGQUIT ignored (a
    background job, nohup) and some signals blocked."""

    def hostile():
        os.setsid()
        for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1):
            signal.signal(sig, signal.SIG_IGN)

    w = watched(preexec=hostile)
    (c,) = w.records.wait_starts(1)
    assert c["pgid"] == c["pid"] and c["ppid"] == w.pid
    assert c["sigblk"] == 0
    # Python ignores SIGPIPE and SIGXFSZ itself before child_app runs.
    python_own = (1 << (signal.SIGPIPE - 1)) | (1 << (signal.SIGXFSZ - 1))
    assert c["sigign"] & STANDARD & ~python_own == 0


def test_no_signal_is_ignored_or_blocked_in_a_non_python_command(tmp_path, secrets_dir):
    """``cat /proc/self/status`` as the command: SIGPIPE and SIGXFSZ, which
    Python ignores, are back at their defaults."""
    w = Watched(tmp_path, manifest_text(secrets_dir), command=["cat", "/proc/self/status"])
    try:
        assert w.wait() == 0
        status = dict(line.split(":\t", 1) for line in w.stdout.decode().splitlines() if ":\t" in line)
        assert int(status["SigBlk"], 16) == 0
        assert int(status["SigIgn"], 16) & STANDARD == 0
    finally:
        w.close()


@pytest.mark.parametrize("args, expected", [
    (["--exit-after", "0", "--exit-code", "0"], 0),
    (["--exit-after", "0", "--exit-code", "3"], 3),
    (["--die-by", "SIGKILL"], 128 + 9),
    (["--die-by", "SIGSEGV"], 128 + 11),
    (["--die-by", "SIGUSR1"], 128 + 10),
])
def test_exit_codes_are_the_commands_own(watched, args, expected):
    w = watched(args)
    assert w.wait() == expected
    assert "exiting with its code" in w.stderr


def test_sigterm_exit_code_chosen_by_the_command_is_kept(watched):
    w = watched(["--term-exit", "0"])
    w.records.wait_starts(1)
    w.send(signal.SIGTERM)
    assert w.wait() == 0       # the Vault agent exits 0 whatever; so does this command


def test_a_command_ignoring_sigterm_is_killed_after_kill_timeout(watched):
    w = watched(["--ignore-term"], {"kill_timeout": '"300ms"'})
    (c,) = w.records.wait_starts(1)
    started = time.monotonic()
    w.send(signal.SIGTERM)
    assert w.wait() == 128 + signal.SIGKILL
    assert time.monotonic() - started >= 0.3
    assert w.records.events(c["pid"]) == ["SIGTERM"]
    assert not child.group_alive(c["pgid"])
    assert "did not exit within kill_timeout" in w.stderr


def test_more_sigterms_during_shutdown_do_not_kill_secretrun_first(watched):
    w = watched(["--ignore-term"], {"kill_timeout": '"1s"'})
    (c,) = w.records.wait_starts(1)
    w.send(signal.SIGTERM)
    w.records.wait_event(c["pid"], "SIGTERM")
    w.send(signal.SIGTERM)
    w.records.wait_event(c["pid"], "SIGTERM", count=2)
    w.send(signal.SIGINT)
    w.records.wait_event(c["pid"], "SIGINT")
    assert w.alive() and proc_state(c["pid"]) is not None
    assert w.wait() == 128 + signal.SIGKILL
    assert proc_state(c["pid"]) is None


def test_a_restart_of_a_command_ignoring_the_stop_signal_kills_its_group(tmp_path, secrets_dir, watched):
    w = watched(["--ignore-term", "--orphan", "60"], {"kill_timeout": '"200ms"'})
    (c,) = w.records.wait_starts(1)
    rotate(secrets_dir / "secret", NEW)
    starts = w.records.wait_starts(2)
    assert starts[1]["env"]["SECRET"] == NEW
    assert proc_state(c["pid"]) is None and not child.group_alive(c["pgid"])
    assert "sending SIGKILL to its process group" in w.stderr


# --- reaping --------------------------------------------------------------------


def test_orphans_are_reaped_by_secretrun_as_a_subreaper(watched):
    w = watched(["--orphan", "0.3"])
    (c,) = w.records.wait_starts(1)
    orphan = int(wait_for(lambda: (w.records.dir / "orphan.pid").exists()
                          and (w.records.dir / "orphan.pid").read_text(), what="the orphan's pid"))
    assert proc_ppid(orphan) == w.pid          # re-parented to us, not to init
    wait_for(lambda: proc_state(orphan) is None, 10, "the orphan to be reaped")
    assert w.alive() and children_of(w.pid) == [c["pid"]]
    w.send(signal.SIGTERM)
    assert w.wait() == 143
    assert "reaped an orphaned process" in w.stderr


def _unshare_works() -> str:
    if os.geteuid() != 0:
        return "needs root for a new PID namespace"
    if not shutil.which("unshare"):
        return "unshare(1) is not installed"
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True,
                           timeout=10)
    if probe.returncode != 0:
        return f"unshare --pid failed here: {probe.stderr.decode(errors='replace').strip()}"
    return ""


@pytest.mark.skipif(bool(_unshare_works()), reason=_unshare_works() or "ok")
def test_as_pid1_in_a_new_pid_namespace_zombies_are_reaped(watched):
    w = watched(["--orphan", "0.3"], prefix=["unshare", "--pid", "--fork", "--mount-proc"])
    (c,) = w.records.wait_starts(1)
    assert c["ppid"] == 1                      # secretrun is PID 1 in there
    sr = wait_for(lambda: children_of(w.pid), what="secretrun under unshare")[0]
    orphan_ns = wait_for(lambda: (w.records.dir / "orphan.pid").exists(), what="the orphan")
    assert orphan_ns
    # The orphan (re-parented to PID 1, i.e. to secretrun) exits; no zombie stays.
    wait_for(lambda: len(children_of(sr)) == 1, 10, "only the command left under secretrun")
    assert all(proc_state(p) != "Z" for p in children_of(sr))
    os.kill(sr, signal.SIGTERM)                # unshare(1) forwards nothing: signal secretrun itself
    assert w.wait() in (143, 128 + 15)
    assert "running as PID 1" in w.stderr


# --- the terminal ---------------------------------------------------------------


def test_ctrl_c_at_a_terminal_reaches_the_command_once(watched):
    w = watched(tty=True)
    (c,) = w.records.wait_starts(1)
    assert c["tpgid"] == c["pgid"]             # the command owns the terminal
    for n in (1, 2, 3):
        w.type(b"\x03")
        w.records.wait_event(c["pid"], "SIGINT", count=n)
    time.sleep(0.2)      # a duplicate would arrive within this; nothing to poll for
    assert w.records.events(c["pid"]) == ["SIGINT"] * 3
    assert w.alive()
    w.send(signal.SIGTERM)
    assert w.wait() == 143


def test_ctrl_c_through_the_masking_pty_reaches_the_command_once(watched):
    w = watched(["--print", "SECRET"], {"mask_output": "true"}, tty=True)
    (c,) = w.records.wait_starts(1)
    # stdin and stdout are the pty; stderr stays a pipe, as secretrun's own is a file here
    assert c["isatty"] == [True, True, False] and c["sid"] == c["pid"]
    out = w.read_tty(b"*****")
    assert CANARY.encode() not in out
    for n in (1, 2):
        w.type(b"\x03")
        w.records.wait_event(c["pid"], "SIGINT", count=n)
    time.sleep(0.2)
    assert w.records.events(c["pid"]) == ["SIGINT", "SIGINT"]
    w.send(signal.SIGTERM)
    assert w.wait() == 143
    assert_no_canary(w.stderr, w.read_tty(b""))


def test_ctrl_z_suspends_secretrun_with_the_command_and_sigcont_resumes_both(watched):
    w = watched(tty=True)
    (c,) = w.records.wait_starts(1)
    w.type(b"\x1a")                            # Ctrl-Z: the terminal stops the command
    w.records.wait_event(c["pid"], "SIGTSTP")

    def stopped(pid):
        info = os.waitid(os.P_PID, pid, os.WSTOPPED | os.WNOHANG | os.WNOWAIT)
        return info is not None and info.si_code == os.CLD_STOPPED

    wait_for(lambda: stopped(w.pid), 10, "secretrun to stop itself")
    assert proc_state(c["pid"]) == "T"
    os.kill(w.pid, signal.SIGCONT)             # what `fg` does (the terminal is ours again)
    w.records.wait_event(c["pid"], "SIGCONT")
    wait_for(lambda: proc_state(c["pid"]) in ("S", "R"), 10, "the command to run again")
    w.send(signal.SIGTERM)
    assert w.wait() == 143


def test_mask_output_without_a_terminal_masks_whole_and_split_values(tmp_path, watched):
    w = watched(["--print", "SECRET", "--print-split", "SECRET", "--exit-after", "0.1"],
                {"mask_output": "true"})
    assert w.wait() == 0
    out = w.stdout
    assert CANARY.encode() not in out
    assert out == b"*****\n<*****>\n"


# --- command errors ---------------------------------------------------------------


@pytest.mark.parametrize("command, code", [(["/nonexistent/app"], 127), (["no-such-command-x"], 127),
                                           (["/etc/hostname"], 126)])
def test_a_command_that_cannot_start(tmp_path, secrets_dir, command, code):
    w = Watched(tmp_path, manifest_text(secrets_dir), command=command)
    try:
        assert w.wait() == code
        assert "secretrun:" in w.stderr
        assert_no_canary(w.stderr)
    finally:
        w.close()


# --- in process, with a scripted session -------------------------------------------


@pytest.fixture
def supervise(tmp_path):
    """Run a Supervisor in this process on a FakeSession, with the test child."""
    rec = Records(tmp_path / "rec")
    made = []

    def start(session, args=(), **kwargs):
        log = FakeLog()
        sup = Supervisor(session, [PY, CHILD_APP, "--dir", str(rec.dir), *args], log,
                         subreaper=False, **kwargs)
        made.append(sup)
        return sup, log

    yield start, rec
    for record in rec.starts():
        try:
            os.killpg(record["pgid"], signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_scripted_rotation_restarts_and_then_the_child_exits(supervise):
    import threading

    start, rec = supervise
    first, new = rendered({"SECRET": CANARY}), rendered({"SECRET": NEW})
    # The change comes once the first child is up (its handlers installed).
    session = FakeSession(settings(poll_interval=0.05), first, [lambda: new if rec.starts() else first])
    sup, log = start(session, ["--term-exit", "0"])

    # The supervisor runs on the main thread (signals); this helper ends the
    # second child once it is up, or the whole run if it never comes.
    def finisher():
        try:
            wait_for(lambda: len(rec.starts()) >= 2, 10, "the restart")
            os.kill(rec.starts()[1]["pid"], signal.SIGTERM)
        except AssertionError:
            os.kill(os.getpid(), signal.SIGTERM)

    helper = threading.Thread(target=finisher, daemon=True)
    helper.start()
    code = sup.run()
    helper.join(5)
    starts = rec.starts()
    assert [s["env"]["SECRET"] for s in starts] == [CANARY, NEW]
    assert code == 0
    assert rec.events(starts[0]["pid"]) == ["SIGTERM"]
    assert session.keepalives >= 2 and session.closed == 1
    assert any("restarted the command: SECRET (${test:secret}) changed" in m for m in log.at("notice"))
    assert_no_canary(log.text)
    assert_no_canary(log.text, canary=NEW)


# Splay, max_stale, lease expiry and the status file: on a fake clock in
# test_supervisor_clock.py.


def test_signal_handlers_are_restored_after_the_run(supervise):
    start, rec = supervise
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)}
    first = rendered({"SECRET": CANARY})
    sup, _ = start(FakeSession(settings(), first), ["--exit-after", "0"])
    assert sup.run() == 0
    assert {s: signal.getsignal(s) for s in before} == before
    assert signal.set_wakeup_fd(-1) == -1
