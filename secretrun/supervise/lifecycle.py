"""The command's life cycle: start, stop, restart, exit, as a small state
machine.

``state`` is new | running | splay | stopping (``overlap`` during an
overlapping restart); ``after_stop`` (restart | exit | shutdown) is what
happens once the stopping command is reaped. A poll's ``watch.Decision``
comes in through ``_act``; the command's end through ``_reap``. The
command is never restarted for exiting: systemd or Kubernetes do that.
"""

from __future__ import annotations

import os
import signal
from typing import Optional

from .. import child, exitcodes
from ..errors import CommandError
from ..watch import Decision
from .state import State

EXIT_ON_CHANGE = exitcodes.ON_CHANGE
EXIT_STALE = exitcodes.STALE


class Lifecycle(State):
    """The supervisor's part that starts, stops and restarts the command
    (a mixin of ``Supervisor``: it shares its state)."""

    def _start(self, rendered, reason: Optional[str] = None) -> None:
        self._write_files(rendered.delivered)
        # Values are registered for masking when the command gets them, not
        # when a poll sees them (issue 13: memory stays bounded).
        self.plumbing.update_values(rendered.values)
        actions = self.plumbing.prepare()
        try:
            pid = self._spawn(self.argv, self._child_env(rendered), new_session=self.plumbing.new_session,
                              file_actions=actions)
        except CommandError:
            self.plumbing.child_gone()
            raise
        self.plumbing.started()
        self.pid = pid
        self.child_started_at = self.wallclock()
        self.state = "running"
        self.rendered = rendered
        self._give_terminal(pid)
        if reason is None:
            self.log.info("started the command", pid=pid)
        else:
            self.restarts += 1
            self.last_restart_reason = reason
            self.log.notice(f"restarted the command: {reason}", pid=pid)
        self.notifier.ready(status=f"running {os.path.basename(self.argv[0])} (pid {pid})")
        self._write_status()

    def _child_env(self, rendered) -> dict:
        env = dict(rendered.env)
        if self.notifier.enabled:
            # We notify for the command; two senders would disagree.
            for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
                if env.get(name) == os.environ.get(name):
                    env.pop(name, None)
        return env

    def _reap(self) -> None:
        others = self.overlap.pids() if self.overlap is not None else []
        for pid, status in self.reaper.reap(([self.pid] if self.pid else []) + others):
            if pid in others and self.overlap.on_exit(pid, status):
                continue
            if pid != self.pid:
                self.log.debug("reaped an orphaned process", pid=pid, status=child.describe_status(status))
            elif os.WIFSTOPPED(status):
                self._child_stopped(pid, os.WSTOPSIG(status))
            elif os.WIFCONTINUED(status):
                self.log.debug("the command continued", pid=pid)
            else:
                self._child_exited(pid, status)

    def _child_exited(self, pid: int, status: int) -> None:
        """The command (``pid``, until now ``self.pid``) exited with ``status``."""
        self.pid = None
        code = child.exit_code(status)
        self.kill_at = self.killed_at = None
        # Leftovers in its group (workers, `sh -c` children) die with it:
        # nothing secretrun started outlives it.
        if child.send_group(pid, signal.SIGKILL):
            self.log.debug("killed what was left of the command's process group", pgid=pid)
        self.plumbing.child_gone()
        self._give_terminal(os.getpgrp())
        if self.state != "stopping":
            level = self.log.info if code == 0 else self.log.warning
            level(f"the command {child.describe_status(status)}; exiting with its code "
                  "(the service manager decides about restarting)", pid=pid, code=code)
            self.result = code
            return
        if self.after_stop == "restart":
            self.log.debug(f"the command {child.describe_status(status)}", pid=pid)
            try:
                self._start(self.next_rendered, self.next_reason)
            except CommandError as exc:
                self.log.error(f"could not restart the command: {exc}")
                self.result = exc.code
                return
            self.poller.committed(self.next_rendered)
            self.next_rendered = None
        elif self.after_stop == "exit":
            self.log.info(f"the command {child.describe_status(status)}; exiting", code=self.exit_after)
            self.result = self.exit_after
        else:
            self.log.info(f"the command {child.describe_status(status)}; exiting with its code",
                          code=code)
            self.result = code

    def _shutdown(self, sig: int) -> None:
        name = child.signal_name(sig)
        if self.overlap is not None:
            self.overlap.shutdown(sig)
        if self.pid is None:
            self.result = exitcodes.killed_by(sig)
            return
        child.send(self.pid, sig)
        if self.after_stop == "shutdown" and self.state == "stopping":
            self.log.info(f"{name} again: forwarded; still waiting for the command to exit", pid=self.pid)
            return
        self.log.info(f"received {name}: forwarded to the command; waiting for it to exit",
                      pid=self.pid, kill_timeout=f"{self.kill_timeout:g}s")
        self.notifier.stopping()
        self.splay_until = None
        self.after_stop = "shutdown"
        if self.state != "stopping":
            self.state = "stopping"
            self.kill_at = self.clock() + self.kill_timeout

    def _stop(self, then: str) -> None:
        """Begin stopping the command: stop_signal now, SIGKILL to its
        group after kill_timeout; ``then`` happens once it is reaped.
        With held sockets a restart overlaps instead."""
        if then == "restart" and self.overlap is not None and self.overlap.applies() and self.pid is not None:
            self.overlap.begin(self.next_rendered, self.next_reason, self.next_changed)
            self.next_rendered = None
            return
        self.state = "stopping"
        self.after_stop = then
        if then == "restart":
            self.notifier.reloading(status=f"restarting: {self.next_reason}")
        else:
            self.notifier.stopping()
        if self.pid is None:
            return
        child.send(self.pid, self.stop_signal)
        child.send(self.pid, signal.SIGCONT)   # a stopped process cannot act on it
        self.kill_at = self.clock() + self.kill_timeout

    def _kill(self, pid: int) -> None:
        """kill_timeout is over: SIGKILL to the command's (``pid``) group."""
        self.log.warning(f"the command did not exit within kill_timeout ({self.kill_timeout:g}s); "
                         "sending SIGKILL to its process group", pid=pid)
        child.send_group(pid, signal.SIGKILL)
        self.kill_at = None
        self.killed_at = self.clock()

    def _act(self, decision: Decision) -> None:
        action = decision.action
        audit = getattr(self.session, "audit", None)
        if audit is not None:
            audit("change", action=action, variables=list(decision.changed), reason=decision.reason)
        if action == "ignore":
            self.log.info(f"{decision.reason}; on_change = ignore: the command keeps its values")
            return
        if action == "signal":
            self._write_files(decision.rendered.delivered)
            self.plumbing.update_values(decision.rendered.values)
            self.poller.committed(decision.rendered)
            self.rendered = decision.rendered
            self.notifier.reloading(status=decision.reason)
            if self.pid is not None:
                child.send(self.pid, self.reload_signal)
            self.notifier.ready(status=f"signalled the command (pid {self.pid})")
            self.log.notice(f"{decision.reason}: files rewritten, sent {child.signal_name(self.reload_signal)}",
                          pid=self.pid)
            return
        if action == "stale":
            self.log.error(f"{decision.reason}: stopping the command", pid=self.pid)
            self.exit_after = EXIT_STALE
            self._stop("exit")
            return
        self.next_rendered = decision.rendered
        self.next_reason = decision.reason
        self.next_changed = decision.changed
        if action == "exit":
            self.exit_after = EXIT_ON_CHANGE
            self.log.info(f"{decision.reason}: on_change = exit, stopping the command and exiting "
                          f"with {EXIT_ON_CHANGE}", pid=self.pid)
        then = "exit" if action == "exit" else "restart"
        if self.splay > 0:
            delay = self.rand() * self.splay
            self.log.info(f"{decision.reason}: {then} in {delay:.1f}s (splay)", pid=self.pid)
            self.state = "splay"
            self.after_stop = then
            self.splay_until = self.clock() + delay
        else:
            self._stop(then)
