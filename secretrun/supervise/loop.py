"""The one loop.

One loop owns everything (no Runner-style sprawl): a selector waits on the
signal wakeup pipe, the command's output (``mask_output``) and the poll
thread's completion byte, with the nearest deadline as timeout. The one loop
is the only place that waits for children: ``child.Reaper`` collects the
command's status by pid and reaps every orphan, so no status is lost (a
second waiter would turn the command's exit into a silent 0). As PID 1, or
as a subreaper otherwise, orphaned grandchildren are reaped here too.
"""

from __future__ import annotations

import os
import signal

from .. import exitcodes
from .poll import _POLL_DONE, _PUSHED
from .state import State

_MAX_WAIT = 1.0     # the loop wakes at least this often, whatever happens
_KILL_GRACE = 30.0  # after SIGKILL, how long to wait for the kernel


class Loop(State):
    """The supervisor's loop: one turn waits, dispatches, reaps and runs
    the timers (a mixin of ``Supervisor``: it shares its state)."""

    def _tick(self) -> None:
        now = self.clock()
        deadlines = [now + _MAX_WAIT]
        if self.state == "running" and self._poll_thread is None:
            deadlines.append(self.poller.next_deadline())
        if self._poll_thread is not None:
            deadlines.append(self._poll_started + self.poll_deadline)
        for t in (self.kill_at, self.splay_until, self.plumbing.next_deadline(), self.next_watchdog):
            if t is not None:
                deadlines.append(t)
        if self.killed_at is not None:
            deadlines.append(self.killed_at + _KILL_GRACE)
        if self.reaper.pending_foreign():
            deadlines.append(now + 0.1)
        overlap_at = self.overlap.deadline() if self.overlap is not None else None
        if overlap_at is not None:
            deadlines.append(overlap_at)
        timeout = max(0.0, min(deadlines) - now)
        for key, _ in self.selector.select(timeout):
            key.data()
        self._reap()
        if self.result is None:
            self._timers(self.clock())

    def _on_wakeup(self) -> None:
        try:
            data = os.read(self._wake_r, 512)
        except BlockingIOError:
            return
        for byte in data:
            if byte == _POLL_DONE:
                self._poll_finished()
            elif byte == _PUSHED:
                self.poller.wake()
            elif byte != signal.SIGCHLD:
                self._on_signal(byte)

    def _timers(self, now: float) -> None:
        self.plumbing.on_timer(now)
        if self.overlap is not None:
            self.overlap.on_timer(now)
        if self._poll_thread is not None and now >= self._poll_started + self.poll_deadline:
            self._abandon_poll()
        if self.next_watchdog is not None and now >= self.next_watchdog:
            self.notifier.watchdog()
            self.next_watchdog = now + self.notifier.watchdog_interval
        if self.kill_at is not None and now >= self.kill_at and self.pid is not None:
            self._kill(self.pid)
        if self.killed_at is not None and now >= self.killed_at + _KILL_GRACE:
            self.log.error("the command's process did not go away after SIGKILL", pid=self.pid)
            self.pid = None
            self.result = exitcodes.killed_by(signal.SIGKILL)
            return
        if self.splay_until is not None and now >= self.splay_until:
            self.splay_until = None
            self._stop(self.after_stop)
        if self.state == "running":
            stale = self.poller.check_stale(now)
            if stale is not None:
                self._act(stale)
            elif self._poll_thread is None and self.poller.poll_due(now):
                self._start_poll()
