"""A stop request (SIGTERM, SIGINT) that arrives before the command starts.

Resolution takes 150-200 ms, or as long as a slow store takes. As PID 1 (a
container) a signal with no handler is dropped by the kernel, so without
this a ``docker stop`` during start-up was lost, the command started anyway,
and only SIGKILL ended it. ``arm()`` runs before the manifest is read: the
first SIGTERM or SIGINT then raises ``StopRequested`` in the main thread,
secretrun starts nothing, and exits with 128+N (143 for SIGTERM, 130 for
SIGINT), the code the signal's default action gives a process that is not
PID 1. The supervisor takes these signals over once it is set up; in exec
mode, exec itself resets them to the default for the command.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import NoReturn

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_armed = False


class StopRequested(BaseException):
    """Not an ``Exception``: no provider's ``except Exception`` may swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def code(self) -> int:
        return 128 + self.signum


def _on_stop(signum: int, frame) -> None:
    if not _armed:
        return
    disarm()   # once: cleanup on the way out is not interrupted again
    raise StopRequested(signum)


def arm() -> None:
    global _armed
    _armed = True
    for sig in STOP_SIGNALS:
        signal.signal(sig, _on_stop)


def disarm() -> None:
    """Later stop signals are ignored here (the supervisor, or the exec'd
    command, has its own handling by then)."""
    global _armed
    _armed = False


def exit_stopped(stop: StopRequested) -> NoReturn:
    """Say why, and exit at once: a fetch thread still waiting on a slow
    store must not hold the exit (nothing was started, nothing to stop)."""
    try:
        name = signal.Signals(stop.signum).name
    except ValueError:
        name = f"signal {stop.signum}"
    try:
        sys.stderr.write(f"secretrun: received {name} while resolving the secrets; "
                         f"the command was not started (exit {stop.code})\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(stop.code)
