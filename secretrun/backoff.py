"""Slowing down when a store throttles: the poll interval of one watching
instance, lengthened multiplicatively and recovered additively.

A store's rate limit is shared by every instance that polls it, and none of
them can see the others. The only signal is the store's own answer: a
throttling error (``errors.Throttled``). So each instance, on its own:

- **doubles its interval** when a poll is throttled (at least the store's
  ``Retry-After``; at most 32 × ``poll_interval`` or an hour, whichever is
  less, but at least 4 × ``poll_interval``), and waits a random 100-150%
  of it, so instances throttled in the same second come back spread over
  half an interval instead of in one wave;
- **steps back by one poll_interval** (or an eighth of its interval, when
  that is more) after every poll the store answered, until it is at
  ``poll_interval`` again; it never polls faster than that. The eighth lets
  an instance that was throttled many times come back within tens of polls
  rather than hundreds.

Doubling removes half of a fleet's excess within a poll or two; stepping
back in small steps adds load slowly, so a fleet settles at the limit
(about 1% of requests refused when a poll is 20 requests) instead of
swinging around it, as TCP's congestion control does for the same reason.
``bench/fleet.py`` runs this code for 10,000 instances against models of
each store's limit. Pure: the caller passes randomness in.
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

from .errors import Throttled

FACTOR = 2.0        # interval × this on a throttled poll
SPREAD = 0.5        # a throttled instance waits interval × [1, 1 + SPREAD)
CAP_FACTOR = 32.0   # the interval is at most min(poll_interval × this, CAP_TIME)...
CAP_TIME = 3600.0
CAP_LEAST = 4.0     # ... but never less than poll_interval × this
STEP_SHARE = 0.125  # an answered poll takes max(poll_interval, interval × this) off the interval
CALM_POLLS = 10     # an episode ends after this many answered polls at poll_interval


class Backoff:
    """The current poll interval of one instance (``interval``), never below
    ``base`` (the configured ``poll_interval``)."""

    def __init__(self, base: float, rand: Callable[[], float]) -> None:
        self.base = base
        self.rand = rand
        self.interval = base
        self.episode = False   # throttled, and not yet CALM_POLLS answered polls at base since
        self.calm = 0
        self.cap = max(base * CAP_LEAST, min(base * CAP_FACTOR, CAP_TIME))

    @property
    def active(self) -> bool:
        """Polling slower than configured because of throttling."""
        return self.interval > self.base

    def throttled(self, retry_after: Optional[float] = None) -> float:
        """A poll was throttled: slow down. The delay until the next poll."""
        wait = float(retry_after or 0.0)
        self.episode, self.calm = True, 0
        self.interval = min(self.cap, max(self.interval * FACTOR, wait))
        return max(wait, self.interval * (1.0 + SPREAD * self.rand()))

    def answered(self) -> float:
        """The store answered a poll: one step back towards ``base``. The
        interval to use now (unjittered)."""
        if self.interval > self.base:
            self.interval = max(self.base, self.interval - max(self.base, self.interval * STEP_SHARE))
        elif self.episode:
            self.calm += 1
            self.episode = self.calm < CALM_POLLS
        return self.interval


def throttling(error: BaseException) -> Tuple[Tuple[Throttled, ...], bool]:
    """The throttling answers in a failed refresh, and whether they are all
    that went wrong (a ``ResolutionError`` carries them as ``throttled``)."""
    if isinstance(error, Throttled):
        return (error,), True
    found = tuple(getattr(error, "throttled", ()) or ())
    problems = getattr(error, "problems", None)
    return found, bool(found) and (problems is None or len(found) >= len(problems))


def retry_after(answers: Tuple[Throttled, ...]) -> Optional[float]:
    """The longest pause any of the answers asked for."""
    asked = [a.retry_after for a in answers if a.retry_after]
    return max(asked) if asked else None
