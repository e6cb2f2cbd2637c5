"""Watch mode: secretrun stays as a small supervisor around the command.

``run(session, argv, log)`` starts the command on the environment the first
resolution rendered, then loops until it is over, and returns secretrun's
exit code:

- the command's own code when it exits, 128+N when signal N killed it (the
  command is never restarted for exiting: systemd or Kubernetes do that);
- ``EXIT_ON_CHANGE`` (75, EX_TEMPFAIL) after ``on_change = "exit"`` stopped
  the command because a secret changed: restart me with the new values;
- ``EXIT_STALE`` (69, as for an unreachable store) after ``max_stale``;
- 126/127 when a restart finds the command gone.

With held sockets (``listeners``), a restart overlaps: ``overlap.Overlap``
starts the new command beside the old one and stops the old one once the new
one is ready.

One loop owns everything (no Runner-style sprawl): a selector waits on the
signal wakeup pipe, the command's output (``mask_output``) and the poll
thread's completion byte, with the nearest deadline as timeout. The one loop
is the only place that waits for children: ``child.Reaper`` collects the
command's status by pid and reaps every orphan, so no status is lost (a
second waiter would turn the command's exit into a silent 0). As PID 1, or
as a subreaper otherwise, orphaned grandchildren are reaped here too.

Signals. Every catchable signal that is not job control, SIGCHLD or a fault
(``FORWARDED``: SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1/2, SIGWINCH,
SIGALRM, SIGPWR, ..., the real-time signals) is forwarded to the command's
pid, as the kernel would deliver them had secretrun exec'd it. SIGTERM and SIGINT also start a shutdown: after
``kill_timeout`` the command's whole process group gets SIGKILL, and
secretrun exits only after its child, with the child's code, however many
more signals arrive. SIGTSTP and SIGCONT go to the command's process group.

The terminal. In an interactive session the command is made the terminal's
foreground process group, so the terminal itself delivers Ctrl-C, Ctrl-\\,
Ctrl-Z and window changes to it, exactly once, and secretrun (now in the
background) receives none of them and forwards none. When the command stops
(Ctrl-Z), secretrun takes the terminal back and stops itself, so the shell
sees the job stopped; ``fg`` continues both. With ``mask_output`` on a
terminal the command has its own pseudo-terminal instead (see ``mask.py``).
"""

from __future__ import annotations

import os
import random
import selectors
import signal
import threading
import time
from typing import Any, Callable, Optional, Sequence

from . import child, exitcodes
from .errors import CommandError
from .mask import Plumbing
from .process import check_env_size, require_command
from .watch import Decision, Poller

EXIT_ON_CHANGE = exitcodes.ON_CHANGE
EXIT_STALE = exitcodes.STALE

# Signals secretrun keeps for itself: uncatchable, job control (handled
# below), SIGCHLD (reaping), faults (they concern secretrun's own code), and
# SIGPIPE/SIGXFSZ (Python ignores both; they arise from our own writes).
OWN = frozenset(getattr(signal, name) for name in (
    "SIGKILL", "SIGSTOP", "SIGCHLD", "SIGTSTP", "SIGCONT", "SIGTTIN", "SIGTTOU",
    "SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT", "SIGTRAP", "SIGSYS", "SIGPIPE", "SIGXFSZ")
    if hasattr(signal, name))
_FIRST = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
          signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)
# Every other catchable signal is forwarded to the command, as PID 1 and not:
# SIGALRM, SIGVTALRM, SIGPROF, SIGIO, SIGPWR (lxc-stop), SIGXCPU, SIGSTKFLT,
# SIGURG and the real-time signals SIGRTMIN..SIGRTMAX. (glibc keeps 32 and 33
# for itself; valid_signals() leaves them out.)
FORWARDED = _FIRST + tuple(sorted(s for s in signal.valid_signals() if s not in OWN and s not in _FIRST))
SHUTDOWN = (signal.SIGTERM, signal.SIGINT)
HANDLED = FORWARDED + (signal.SIGCHLD, signal.SIGTSTP, signal.SIGCONT)

