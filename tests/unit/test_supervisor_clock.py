"""The watch-mode Supervisor in this process, on a fake clock, with fake
processes (issue 14: the class takes ``clock``, ``wallclock``, ``rand`` and
``spawn``, so its timing is tested without waiting on real time).

The Supervisor's own loop runs (``run()``: the selector, the deadlines, the
timers, the state machine, the poll thread); only the edges are fakes:

- ``FakeProcesses`` is the operating system's side of the command: ``spawn``
  hands out pids no real process has, the signals the supervisor sends are
  recorded (``child.send``/``send_group`` are replaced for the test), and
  each fake command exits, or not, as its script says;
- ``FakeSelector`` wraps the real selector (the wakeup pipe, signals, the
  poll thread's byte): when nothing is ready it moves the fake clock to the
  loop's nearest deadline instead of sleeping.

So a run of minutes of supervisor time takes milliseconds, and every time
asserted is exact.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import pytest

from secretrun import child
from secretrun.supervise import EXIT_ON_CHANGE, EXIT_STALE, Supervisor, poll_deadline
from tests.conftest import CANARY, assert_no_canary
from tests.watch_fixtures import FakeClock, FakeLog, FakeSession, outage, rendered, settings

NEW = "rotated-value-0123456789"
_FAKE_PID = 4_000_000      # above any pid this machine hands out: never a real process
_MAX_TICKS = 100_000       # a run that does not end fails instead of hanging


@dataclass
class Command:
    """One fake start of the command: what it got, what it was sent, and
    how it behaves. ``term`` is what ``stop_signal`` (or a forwarded
    SIGTERM) does: ``"exit"`` (exit with ``term_code``) or ``"ignore"``;
    ``exit_after``/``code``: it exits by itself that long after its start."""

    term: str = "exit"
    term_code: int = 0
    exit_after: Optional[float] = None
    code: int = 0
    pid: int = 0
    env: Dict[str, str] = field(default_factory=dict)
    started: float = 0.0
    signals: List[Tuple[float, str, bool]] = field(default_factory=list)  # (time, name, to group)
    status: Optional[int] = None       # the wait status once it has exited
    reaped: bool = False

    def sent(self, name: str, group: bool = False) -> List[float]:
        """When ``name`` reached it (to its pid, or to its group)."""
        return [t for t, n, g in self.signals if n == name and g == group]


class FakeProcesses:
    """The kernel's side of the commands the supervisor starts."""

    def __init__(self, clock: FakeClock, script: List[Command], scheduled: list) -> None:
        self.clock = clock
        self.script = list(script)
        self.scheduled = scheduled
        self.started: List[Command] = []
        self.sigchld: Callable[[], None] = lambda: None   # the kernel's SIGCHLD to secretrun

    def _exited(self, cmd: Command, status: int) -> None:
        cmd.status = status
        self.sigchld()

    def spawn(self, argv, env, *, new_session=False, file_actions=()) -> int:
        cmd = self.script.pop(0) if self.script else Command()
        cmd.pid = _FAKE_PID + len(self.started)
        cmd.env = dict(env)
        cmd.started = self.clock.now
        self.started.append(cmd)
        if cmd.exit_after is not None:
            self.scheduled.append((cmd.started + cmd.exit_after,
                                   lambda: cmd.status is None and self._exited(cmd, cmd.code << 8)))
        return cmd.pid

    def _find(self, pid: int) -> Optional[Command]:
        for cmd in self.started:
            if cmd.pid == pid and cmd.status is None:
                return cmd
        return None

    def send(self, pid: int, signum: int, group: bool = False) -> bool:
        cmd = self._find(pid)
        if cmd is None:
            return False
        cmd.signals.append((self.clock.now, child.signal_name(signum), group))
        if signum == signal.SIGKILL:
            self._exited(cmd, signal.SIGKILL)              # killed by SIGKILL
        elif signum == signal.SIGTERM and cmd.term == "exit":
            self._exited(cmd, cmd.term_code << 8)
        return True

    def reap(self, main) -> List[Tuple[int, int]]:
        out = []
        for cmd in self.started:
            if cmd.status is not None and not cmd.reaped and cmd.pid in set(main):
                cmd.reaped = True
                out.append((cmd.pid, cmd.status))
        return out


class FakeReaper:
    def __init__(self, procs: FakeProcesses) -> None:
        self.procs = procs

    def reap(self, main):
        return self.procs.reap(main)

    def pending_foreign(self) -> bool:
        return False


