"""The supervisor's state, declared once for all its parts.

``Supervisor`` is assembled from parts (mixins) that share one state: the
attributes are set in ``Supervisor.__init__`` and ``_setup``; here they are
only declared, so each part reads as what it touches, and the type checker
sees the whole. The methods one part calls on another are declared for the
type checker only.
"""

from __future__ import annotations

import selectors
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence

if TYPE_CHECKING:
    from ..child import Reaper
    from ..mask import Plumbing
    from ..watch import Decision, Poller


class State:
    # what is supervised, and the seams for tests
    session: Any
    settings: Any
    argv: List[str]
    log: Any
    clock: Callable[[], float]
    wallclock: Callable[[], float]
    rand: Callable[[], float]
    _spawn: Any
    _write_files: Any
    listeners: Any
    overlap: Any                    # overlap.Overlap with held sockets, else None
    subreaper: bool
    # settings read once
    stop_signal: int
    reload_signal: int
    kill_timeout: float
    splay: float
    poll_deadline: float
    # the command and the state machine (lifecycle.py)
    rendered: Any
    pid: Optional[int]
    state: str                      # new | running | splay | stopping (| overlap)
    after_stop: str                 # restart | exit | shutdown
    exit_after: Optional[int]
    result: Optional[int]
    kill_at: Optional[float]
    killed_at: Optional[float]
    splay_until: Optional[float]
    next_rendered: Any
    next_reason: str
    next_changed: Sequence[str]
    suspended: bool
    restarts: int
    last_restart_reason: Optional[str]
    child_started_at: Optional[float]
    # the poll thread (poll.py)
    _poll_thread: Optional[threading.Thread]
    _poll_outcome: Any
    _poll_started: float
    _abandoned_poll: Optional[threading.Thread]
    _keepalive_failing: bool
    # health (health.py)
    notifier: Any
    next_watchdog: Optional[float]
    # set up by _setup: the loop, the signals, the terminal, the reaper, the poller
    selector: selectors.BaseSelector
    _wake_r: int
    _wake_w: int
    _old_wakeup: int
    _old_handlers: Dict[int, Any]
    reaper: Reaper
    tty: Optional[int]
    plumbing: Plumbing
    handover: bool
    poller: Poller

    if TYPE_CHECKING:
        # one part calls another: loop -> lifecycle, poll, signals;
        # lifecycle -> terminal, health; signals -> lifecycle, terminal; ...
        def _act(self, decision: Decision) -> None: ...
        def _stop(self, then: str) -> None: ...
        def _kill(self, pid: int) -> None: ...
        def _shutdown(self, sig: int) -> None: ...
        def _reap(self) -> None: ...
        def _child_env(self, rendered) -> dict: ...
        def _child_stopped(self, pid: int, sig: int) -> None: ...
        def _give_terminal(self, pgrp: int) -> None: ...
        def _resume(self) -> None: ...
        def _on_signal(self, sig: int) -> None: ...
        def _start_poll(self) -> None: ...
        def _poll_finished(self) -> None: ...
        def _abandon_poll(self) -> None: ...
        def _write_status(self) -> None: ...
