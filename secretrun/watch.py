"""The poller: when to refresh, what a refresh result means, what to do.

It is a pure state machine: the supervisor asks ``next_deadline()``, runs
``session.refresh()`` (in a thread) when ``poll_due()``, and hands the
outcome to ``result()``, which returns a ``Decision`` or None. Time comes
from the injected ``clock`` (monotonic) and ``wallclock`` (for lease
expiries), randomness from ``rand``: tests replay whole histories without
sleeping.

Policy, in one place:

- **Interval**: every ``poll_interval``, jittered by ±10% so a fleet does
  not poll in step.
- **Change**: the child's rendered environment or a delivered file differs
  from what the running command has. A version number that moved without a
  value change is no change.
- **Debounce**: a change is acted on once a re-poll ``debounce`` later shows
  nothing further changing, so several secrets rotated together cause one
  restart; a store that keeps changing is acted on after at most one
  ``poll_interval``.
- **Outage**: a failed refresh keeps the command on its last good values.
  One warning per outage, retries with exponential backoff and jitter
  (``poll_interval`` × 2ⁿ, at most ``max(poll_interval, 60 s)``), one info
  line on recovery. With ``max_stale`` set, a command whose values have not
  been confirmed for that long is stopped (``Decision("stale")``).
- **Throttling**: a refresh that a store refused for its rate (``Throttled``,
  HTTP 429 and the like) is no outage: the command is left alone, the poll
  interval doubles (at least the store's ``Retry-After``), and steps back by
  one ``poll_interval`` after each answered poll (``secretrun.backoff``).
  One warning per episode, one info line once the interval has been back at
  ``poll_interval`` for 10 polls; the status file shows ``throttled`` and
  ``poll_interval_now``.
- **Leases**: before the earliest lease or token expiry that renewal cannot
  extend, a refresh is forced and any change restarts the command, whatever
  the variable's own policy.
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

from .backoff import Backoff, retry_after, throttling

# Strongest wins when several variables change at once.
_RANK = {"ignore": 0, "signal": 1, "restart": 2, "exit": 3}
BACKOFF_CAP = 60.0
JITTER = 0.10


class Decision(NamedTuple):
    """What the supervisor should do after a refresh.

    ``action``: ``restart`` | ``signal`` | ``exit`` | ``ignore`` | ``stale``.
    ``changed``: variable names (never values). ``reason``: a log line.
    ``rendered``: the new resolution (the last good one for ``stale``).
    """

    action: str
    changed: Tuple[str, ...]
    reason: str
    rendered: Any
    files_changed: bool = False


def changed_variables(old, new) -> Tuple[Tuple[str, ...], bool]:
    """Names of the variables whose value or delivered file differs, and
    whether any delivered file's content differs."""
    names = {k for k in set(old.env) | set(new.env) if old.env.get(k) != new.env.get(k)}
    files_changed = False
    for name in set(old.files) | set(new.files):
        if old.files.get(name) != new.files.get(name):
            files_changed = True
            names.add(name)
    return tuple(sorted(names)), files_changed


def same(a, b) -> bool:
    return a.env == b.env and a.files == b.files


def decide(old, new, default: str) -> Tuple[str, Tuple[str, ...], bool, List[str]]:
    """The action for the change from ``old`` to ``new``: the strongest of
    the changed variables' policies, with notes on upgrades.

    ``default`` is ``settings.on_change``. With ``exit``, every restart
    becomes an exit (the orchestrator restarts the container). ``signal``
    on a variable that is not a delivered file becomes a restart: a signal
    cannot change a running process's environment.
    """
    changed, files_changed = changed_variables(old, new)
    action, notes = "ignore", []
    for name in changed:
        policy = new.on_change.get(name) or old.on_change.get(name) or default
        if policy == "signal" and name not in new.files:
            notes.append(f"{name} is not a file, so a signal cannot deliver it: restarting")
            policy = "restart"
        if policy == "restart" and default == "exit":
            policy = "exit"
        if _RANK.get(policy, 2) > _RANK[action]:
            action = policy if policy in _RANK else "restart"
    return action, changed, files_changed, notes


def describe(names, rendered) -> str:
    """'DB_PASSWORD (${vault:secret/db#pw}), API_KEY changed': names and
    references, never values."""
    parts = []
    for name in names:
        source = getattr(rendered, "sources", {}).get(name)
        parts.append(f"{name} ({source})" if source else name)
    return ", ".join(parts)


def summarize_error(error: BaseException) -> str:
    """A failed refresh, for the log. ResolutionError problems name
    variables and references only; any other exception is named by its
    type alone, since an SDK's message may echo a response."""
    problems = getattr(error, "problems", None)
    if problems:
        shown = "; ".join(str(p) for p in problems[:3])
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        return shown + more
    from .errors import describe

    return describe(error)