_POLL_DONE = 0      # byte written to the wakeup pipe by the poll thread
_PUSHED = 255       # ... by a store's thread: a pushed change (secretrun.changes)
_MAX_WAIT = 1.0     # the loop wakes at least this often, whatever happens
_KILL_GRACE = 30.0  # after SIGKILL, how long to wait for the kernel


def run(session, argv: Sequence[str], log=None, *, rendered=None, listeners=None) -> int:
    """Supervise ``argv`` until it is over; secretrun's exit code.

    ``rendered`` is the first resolution's result; when None, the
    session's ``rendered`` attribute, else a fresh ``session.resolve()``.
    Raises ``CommandError`` (126/127) when the command cannot be started.
    ``listeners`` (``sockets.Listeners``): sockets handed to every start of
    the command; restarts then overlap (see ``overlap.py``).
    """
    if log is None:
        from . import logs

        log = logs.get()
    return Supervisor(session, argv, log, rendered=rendered, listeners=listeners).run()


class _NoNotifier:
    """Not under systemd: nothing to tell (and no socket module to import)."""

    enabled = False
    watchdog_interval = None

    def ready(self, **_): return False
    def reloading(self, **_): return False
    def stopping(self): return False
    def watchdog(self): return False


def _notifier():
    if not (os.environ.get("NOTIFY_SOCKET") or os.environ.get("WATCHDOG_USEC")):
        return _NoNotifier()
    from .notify import Notifier

    return Notifier(os.environ)


def _enum_value(x):
    return getattr(x, "value", x)


