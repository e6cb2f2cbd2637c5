"""The terminal: handing it to the command, and job control.

In an interactive session the command is made the terminal's
foreground process group, so the terminal itself delivers Ctrl-C, Ctrl-\\,
Ctrl-Z and window changes to it, exactly once, and secretrun (now in the
background) receives none of them and forwards none. When the command stops
(Ctrl-Z), secretrun takes the terminal back and stops itself, so the shell
sees the job stopped; ``fg`` continues both. With ``mask_output`` on a
terminal the command has its own pseudo-terminal instead (see ``mask.py``).
"""

from __future__ import annotations

import os
import signal

from .. import child
from .state import State


class Terminal(State):
    """The supervisor's part for a command stopped or continued at the
    terminal (a mixin of ``Supervisor``: it shares its state)."""

    def _give_terminal(self, pgrp: int) -> None:
        """Make ``pgrp`` the terminal's foreground process group, when the
        terminal is handed to the command (``handover``)."""
        if self.handover and self.tty is not None:
            child.set_foreground(self.tty, pgrp)

    def _child_stopped(self, pid: int, sig: int) -> None:
        """The command (``pid``) was stopped by ``sig``."""
        if not (self.tty is not None and sig in (signal.SIGTSTP, signal.SIGTTIN,
                                                  signal.SIGTTOU, signal.SIGSTOP)):
            self.log.info(f"the command was stopped by {child.signal_name(sig)}", pid=pid)
            return
        if self.handover and sig in (signal.SIGTTIN, signal.SIGTTOU):
            try:
                foreground = os.tcgetpgrp(self.tty)
            except OSError:
                foreground = None
            if foreground == pid:
                # It touched the terminal in the instant before we made it
                # the foreground group: it is now, so let it go on.
                child.send_group(pid, signal.SIGCONT)
                return
        # The job was suspended at the terminal: suspend ourselves too, so
        # the shell sees it; the shell's SIGCONT (fg/bg) resumes both.
        self.log.debug("the command was suspended; suspending secretrun", signal=child.signal_name(sig))
        self._give_terminal(os.getpgrp())
        self.plumbing.leave_raw()
        self.suspended = True
        os.kill(os.getpid(), signal.SIGSTOP)

    def _resume(self) -> None:
        self.suspended = False
        # Only a command suspended at a terminal is resumed here.
        if self.pid is None or self.tty is None:
            return
        try:
            foreground = os.tcgetpgrp(self.tty) == os.getpgrp()
        except OSError:
            foreground = False
        if foreground:     # `fg`; after `bg` the command stays in the background
            self._give_terminal(self.pid)
            self.plumbing.enter_raw()
            self.plumbing.resize()
        child.send_group(self.pid, signal.SIGCONT)
