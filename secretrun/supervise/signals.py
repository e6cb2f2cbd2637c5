"""Which signals the supervisor forwards, which it keeps, and what it does
with each one it receives.

Every catchable signal that is not job control, SIGCHLD or a fault
(``FORWARDED``: SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1/2, SIGWINCH,
SIGALRM, SIGPWR, ..., the real-time signals) is forwarded to the command's
pid, as the kernel would deliver them had secretrun exec'd it. SIGTERM and SIGINT also start a shutdown: after
``kill_timeout`` the command's whole process group gets SIGKILL, and
secretrun exits only after its child, with the child's code, however many
more signals arrive. SIGTSTP and SIGCONT go to the command's process group.

Signals arrive as bytes on the loop's wakeup pipe (``signal.set_wakeup_fd``);
``Signals._on_signal`` is called for each by ``loop.Loop._on_wakeup``.
"""

from __future__ import annotations

import signal

from .. import child
from .state import State

# Signals secretrun keeps for itself: uncatchable, job control (terminal.py),
# SIGCHLD (reaping), faults (they concern secretrun's own code), and
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


class Signals(State):
    """The supervisor's part that handles a received signal (a mixin of
    ``Supervisor``: it shares its state)."""

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


def _noop(signum, frame) -> None:
    """Signals are read from the wakeup pipe; this only has to exist so the
    C-level handler writes the signal number there."""

