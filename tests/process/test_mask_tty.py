"""mask_output end to end: the pseudo-terminal between a real supervisor and
its child, and masking across a restart (the streaming masker itself is
tests/unit/test_mask.py)."""

from __future__ import annotations

import fcntl
import signal
import struct
import termios

import pytest

from tests.conftest import CANARY, assert_no_canary
from tests.watch_fixtures import Watched, manifest_text, wait_for


@pytest.fixture
def tty_run(tmp_path, secrets_dir):
    made = []

    def start(child_args=(), command=None):
        w = Watched(tmp_path, manifest_text(secrets_dir, {"mask_output": "true"}), child_args,
                    command=command, tty=True)
        made.append(w)
        return w

    yield start
    for w in made:
        w.close()


def test_the_command_sees_a_terminal_and_colours_pass_through(tty_run):
    w = tty_run(command=["sh", "-c", "test -t 1 && printf '\\033[31mred\\033[0m %s\\n' \"$SECRET\"; "
                         "stty size"])
    out = w.read_tty(b"red")
    assert w.wait() == 0
    out = w.read_tty(b"\n", timeout=2)
    assert b"\x1b[31mred\x1b[0m *****" in out
    assert_no_canary(out, w.stderr)


def test_a_window_change_reaches_the_command_once_through_the_pty(tty_run):
    w = tty_run()
    (c,) = w.records.wait_starts(1)
    fcntl.ioctl(w.master, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 132, 0, 0))
    w.records.wait_event(c["pid"], "SIGWINCH")
    w.send(signal.SIGTERM)
    assert w.wait() == 143
    assert w.records.events(c["pid"]) == ["SIGWINCH", "SIGTERM"]


def test_the_terminal_is_restored_after_the_run(tty_run):
    w = tty_run(command=["sh", "-c", "sleep 0.2"])
    before = termios.tcgetattr(w.master)
    assert w.wait() == 0
    after = termios.tcgetattr(w.master)
    assert after[3] & termios.ECHO and after[3] & termios.ICANON
    assert before == after


def test_masking_carries_over_a_restart_and_covers_old_and_new_values(tmp_path, secrets_dir):
    new = CANARY + "-rotated"
    w = Watched(tmp_path, manifest_text(secrets_dir, {"mask_output": "true"}), ["--print", "SECRET"])
    try:
        (first,) = w.records.wait_starts(1)
        wait_for(lambda: b"*****" in w.stdout, what="the first child's output")
        (secrets_dir / "secret").write_text(new)
        w.records.wait_starts(2)
        wait_for(lambda: w.stdout.count(b"*****") >= 2, what="the second child's output")
        w.send(signal.SIGTERM)
        assert w.wait() == 143
        assert w.stdout == b"*****\n*****\n"
        assert_no_canary(w.stdout, w.stderr)
    finally:
        w.close()