class FakeSelector:
    """The real selector, except that waiting moves the fake clock.

    A poll thread is given (real) time to finish first, unless its refresh
    hangs on purpose (``hung`` is set): then the fake clock runs on past it.
    ``at`` schedules a call at a fake time (a signal to secretrun, say)."""

    def __init__(self, real, sup: Supervisor, clock: FakeClock, hung: threading.Event,
                 scheduled: List[Tuple[float, Callable[[], None]]]) -> None:
        self.real = real
        self.sup = sup
        self.clock = clock
        self.hung = hung
        self.scheduled = scheduled
        self.ticks = 0

    def __getattr__(self, name):
        return getattr(self.real, name)

    def select(self, timeout: float):
        self.ticks += 1
        assert self.ticks < _MAX_TICKS, "the supervisor's loop did not end"
        thread = self.sup._poll_thread
        for _ in range(500):      # at most 5 s of real time
            if thread is None or not thread.is_alive() or self.hung.is_set():
                break
            thread.join(0.01)
        ready = self.real.select(0)
        if ready:
            return ready
        due = min([t for t, _ in self.scheduled] + [self.clock.now + timeout])
        self.clock.now = max(self.clock.now, due)
        for item in [s for s in self.scheduled if s[0] <= self.clock.now]:
            self.scheduled.remove(item)
            item[1]()
        return self.real.select(0)


class Run:
    """One supervisor on a fake clock: ``sup.run()`` is its whole life."""

    def __init__(self, monkeypatch, cfg, first, script=(), commands=(), expiry=None, rand=0.5) -> None:
        self.clock = FakeClock()
        self.start = self.clock.now
        self.scheduled: List[Tuple[float, Callable[[], None]]] = []
        self.log = FakeLog()
        self.hung = threading.Event()
        self.procs = FakeProcesses(self.clock, list(commands), self.scheduled)
        self.session = FakeSession(cfg, first, script, expiry=expiry)
        self.written: List[dict] = []
        monkeypatch.setattr(child, "send", lambda pid, sig: self.procs.send(pid, sig))
        monkeypatch.setattr(child, "send_group", lambda pid, sig: self.procs.send(pid, sig, group=True))
        monkeypatch.setattr(child, "controlling_tty", lambda: None)
        run = self

        class OnFakeClock(Supervisor):
            def _setup(self) -> None:
                super()._setup()
                self.reaper = FakeReaper(run.procs)
                run.procs.sigchld = lambda: os.write(self._wake_w, bytes([signal.SIGCHLD]))
                self.selector = FakeSelector(self.selector, self, run.clock, run.hung, run.scheduled)

        self.sup = OnFakeClock(self.session, ["app", "--serve"], self.log, clock=self.clock,
                               wallclock=self.wall, rand=lambda: rand, spawn=self.procs.spawn,
                               write_files=self.written.append, subreaper=False)

    def wall(self) -> float:
        """The wall clock, moving with the fake monotonic one."""
        return 5_000_000.0 + self.clock.now - self.start

    def at(self, when: float, action: Callable[[], None]) -> None:
        """Do ``action`` ``when`` seconds after the start (fake time)."""
        self.scheduled.append((self.start + when, action))

    def signal(self, when: float, sig: int) -> None:
        """secretrun receives ``sig`` at ``when`` (through its wakeup pipe, as the kernel would write it)."""
        self.at(when, lambda: os.write(self.sup._wake_w, bytes([sig])))

    def run(self) -> int:
        try:
            return self.sup.run()
        finally:
            self.hung.set()

    def since_start(self, t: float) -> float:
        return round(t - self.start, 6)


@pytest.fixture
def fake(monkeypatch):
    def make(cfg, first, script=(), commands=(), **kw) -> Run:
        return Run(monkeypatch, cfg, first, script, commands, **kw)

    return make


