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

The parts, each a mixin of ``Supervisor`` sharing its state:

- ``supervisor.py``: the assembly, setting up and tearing down;
- ``state.py``: the state they share, declared once;
- ``loop.py``: the one loop (selector, deadlines, timers);
- ``lifecycle.py``: start, stop, restart, exit (the state machine);
- ``signals.py``: which signals are forwarded, and what each one does;
- ``terminal.py``: the terminal handed to the command, job control;
- ``poll.py``: the poll thread, its deadline, pushed-change wakeups;
- ``health.py``: sd_notify, the watchdog, the status file;
- ``overlap.py``: overlapping restarts (a part with its own state, called at hook points).
"""

from __future__ import annotations

from typing import Sequence

from .lifecycle import EXIT_ON_CHANGE, EXIT_STALE
from .poll import PollTimeout, poll_deadline
from .signals import FORWARDED, HANDLED, OWN, SHUTDOWN
from .supervisor import Supervisor

__all__ = ["run", "Supervisor", "EXIT_ON_CHANGE", "EXIT_STALE", "FORWARDED", "OWN", "SHUTDOWN",
           "HANDLED", "PollTimeout", "poll_deadline"]


def run(session, argv: Sequence[str], log=None, *, rendered=None, listeners=None) -> int:
    """Supervise ``argv`` until it is over; secretrun's exit code.

    ``rendered`` is the first resolution's result; when None, the
    session's ``rendered`` attribute, else a fresh ``session.resolve()``.
    Raises ``CommandError`` (126/127) when the command cannot be started.
    ``listeners`` (``sockets.Listeners``): sockets handed to every start of
    the command; restarts then overlap (see ``overlap.py``).
    """
    if log is None:
        from .. import logs

        log = logs.get()
    return Supervisor(session, argv, log, rendered=rendered, listeners=listeners).run()
