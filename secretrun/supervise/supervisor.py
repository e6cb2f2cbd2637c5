"""The ``Supervisor``: one command under supervision, assembled from its
parts (``loop``, ``lifecycle``, ``signals``, ``terminal``, ``poll``,
``health``), which share one state (declared in ``state``). Here: that
state's first values, setting up the signals, the terminal, the reaper and
the poller before the first start, and tearing them down after the last
exit (revoking leases when asked, closing the session).
"""

from __future__ import annotations

import os
import random
import selectors
import signal
import threading
import time
from typing import Any, Callable, Optional, Sequence

from .. import child
from ..errors import describe
from ..mask import Plumbing
from ..process import check_env_size, require_command
from ..watch import Poller
from .health import Health, _notifier
from .lifecycle import Lifecycle
from .loop import Loop
from .poll import Polling, poll_deadline
from .signals import HANDLED, Signals, _noop
from .terminal import Terminal


def _enum_value(x):
    return getattr(x, "value", x)


class Supervisor(Loop, Lifecycle, Signals, Terminal, Polling, Health):
    """One command under supervision. ``run()`` is the whole life cycle;
    nothing else is public. ``clock``, ``wallclock``, ``rand`` and ``spawn``
    are seams for tests."""

    def __init__(self, session, argv: Sequence[str], log, *, rendered=None,
                 clock: Callable[[], float] = time.monotonic,
                 wallclock: Callable[[], float] = time.time,
                 rand: Callable[[], float] = random.random,
                 spawn=child.spawn, write_files=None, notifier=None,
                 subreaper: bool = True, listeners=None) -> None:
        require_command(argv)
        self.session = session
        self.settings = session.settings
        self.argv = list(argv)
        self.log = log
        self.clock = clock
        self.wallclock = wallclock
        self.rand = rand
        self._spawn = spawn
        if spawn is child.spawn:
            # fork + exec: the command dies with us, and runs as settings.user.
            from ..forkspawn import spawner

            self._spawn = spawner(getattr(session, "run_as", None))
        if write_files is None:
            from ..deliver import write_files
        self._write_files = write_files
        if rendered is None:
            rendered = getattr(session, "rendered", None) or session.resolve()
        self.rendered = rendered
        self.stop_signal = int(_enum_value(self.settings.stop_signal))
        self.reload_signal = int(_enum_value(self.settings.reload_signal))
        self.kill_timeout = float(self.settings.kill_timeout)
        self.splay = float(self.settings.splay or 0)
        # systemd: secretrun is the unit's main process and speaks for the
        # command (READY, RELOADING around restarts, STOPPING, WATCHDOG).
        self.notifier = notifier or _notifier()
        self.next_watchdog: Optional[float] = None
        self.subreaper = subreaper

        self.pid: Optional[int] = None
        self.state = "new"           # new | running | splay | stopping
        self.after_stop = "restart"  # restart | exit | shutdown
        self.exit_after: Optional[int] = None
        self.result: Optional[int] = None
        self.kill_at: Optional[float] = None
        self.killed_at: Optional[float] = None
        self.splay_until: Optional[float] = None
        self.next_rendered = None
        self.next_reason = ""
        self.next_changed: Sequence[str] = ()
        self.suspended = False
        self.restarts = 0
        self.last_restart_reason: Optional[str] = None
        self.child_started_at: Optional[float] = None
        self._poll_thread: Optional[threading.Thread] = None
        self._poll_outcome: Any = None
        self._poll_started = 0.0
        self._abandoned_poll: Optional[threading.Thread] = None
        self.poll_deadline = poll_deadline(self.settings)
        self._keepalive_failing = False
        self.listeners = listeners
        self.overlap = self._overlap_part(listeners)

    def _overlap_part(self, listeners):
        """With held sockets, every start gets them (and LISTEN_PID through
        the exec shim) and restarts overlap; None without."""
        if not listeners:
            return None
        from ..readiness import parse as parse_ready
        from ..sockets import Spawner
        from .overlap import Overlap

        self._spawn = Spawner(listeners, self._spawn)
        ready = parse_ready(getattr(self.settings, "ready", None) or "delay:1s")
        return Overlap(self, ready, float(getattr(self.settings, "ready_timeout", 30.0)))

    # --- life cycle --------------------------------------------------------

    def run(self) -> int:
        check_env_size(self._child_env(self.rendered), self.argv)
        self._setup()
        try:
            self._start(self.rendered)
            while self.result is None:
                self._tick()
            return self.result
        finally:
            self._teardown()

    def _setup(self) -> None:
        self.selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, self._on_wakeup)
        self._old_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        self._old_handlers = {s: signal.signal(s, _noop) for s in HANDLED}
        self._old_handlers.update({s: signal.getsignal(s) for s in (signal.SIGTTOU, signal.SIGTTIN)})
        child.ignore_job_control_output()

        if child.is_pid1():
            self.log.debug("running as PID 1: orphaned processes are reaped here")
        elif self.subreaper and child.become_subreaper():
            self.log.debug("subreaper: orphaned descendants are reaped here")
        self.reaper = child.Reaper(clock=self.clock)

        self.tty = child.controlling_tty()
        mask = bool(getattr(self.settings, "mask_output", False))
        # The log's redactor is the engine that masks output too (redact.py).
        self.plumbing = Plumbing(self.selector, mask, self.rendered.values, self.clock,
                                 interactive=self.tty is not None, secrets=getattr(self.log, "redact", None))
        # Hand the terminal to the command unless it gets its own pty.
        self.handover = self.tty is not None and self.plumbing.mode != "pty"
        self.plumbing.enter_raw()
        self.poller = Poller(self.settings, self.rendered, log=self.log, clock=self.clock,
                             wallclock=self.wallclock, rand=self.rand)
        self._update_expiry()
        self._follow_changes()
        if self.notifier.watchdog_interval:
            self.next_watchdog = self.clock()

    def _teardown(self) -> None:
        stop_changes = getattr(self.session, "stop_changes", None)
        if stop_changes is not None:
            stop_changes()   # before the wakeup pipe closes under its threads
        if self.overlap is not None:
            self.overlap.teardown()
        if self.pid is not None:
            # Only reached on an unexpected error: never leave the command behind.
            child.send_group(self.pid, signal.SIGKILL)
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
        self.plumbing.close()
        self._give_terminal(os.getpgrp())
        signal.set_wakeup_fd(self._old_wakeup)
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self.selector.close()
        if self._poll_thread is not None:
            self._poll_thread.join(timeout=2.0)
        if self._poll_thread is None or not self._poll_thread.is_alive():
            # A refresh still hanging on the network will write to the pipe
            # when it ends: leave it open rather than hand its fd number on.
            os.close(self._wake_r)
            os.close(self._wake_w)
        if getattr(self.settings, "revoke_on_exit", False):
            try:
                self.session.revoke_leases()
                self.log.info("revoked the leases")
            except Exception as exc:  # noqa: BLE001 - reported, never fatal at exit
                self.log.warning("could not revoke the leases", error=describe(exc))
        try:
            self.session.close()
        except Exception as exc:  # noqa: BLE001
            self.log.debug("closing the session failed", error=describe(exc))
        self._write_status()