def test_a_change_settles_for_the_debounce_then_restarts_after_the_splay(fake):
    first, new = rendered({"SECRET": CANARY}), rendered({"SECRET": NEW})
    # poll_interval 10 s (rand 0.5: no jitter), debounce 2 s, splay 8 s × 0.5.
    cfg = settings(poll_interval=10.0, debounce=2.0, splay=8.0)
    r = fake(cfg, first, [first, new, new], [Command(), Command(exit_after=30.0, code=3)])
    assert r.run() == 3
    old, fresh = r.procs.started
    # polls at 10 (same) and 20 (new: seen), 22 (settled): restart in 4 s of splay,
    # the old command serving until then.
    assert [r.since_start(t) for t in old.sent("SIGTERM")] == [26.0]
    assert r.since_start(fresh.started) == 26.0
    assert old.env["SECRET"] == CANARY and fresh.env["SECRET"] == NEW
    assert r.session.refreshes == 6       # and at 32, 42 and 52 for the new command
    assert r.sup.restarts == 1 and "SECRET (${test:secret}) changed" in r.sup.last_restart_reason
    assert any("restart in 4.0s (splay)" in m for m in r.log.at("info"))
    assert any("restarted the command" in m for m in r.log.at("notice"))
    # It exited by itself 30 s after its start: its code is secretrun's.
    assert r.since_start(r.clock.now) == pytest.approx(56.0, abs=1.0)
    assert r.session.closed == 1
    assert_no_canary(r.log.text)
    assert_no_canary(r.log.text, canary=NEW)


def test_a_change_that_flips_back_within_the_debounce_restarts_nothing(fake):
    first, new = rendered({"SECRET": CANARY}), rendered({"SECRET": NEW})
    cfg = settings(poll_interval=10.0, debounce=2.0)
    r = fake(cfg, first, [new, first, first], [Command(exit_after=45.0, code=0)])
    assert r.run() == 0
    assert len(r.procs.started) == 1 and r.procs.started[0].signals == []
    assert r.sup.restarts == 0


def test_a_command_ignoring_sigterm_gets_sigkill_to_its_group_after_kill_timeout(fake):
    cfg = settings(poll_interval=60.0, kill_timeout=5.0)
    r = fake(cfg, rendered({"SECRET": CANARY}), commands=[Command(term="ignore")])
    r.signal(3.0, signal.SIGTERM)
    assert r.run() == 128 + signal.SIGKILL
    (cmd,) = r.procs.started
    assert [r.since_start(t) for t in cmd.sent("SIGTERM")] == [3.0]
    assert [r.since_start(t) for t in cmd.sent("SIGKILL", group=True)] == [8.0]
    assert any("did not exit within kill_timeout (5s)" in m for m in r.log.at("warning"))


def test_more_sigterms_while_stopping_are_forwarded_and_do_not_move_the_kill(fake):
    cfg = settings(poll_interval=60.0, kill_timeout=5.0)
    r = fake(cfg, rendered({"SECRET": CANARY}), commands=[Command(term="ignore")])
    for when in (1.0, 2.0, 4.0):
        r.signal(when, signal.SIGTERM)
    assert r.run() == 128 + signal.SIGKILL
    (cmd,) = r.procs.started
    assert [r.since_start(t) for t in cmd.sent("SIGTERM")] == [1.0, 2.0, 4.0]
    assert [r.since_start(t) for t in cmd.sent("SIGKILL", group=True)] == [6.0]


def test_a_restart_of_a_command_ignoring_the_stop_signal_kills_it_then_starts_the_new_one(fake):
    first, new = rendered({"SECRET": CANARY}), rendered({"SECRET": NEW})
    cfg = settings(poll_interval=10.0, debounce=1.0, kill_timeout=4.0)
    r = fake(cfg, first, [new, new], [Command(term="ignore"), Command(exit_after=1.0, code=0)])
    assert r.run() == 0
    old, fresh = r.procs.started
    assert [r.since_start(t) for t in old.sent("SIGTERM")] == [11.0]
    assert [r.since_start(t) for t in old.sent("SIGKILL", group=True)] == [15.0]
    assert r.since_start(fresh.started) == 15.0 and fresh.env["SECRET"] == NEW


def test_on_change_exit_stops_the_command_and_exits_75(fake):
    first, new = rendered({"SECRET": CANARY}), rendered({"SECRET": NEW})
    cfg = settings(poll_interval=10.0, debounce=1.0, on_change="exit", splay=6.0)
    r = fake(cfg, first, [new, new], [Command(term_code=0)])
    assert r.run() == EXIT_ON_CHANGE == 75
    (cmd,) = r.procs.started          # never restarted: the service manager does that
    assert [r.since_start(t) for t in cmd.sent("SIGTERM")] == [14.0]   # 11 + splay 6 × 0.5
    assert any("on_change = exit" in m for m in r.log.at("info"))
    assert_no_canary(r.log.text, canary=NEW)