class Supervisor:
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
            from .forkspawn import spawner

            self._spawn = spawner(getattr(session, "run_as", None))
        if write_files is None:
            from .deliver import write_files
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
        from .overlap import Overlap
        from .readiness import parse as parse_ready
        from .sockets import Spawner

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

    def _follow_changes(self) -> None:
        """Stores that push changes wake the loop instead of being polled."""
        follow = getattr(self.session, "watch_changes", None)
        if follow is not None:
            follow(self._pushed)

    def _pushed(self) -> None:
        """From a store's thread: wake the loop (the pipe is the only thing
        touched here)."""
        try:
            os.write(self._wake_w, bytes([_PUSHED]))
        except OSError:
            pass

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
        if self.handover:
            child.set_foreground(self.tty, os.getpgrp())
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
                self.log.warning("could not revoke the leases", error=_safe_error(exc))
        try:
            self.session.close()
        except Exception as exc:  # noqa: BLE001
            self.log.debug("closing the session failed", error=_safe_error(exc))
        self._write_status()

    # --- the loop ----------------------------------------------------------

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
        if self.overlap is not None and self.overlap.deadline() is not None:
            deadlines.append(self.overlap.deadline())
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
            self._kill()
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

    # --- children ----------------------------------------------------------

    def _start(self, rendered, reason: Optional[str] = None) -> None:
        self._write_files(rendered.files)
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
        if self.handover:
            child.set_foreground(self.tty, pid)
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
                self._child_stopped(os.WSTOPSIG(status))
            elif os.WIFCONTINUED(status):
                self.log.debug("the command continued", pid=pid)
            else:
                self._child_exited(status)

    def _child_exited(self, status: int) -> None:
        pid, self.pid = self.pid, None
        code = child.exit_code(status)
        self.kill_at = self.killed_at = None
        # Leftovers in its group (workers, `sh -c` children) die with it:
        # nothing secretrun started outlives it.
        if child.send_group(pid, signal.SIGKILL):
            self.log.debug("killed what was left of the command's process group", pgid=pid)
        self.plumbing.child_gone()
        if self.handover:
            child.set_foreground(self.tty, os.getpgrp())
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

    def _child_stopped(self, sig: int) -> None:
        if not (self.tty is not None and sig in (signal.SIGTSTP, signal.SIGTTIN,
                                                  signal.SIGTTOU, signal.SIGSTOP)):
            self.log.info(f"the command was stopped by {child.signal_name(sig)}", pid=self.pid)
            return
        if self.handover and sig in (signal.SIGTTIN, signal.SIGTTOU):
            try:
                foreground = os.tcgetpgrp(self.tty)
            except OSError:
                foreground = None
            if foreground == self.pid:
                # It touched the terminal in the instant before we made it
                # the foreground group: it is now, so let it go on.
                child.send_group(self.pid, signal.SIGCONT)
                return
        # The job was suspended at the terminal: suspend ourselves too, so
        # the shell sees it; the shell's SIGCONT (fg/bg) resumes both.
        self.log.debug("the command was suspended; suspending secretrun", signal=child.signal_name(sig))
        if self.handover:
            child.set_foreground(self.tty, os.getpgrp())
        self.plumbing.leave_raw()
        self.suspended = True
        os.kill(os.getpid(), signal.SIGSTOP)

    def _resume(self) -> None:
        self.suspended = False
        if self.pid is None:
            return
        try:
            foreground = os.tcgetpgrp(self.tty) == os.getpgrp()
        except OSError:
            foreground = False
        if foreground:     # `fg`; after `bg` the command stays in the background
            if self.handover:
                child.set_foreground(self.tty, self.pid)
            self.plumbing.enter_raw()
            self.plumbing.resize()
        child.send_group(self.pid, signal.SIGCONT)

    # --- signals -----------------------------------------------------------

    def _on_signal(self, sig: int) -> None:
        if sig == signal.SIGCONT:
            if self.suspended:
                self._resume()
            elif self.pid is not None:
                child.send_group(self.pid, signal.SIGCONT)
            return
        if sig == signal.SIGTSTP:
            if self.pid is not None:
                child.send_group(self.pid, signal.SIGTSTP)
            return
        if sig == signal.SIGWINCH and self.plumbing.mode == "pty":
            self.plumbing.resize()   # the kernel signals the command's group
            return
        if sig in SHUTDOWN:
            self._shutdown(sig)
            return
        if self.pid is not None:
            child.send(self.pid, sig)
            self.log.debug(f"forwarded {child.signal_name(sig)}", pid=self.pid)
        if self.overlap is not None:
            self.overlap.forward(sig)

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

    def _kill(self) -> None:
        self.log.warning(f"the command did not exit within kill_timeout ({self.kill_timeout:g}s); "
                         "sending SIGKILL to its process group", pid=self.pid)
        child.send_group(self.pid, signal.SIGKILL)
        self.kill_at = None
        self.killed_at = self.clock()

    # --- polling -----------------------------------------------------------

    def _start_poll(self) -> None:
        if self._abandoned_poll is not None and self._abandoned_poll.is_alive():
            # The refresh given up on still holds the session: this poll fails
            # too, without piling up a second thread behind it.
            self.poller.begin()
            self._poll_failed(PollTimeout("the previous refresh has still not returned"))
            return
        self._abandoned_poll = None
        self._poll_outcome = None
        self._poll_started = self.clock()
        self.poller.begin()
        self._poll_thread = threading.Thread(target=self._poll_job, name="secretrun-poll", daemon=True)
        self._poll_thread.start()

    def _poll_job(self) -> None:
        """In the poll thread: no state is touched here but the outcome."""
        keepalive_error = rendered = error = expiry = None
        try:
            self.session.keepalive()
        except Exception as exc:  # noqa: BLE001 - kept as data, logged by the loop
            keepalive_error = exc
        try:
            rendered = self.session.refresh()
            # Part of validation: a value the command's exec would refuse
            # (E2BIG) keeps the last good values, like any invalid value.
            check_env_size(self._child_env(rendered), self.argv)
            expiry = self.session.next_expiry()
        except Exception as exc:  # noqa: BLE001
            error = exc
        self._poll_outcome = (rendered, error, expiry, keepalive_error)
        try:
            os.write(self._wake_w, bytes([_POLL_DONE]))
        except OSError:
            pass

    def _poll_finished(self) -> None:
        if self._poll_thread is None or self._poll_outcome is None:
            return
        self._poll_thread.join()
        self._poll_thread = None
        rendered, error, expiry, keepalive_error = self._poll_outcome
        self._poll_outcome = None
        if keepalive_error is not None and not self._keepalive_failing:
            self.log.warning("could not renew the login token or leases; retrying at the next poll",
                             error=_safe_error(keepalive_error))
        elif keepalive_error is None and self._keepalive_failing:
            self.log.info("token and lease renewal works again")
        self._keepalive_failing = keepalive_error is not None
        if error is None:
            self.poller.set_expiry(expiry)
        decision = self.poller.result(rendered, error)
        self._write_status()
        if decision is not None and self.state == "running":
            self._act(decision)

    def _abandon_poll(self) -> None:
        """A refresh past its deadline counts as a failed poll (so backoff and
        ``max_stale`` go on); its thread is left to end on its own, and its
        outcome is dropped."""
        self._abandoned_poll, self._poll_thread = self._poll_thread, None
        self._poll_failed(PollTimeout(f"a refresh did not finish within {self.poll_deadline:g}s"))

    def _poll_failed(self, error: BaseException) -> None:
        decision = self.poller.result(None, error)
        self._write_status()
        if decision is not None and self.state == "running":
            self._act(decision)

    def _update_expiry(self) -> None:
        try:
            self.poller.set_expiry(self.session.next_expiry())
        except Exception as exc:  # noqa: BLE001
            self.log.debug("no lease expiry known", error=_safe_error(exc))

    def _act(self, decision: Decision) -> None:
        action = decision.action
        audit = getattr(self.session, "audit", None)
        if audit is not None:
            audit("change", action=action, variables=list(decision.changed), reason=decision.reason)
        if action == "ignore":
            self.log.info(f"{decision.reason}; on_change = ignore: the command keeps its values")
            return
        if action == "signal":
            self._write_files(decision.rendered.files)
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

    # --- health ------------------------------------------------------------

    def _write_status(self) -> None:
        path = getattr(self.settings, "status_file", None)
        if not path:
            return
        status = dict(self.poller.stats) if hasattr(self, "poller") else {}
        status.update(pid=os.getpid(), child_pid=self.pid, child_started_at=self.child_started_at,
                      restarts=self.restarts, last_restart_reason=self.last_restart_reason,
                      state=self.state if self.result is None else "exited")
        import json

        from .safefile import write_file

        try:
            write_file(path, json.dumps(status, indent=1, sort_keys=True).encode(), 0o644)
        except OSError as exc:
            self.log.debug("could not write the status file", path=path, error=exc.strerror)


class PollTimeout(Exception):
    """A refresh that did not come back in time; ``problems`` is what
    ``watch.summarize_error`` shows."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.problems = [message]


def poll_deadline(settings) -> float:
    """How long one poll (keepalive and refresh) may take: every attempt of
    a request at its deadline, with the longest backoff between them, plus
    one more request for a provider whose options need another's secret."""
    from .deadline import DEADLINE_FACTOR
    from .resolver import BACKOFF_CAP

    request = DEADLINE_FACTOR * float(getattr(settings, "timeout", 10.0))
    return (int(getattr(settings, "retries", 3)) + 1) * (request + BACKOFF_CAP) + request


def _noop(signum, frame) -> None:
    """Signals are read from the wakeup pipe; this only has to exist so the
    C-level handler writes the signal number there."""


def _safe_error(exc: BaseException) -> str:
    """A provider error's message names what was asked, never a value
    (errors.ProviderError); anything else is named by its type only."""
    from .errors import describe

    return describe(exc)
