"""Health: what the supervisor tells the service manager (sd_notify, the
watchdog) and the status file.

systemd: secretrun is the unit's main process and speaks for the command
(READY, RELOADING around restarts, STOPPING, WATCHDOG); ``notify.py`` holds
the protocol. The status file reports health without values.
"""

from __future__ import annotations

import os

from .state import State


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
    from ..notify import Notifier

    return Notifier(os.environ)


class Health(State):
    """The supervisor's status file (a mixin of ``Supervisor``: it shares
    its state)."""

    def _write_status(self) -> None:
        path = getattr(self.settings, "status_file", None)
        if not path:
            return
        status = dict(self.poller.stats) if hasattr(self, "poller") else {}
        status.update(pid=os.getpid(), child_pid=self.pid, child_started_at=self.child_started_at,
                      restarts=self.restarts, last_restart_reason=self.last_restart_reason,
                      state=self.state if self.result is None else "exited")
        import json

        from ..safefile import write_file

        try:
            write_file(path, json.dumps(status, indent=1, sort_keys=True).encode(), 0o644)
        except OSError as exc:
            self.log.debug("could not write the status file", path=path, error=exc.strerror)