class Poller:
    """Scheduling and change detection for one supervised command."""

    def __init__(self, settings, rendered, *, log, clock: Callable[[], float] = time.monotonic,
                 wallclock: Callable[[], float] = time.time,
                 rand: Callable[[], float] = random.random) -> None:
        self.log = log
        self.clock = clock
        self.wallclock = wallclock
        self.rand = rand
        self.interval = max(float(settings.poll_interval), 0.05)
        debounce = getattr(settings, "debounce", None)
        self.debounce = float(debounce) if debounce is not None else min(1.0, self.interval / 10)
        self.default = str(getattr(settings.on_change, "value", settings.on_change))
        self.max_stale = settings.max_stale
        now = clock()
        self.current = rendered          # what the running command has
        self.pending = None              # a change seen, waiting to settle
        self.pending_since = 0.0
        self.in_flight = False
        self.woken = False               # a store pushed a change: refresh now
        self.forced = False              # this refresh is for an expiring lease
        self.failures = 0
        self.outage_since: Optional[float] = None
        self.last_ok = now
        self.lease_deadline: Optional[float] = None
        self.backoff = Backoff(self.interval, rand)
        self.next_poll = now + self._jittered(self.interval)
        # For the status file, in wall-clock time.
        self.stats: Dict[str, Any] = {"last_poll": None, "last_ok": wallclock(), "last_change": None,
                                      "last_change_vars": [], "store_healthy": True, "polls": 0,
                                      "failed_polls": 0, "throttled": False, "throttled_polls": 0,
                                      "throttled_since": None, "poll_interval_now": self.interval}

    def _jittered(self, delay: float) -> float:
        return delay * (1 - JITTER + 2 * JITTER * self.rand())

    def _next(self) -> float:
        """The jittered wait to the next regular poll, at the interval the
        throttling back-off allows (``poll_interval`` when there is none)."""
        return self._jittered(self.backoff.interval)

    # --- scheduling ---

    def wake(self) -> None:
        """A store pushed a change (``secretrun.changes``): refresh at once
        rather than at the next interval. A change already waiting to settle
        keeps its debounce, and an outage keeps its backoff."""
        self.woken = True

    def _woken(self) -> bool:
        return self.woken and self.pending is None and self.outage_since is None

    def next_deadline(self) -> float:
        times = [self.next_poll]
        if self._woken():
            times.append(self.clock())
        if self.lease_deadline is not None:
            times.append(self.lease_deadline)
        stale = self.stale_deadline()
        if stale is not None:
            times.append(stale)
        return min(times)

    def stale_deadline(self) -> Optional[float]:
        if self.max_stale is None or self.outage_since is None:
            return None
        return self.last_ok + float(self.max_stale)

    def poll_due(self, now: float) -> bool:
        if self.in_flight:
            return False
        if self.lease_deadline is not None and now >= self.lease_deadline:
            self.forced = True
            return True
        return now >= self.next_poll or self._woken()

    def begin(self) -> None:
        self.in_flight = True
        self.woken = False

    def set_expiry(self, expiry: Optional[float]) -> None:
        """The earliest wall-clock time a lease or token ends for good (from
        ``session.next_expiry()``). The forced refresh runs early enough to
        stop and start the command before it: 10% of the time left, and at
        least a minute plus one interval."""
        if expiry is None:
            self.lease_deadline = None
            return
        left = expiry - self.wallclock()
        margin = max(0.1 * left, 60.0 + self.interval)
        margin = min(margin, 0.5 * left) if left > 0 else 0.0
        self.lease_deadline = self.clock() + max(left - margin, 0.0)

    # --- outcomes ---

    def result(self, rendered=None, error: Optional[BaseException] = None) -> Optional[Decision]:
        """Record one refresh; the decision to act on, if any."""
        now = self.clock()
        self.in_flight = False
        self.stats["last_poll"] = self.wallclock()
        self.stats["polls"] += 1
        forced, self.forced = self.forced, False
        if error is not None:
            answers, only = throttling(error)
            if only:
                self._throttled(now, error, answers, forced)
                return None
            if answers:
                self.backoff.throttled(retry_after(answers))   # an outage elsewhere too: slow down as well
            return self._failed(now, error, forced)
        self._recovered(now)
        if forced:
            self.lease_deadline = None   # the session reports the next one
            return self._forced(rendered)
        if self.pending is None:
            if same(rendered, self.current):
                self.next_poll = now + self._next()
                return None
            self.pending, self.pending_since = rendered, now
            self.next_poll = now + self.debounce
            changed, _ = changed_variables(self.current, rendered)
            self.log.debug("change seen, waiting for it to settle", variables=", ".join(changed))
            return None
        if same(rendered, self.current):
            # Flipped back before it settled: nothing to do.
            self.pending = None
            self.next_poll = now + self._next()
            return None
        settled = same(rendered, self.pending)
        if not settled and now - self.pending_since < self.interval:
            self.pending = rendered
            self.next_poll = now + self.debounce
            return None
        self.pending = None
        self.next_poll = now + self._next()
        return self._decision(rendered)

    def _decision(self, rendered) -> Decision:
        action, changed, files_changed, notes = decide(self.current, rendered, self.default)
        for note in notes:
            self.log.info(note)
        self.stats["last_change"] = self.wallclock()
        self.stats["last_change_vars"] = list(changed)
        reason = f"{describe(changed, rendered)} changed"
        if action == "ignore":
            # The running command keeps its values; the next restart
            # (for another reason) brings the new ones.
            self.current = rendered
        return Decision(action, changed, reason, rendered, files_changed)

    def _forced(self, rendered) -> Optional[Decision]:
        self.next_poll = self.clock() + self._next()
        self.pending = None
        if same(rendered, self.current):
            self.log.warning("a lease is about to expire but the store returned the same values; "
                             "the command keeps them")
            return None
        action, changed, files_changed, _ = decide(self.current, rendered, self.default)
        if action == "ignore":
            # Old credentials are about to stop working: "ignore" would
            # leave the command with dead ones.
            action = "exit" if self.default == "exit" else "restart"
        self.stats["last_change"] = self.wallclock()
        self.stats["last_change_vars"] = list(changed)
        reason = f"a lease could not be renewed any further: {describe(changed, rendered)} renewed"
        return Decision(action, changed, reason, rendered, files_changed)

    def _failed(self, now: float, error: BaseException, forced: bool) -> Optional[Decision]:
        self.failures += 1
        self.stats["failed_polls"] += 1
        self.stats["store_healthy"] = False
        if self.outage_since is None:
            self.outage_since = now
            self.log.warning("could not refresh the secrets; the command keeps running on its last "
                             "good values, retrying with backoff", error=summarize_error(error))
        else:
            self.log.debug("refresh still failing", failures=self.failures, error=summarize_error(error))
        cap = max(self.interval, BACKOFF_CAP)
        delay = min(cap, self.interval * 2 ** min(self.failures, 20))
        self.next_poll = now + delay * (0.5 + 0.5 * self.rand())
        if self.backoff.active:   # never back faster than a throttling store allows
            self.next_poll = max(self.next_poll, now + self.backoff.interval)
        if forced:
            # Still forced, at the backoff pace.
            self.lease_deadline = self.next_poll
        return self.check_stale(now)

    def _throttled(self, now: float, error: BaseException, answers, forced: bool) -> None:
        """Every failure was a throttling answer: the store is up and the
        command keeps its values (no outage, no ``max_stale``), but this
        instance polls less often until the store stops refusing."""
        delay = self.backoff.throttled(retry_after(answers))
        self.stats["throttled_polls"] += 1
        self.stats["poll_interval_now"] = self.backoff.interval
        if not self.stats["throttled"]:
            self.stats["throttled"] = True
            self.stats["throttled_since"] = self.wallclock()
            self.log.warning("a store is throttling the polls; polling less often until it stops",
                             poll_interval=f"{self.backoff.interval:g}s", error=summarize_error(error))
        else:
            self.log.debug("still throttled", poll_interval=f"{self.backoff.interval:g}s")
        self.next_poll = now + delay
        if forced:
            self.lease_deadline = self.next_poll
        return None

    def _recovered(self, now: float) -> None:
        self.backoff.answered()
        self.stats["poll_interval_now"] = self.backoff.interval
        if self.stats["throttled"] and not self.backoff.episode:
            self.stats["throttled"] = False
            self.log.info("polling every poll_interval again: the stores stopped throttling",
                          throttled_for=f"{self.wallclock() - self.stats['throttled_since']:.0f}s",
                          throttled_polls=self.stats["throttled_polls"])
            self.stats["throttled_since"] = None
        if self.outage_since is not None:
            self.log.info("the stores answer again", down_for=f"{now - self.outage_since:.1f}s",
                          failed_polls=self.failures)
        self.outage_since = None
        self.failures = 0
        self.last_ok = now
        self.stats["last_ok"] = self.wallclock()
        self.stats["store_healthy"] = True

    def check_stale(self, now: float) -> Optional[Decision]:
        """``Decision("stale")`` once the values have gone unconfirmed for
        longer than ``max_stale`` (off when None)."""
        deadline = self.stale_deadline()
        if deadline is None or now < deadline:
            return None
        return Decision("stale", (), f"the stores have been unreachable for {now - self.last_ok:.0f}s "
                        f"(max_stale {float(self.max_stale):g}s)", self.current)

    def committed(self, rendered) -> None:
        """The running command now has ``rendered`` (restarted or signalled)."""
        self.current = rendered
        self.pending = None
