"""Overlapping restarts: when secretrun holds the listening sockets, a
restart starts the new command first, on the same sockets, and stops the old
one only once the new one is ready.

Both processes accept from the same kernel queue meanwhile, so no connection
is refused, and requests in flight finish on the old process, which gets
``stop_signal`` (a graceful stop for gunicorn, uvicorn, Node and Go servers)
and SIGKILL to its process group after ``kill_timeout``.

A new command that exits, or is not ready within ``ready_timeout``, is
stopped the same way; the old one keeps serving with its old values (its
``file = true`` files are written back), and the change is retried at the
next change or poll, because the poller was never told it was applied.

This is a part of ``Supervisor``: it shares the supervisor's
loop, reaper, spawn, notifier and log, and the supervisor calls it at a few
hook points (``begin``, ``pids``, ``on_exit``, ``on_timer``, ``deadline``,
``forward``, ``shutdown``, ``teardown``).
"""

from __future__ import annotations

import os
import selectors
import signal
import time
from typing import Dict, List, Optional, Tuple

from .. import child
from ..errors import CommandError
from ..readiness import Probe, Ready


class Overlap:
    def __init__(self, sup, ready: Ready, ready_timeout: float) -> None:
        self.sup = sup
        self.ready = ready
        self.ready_timeout = ready_timeout
        self.pid: Optional[int] = None       # the new command, until it is ready
        self.probe: Optional[Probe] = None
        self.rendered = None
        self.reason = ""
        self.variables: List[str] = []
        self.give_up_at: Optional[float] = None
        self.retiring: Dict[int, float] = {}  # pid -> when its group gets SIGKILL

    def applies(self) -> bool:
        """Not with ``mask_output``: its pipes or pseudo-terminal belong to
        one command at a time."""
        return self.sup.plumbing.mode == "inherit"

    def pids(self) -> List[int]:
        return ([self.pid] if self.pid else []) + list(self.retiring)

    def deadline(self) -> Optional[float]:
        times = list(self.retiring.values())
        waiting = self._waiting()
        if waiting is not None:
            probe, give_up_at = waiting
            times += [give_up_at, probe.deadline()]
        return min(times) if times else None

    def _waiting(self) -> Optional[Tuple[Probe, float]]:
        """While a new command is starting (``pid``): its readiness probe
        and when it is given up; None otherwise."""
        if self.pid is None or self.probe is None or self.give_up_at is None:
            return None
        return self.probe, self.give_up_at

    # --- the restart ---------------------------------------------------------

    def begin(self, rendered, reason: str, variables) -> None:
        sup = self.sup
        sup.state = "overlap"
        self.rendered, self.reason, self.variables = rendered, reason, list(variables)
        sup.notifier.reloading(status=f"restarting: {reason}")
        now = sup.clock()
        self.probe = Probe(self.ready, sup.listeners, now)
        if self.probe.fileno() is not None:
            sup.selector.register(self.probe.fileno(), selectors.EVENT_READ, _nothing)
        sup._write_files(rendered.delivered)
        env = sup._child_env(rendered)
        env.update(self.probe.env())
        try:
            self.pid = sup._spawn(sup.argv, env, new_session=False, file_actions=())
        except CommandError as exc:
            self._failed(f"could not be started ({exc})")
            return
        self.give_up_at = now + self.ready_timeout
        sup.log.notice(f"{reason}: starting the new command beside the old one on the held sockets; "
                        f"the old one serves until the new one is ready ({self.ready.describe()})",
                        pid=self.pid, old_pid=sup.pid, variables=",".join(self.variables))

    def on_timer(self, now: float) -> None:
        for pid, kill_at in list(self.retiring.items()):
            if now >= kill_at:
                self.sup.log.warning(f"the previous command did not exit within kill_timeout "
                                     f"({self.sup.kill_timeout:g}s); sending SIGKILL to its process group", pid=pid)
                child.send_group(pid, signal.SIGKILL)
                self.retiring[pid] = now + 3600
        waiting = self._waiting()
        if waiting is None:
            return
        probe, give_up_at = waiting
        if probe.check(now):
            self._promote()
        elif now >= give_up_at:
            self._failed(f"was not ready within ready_timeout ({self.ready_timeout:g}s)")

    def on_exit(self, pid: int, status: int) -> bool:
        """Handle the exit of a process of ours; False for the supervisor's own."""
        if os.WIFSTOPPED(status) or os.WIFCONTINUED(status):
            return pid == self.pid or pid in self.retiring
        if pid == self.pid:
            child.send_group(pid, signal.SIGKILL)
            self.pid = None
            self._failed(child.describe_status(status))
            return True
        if pid in self.retiring:
            del self.retiring[pid]
            child.send_group(pid, signal.SIGKILL)   # its leftovers, as for any command
            self.sup.log.info(f"the previous command {child.describe_status(status)}", pid=pid)
            return True
        return False

    def _promote(self) -> None:
        sup = self.sup
        old, new = sup.pid, self.pid
        self._close_probe()
        self.pid = None
        sup.pid = new
        sup.rendered = self.rendered
        sup.child_started_at = sup.wallclock()
        sup.state = "running"
        sup.restarts += 1
        sup.last_restart_reason = self.reason
        sup.poller.committed(self.rendered)
        sup._give_terminal(new)
        if old is not None:
            self.retire(old)
        sup.log.notice(f"restarted the command: {self.reason}; the new command is ready, "
                        f"stopping the old one with {child.signal_name(sup.stop_signal)}",
                        pid=new, old_pid=old, variables=",".join(self.variables))
        sup.notifier.ready(status=f"running {os.path.basename(sup.argv[0])} (pid {new})")
        self._audit("restarted")
        sup._write_status()

    def _failed(self, why: str) -> None:
        sup = self.sup
        if self.pid is not None:
            self.retire(self.pid)
            self.pid = None
        self._close_probe()
        sup.state = "running"
        sup._write_files(sup.rendered.delivered)   # the old command's files, as they were
        sup.log.error(f"the new command {why}; the old one keeps serving with its old values; "
                      "retrying at the next change or poll", old_pid=sup.pid, variables=",".join(self.variables))
        sup.notifier.ready(status=f"restart failed; running {os.path.basename(sup.argv[0])} (pid {sup.pid})")
        self._audit("restart_failed")
        sup._write_status()

    def retire(self, pid: int) -> None:
        child.send(pid, self.sup.stop_signal)
        child.send(pid, signal.SIGCONT)
        self.retiring[pid] = self.sup.clock() + self.sup.kill_timeout

    def _audit(self, outcome: str) -> None:
        audit = getattr(self.sup.session, "audit", None)
        if audit is not None:
            audit("restart", outcome=outcome, variables=self.variables, reason=self.reason, overlap=True)

    def _close_probe(self) -> None:
        if self.probe is not None and self.probe.fileno() is not None:
            try:
                self.sup.selector.unregister(self.probe.fileno())
            except (KeyError, ValueError):
                pass
        if self.probe is not None:
            self.probe.close()

    # --- signals and the end ------------------------------------------------

    def forward(self, sig: int) -> None:
        if self.pid is not None:
            child.send(self.pid, sig)

    def shutdown(self, sig: int) -> None:
        """A SIGTERM/SIGINT shutdown: the new command is stopped too."""
        if self.pid is not None:
            child.send(self.pid, sig)
            self.retiring[self.pid] = self.sup.clock() + self.sup.kill_timeout
            self.pid = None
            self._close_probe()

    def teardown(self) -> None:
        """Wait (up to kill_timeout) for what is still stopping, then SIGKILL
        its group: nothing secretrun started outlives it."""
        if self.pid is not None:
            self.retire(self.pid)
            self.pid = None
        self._close_probe()
        deadline = time.monotonic() + self.sup.kill_timeout
        killed = False
        while self.retiring:
            for pid in list(self.retiring):
                try:
                    got, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    got = pid
                if got:
                    child.send_group(pid, signal.SIGKILL)
                    del self.retiring[pid]
            if not self.retiring:
                break
            if time.monotonic() >= deadline:
                if killed:
                    break     # the kernel did not take it within 5 s: nothing more to do
                for pid in self.retiring:
                    child.send_group(pid, signal.SIGKILL)
                killed, deadline = True, time.monotonic() + 5
            time.sleep(0.02)


def _nothing() -> None:
    """The notify socket is read by the probe; the selector only wakes the loop."""
