"""The poll thread and its deadline, and pushed-change wakeups.

A poll (keepalive, then refresh) runs in a thread of its own, so the loop
keeps serving signals and the command; the thread touches nothing but its
outcome, and wakes the loop with a byte on the wakeup pipe. A refresh past
``poll_deadline`` counts as a failed poll and its thread is abandoned.
What a refresh result means is ``watch.Poller``'s (pure, fake clock).
"""

from __future__ import annotations

import os
import threading

from ..errors import describe
from ..process import check_env_size
from .state import State

_POLL_DONE = 0      # byte written to the wakeup pipe by the poll thread
_PUSHED = 255       # ... by a store's thread: a pushed change (secretrun.changes)


class Polling(State):
    """The supervisor's part that runs polls and follows pushed changes (a
    mixin of ``Supervisor``: it shares its state)."""

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
                             error=describe(keepalive_error))
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
            self.log.debug("no lease expiry known", error=describe(exc))


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
    from ..deadline import DEADLINE_FACTOR
    from ..fetch import BACKOFF_CAP

    request = DEADLINE_FACTOR * float(getattr(settings, "timeout", 10.0))
    return (int(getattr(settings, "retries", 3)) + 1) * (request + BACKOFF_CAP) + request