def test_max_stale_stops_the_command_and_exits_69_after_the_bound(fake):
    first = rendered({"SECRET": CANARY})
    cfg = settings(poll_interval=10.0, max_stale=45.0, revoke_on_exit=True)
    r = fake(cfg, first, [first, outage()], [Command()])
    assert r.run() == EXIT_STALE == 69
    (cmd,) = r.procs.started
    # Last confirmed at the poll at 10 s; stopped 45 s later, whatever the backoff.
    assert [r.since_start(t) for t in cmd.sent("SIGTERM")] == [55.0]
    assert r.session.revoked == 1 and r.session.closed == 1
    assert len(r.log.at("warning")) == 1                       # the outage is reported once
    assert any("max_stale 45s" in m for m in r.log.at("error"))
    assert "store at http://127.0.0.1:1 did not answer" in r.log.text


def test_a_refresh_past_the_poll_deadline_is_abandoned_and_counts_as_failed(fake):
    first = rendered({"SECRET": CANARY})
    cfg = settings(poll_interval=10.0, timeout=1.0, retries=0, max_stale=100.0)
    deadline = poll_deadline(cfg)         # 11 s with these settings
    released = threading.Event()
    r = fake(cfg, first, commands=[Command()])

    def hangs():
        r.hung.set()
        released.wait(10)
        return first

    def release():
        # The hanging refresh returns (late) long before the run ends.
        abandoned = r.sup._abandoned_poll
        r.hung.clear()
        released.set()
        abandoned.join(5)

    r.session.script = [hangs, outage()]
    r.at(10.0 + deadline + 5.0, release)
    try:
        assert r.run() == EXIT_STALE
    finally:
        released.set()
    (cmd,) = r.procs.started
    # The poll at 10 s hangs and is given up at 10 s + the deadline, as a
    # failed poll: the outage, and max_stale, run from the last good values.
    assert f"a refresh did not finish within {deadline:g}s" in r.log.text
    assert r.sup.poller.stats["failed_polls"] >= 2
    assert [r.since_start(t) for t in cmd.sent("SIGTERM")] == [100.0]


def test_a_poll_while_an_abandoned_refresh_still_hangs_fails_at_once(fake):
    first = rendered({"SECRET": CANARY})
    cfg = settings(poll_interval=10.0, timeout=1.0, retries=0)
    released = threading.Event()
    r = fake(cfg, first, commands=[Command(exit_after=60.0)])

    def hangs():
        r.hung.set()
        released.wait(10)
        return first

    r.session.script = [hangs]
    try:
        assert r.run() == 0
        # Given up at 21 s; the next poll (backoff: 36 s) fails at once
        # instead of piling a second refresh behind the one that hangs.
        assert r.session.refreshes == 1
        assert r.sup.poller.stats["failed_polls"] == 2
        assert "the previous refresh has still not returned" in r.log.text
        assert len(r.log.at("warning")) == 1
    finally:
        released.set()
        if r.sup._abandoned_poll is not None:
            r.sup._abandoned_poll.join(5)


def test_an_expiring_lease_restarts_before_expiry_even_when_ignored(fake):
    first = rendered({"SECRET": CANARY}, on_change={"SECRET": "ignore"})
    new = rendered({"SECRET": NEW}, on_change={"SECRET": "ignore"})
    cfg = settings(poll_interval=3600.0, on_change="exit")
    expiry = 5_000_000.0 + 600.0        # wall clock: ten minutes from the start
    r = fake(cfg, first, [new], [Command()], expiry=lambda: expiry)
    assert r.run() == EXIT_ON_CHANGE
    (cmd,) = r.procs.started
    # The forced refresh runs a minute plus one interval early, capped at half the time left.
    assert [r.since_start(t) for t in cmd.sent("SIGTERM")] == [300.0]
    assert any("could not be renewed" in m for m in r.log.at("info"))


def test_the_status_file_reports_health_without_values(fake, tmp_path):
    status = tmp_path / "status.json"
    first = rendered({"SECRET": CANARY})
    cfg = settings(poll_interval=10.0, status_file=str(status))
    r = fake(cfg, first, [first, first, outage(), first], [Command(exit_after=100.0)])
    assert r.run() == 0
    import json

    data = json.loads(status.read_text())
    assert data["state"] == "exited" and data["polls"] >= 5 and data["failed_polls"] == 1
    assert data["store_healthy"] is True and data["pid"] == os.getpid()
    assert data["child_started_at"] == 5_000_000.0
    assert_no_canary(status.read_text())
