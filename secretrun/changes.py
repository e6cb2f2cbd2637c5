"""Pushed changes: the stores that say when a secret changes, instead of
being asked (``Provider.changes``; Kubernetes' watch is the first).

Under ``--watch`` the session starts one ``ChangeFeed``. Each provider that
can push is handed the ids it serves; while its stream holds, the poller's
refreshes skip those ids (no request reaches the store) and take the values
the stream delivered instead. Every delivery wakes the supervisor, which
refreshes at once, so a pushed change goes through the same debounce,
``on_change``, splay and ``max_stale`` as a polled one, a debounce after the
store's event rather than up to a ``poll_interval`` later.

When a stream cannot be kept (the store refuses the watch, it keeps
dropping), its ids are polled again until it is back; a store that cannot be
reached either way fails the polls, which is the outage ``max_stale`` counts.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .fetch import Outcome
from .providers.base import Provider, SecretId
from .providers.capabilities import offers

#: ``ChangeFeed.take``'s answer for an id whose stream holds and has
#: nothing new: keep the value you have, ask nobody.
QUIET = object()


class ChangeFeed:
    """The pushed state of every followed id; thread-safe (the stores'
    threads write, the poll thread reads)."""

    def __init__(self, notify: Callable[[], None], log: Any) -> None:
        self._notify = notify
        self.log = log
        self._lock = threading.Lock()
        self._updates: Dict[SecretId, Outcome] = {}
        self._following: set = set()
        self._sources: List[Any] = []
        self._closed = False

    def start(self, providers: Mapping[str, Provider], sids: List[SecretId]) -> int:
        """Ask every provider that can push to follow its ids; how many ids
        are followed."""
        by_provider: Dict[str, List[SecretId]] = {}
        for sid in sids:
            # Only a change source is asked; every other store is polled.
            if sid.provider in providers and offers(providers[sid.provider], "change_source"):
                by_provider.setdefault(sid.provider, []).append(sid)
        followed = 0
        for name, ids in by_provider.items():
            with self._lock:
                # Followed from the start: the stream's first listing is
                # delivered as changes, so nothing between the first
                # resolution and the watch is missed.
                self._following.update(ids)
            source = providers[name].changes(tuple(ids), self)
            if source is None:
                with self._lock:
                    self._following.difference_update(ids)
                continue
            self._sources.append(source)
            followed += len(ids)
            self.log.info("following pushed changes instead of polling", provider=name, secrets=len(ids))
        return followed

    # --- the sink (called from the stores' threads) ---

    def changed(self, outcomes: Mapping[SecretId, Outcome]) -> None:
        with self._lock:
            if self._closed:
                return
            self._updates.update(outcomes)
        self._wake()

    def lost(self, sids: Tuple[SecretId, ...], reason: str) -> None:
        with self._lock:
            if self._closed or not self._following.intersection(sids):
                return
            self._following.difference_update(sids)
        self.log.warning(f"lost the change stream, polling instead until it is back: {reason}",
                         provider=sids[0].provider if sids else None)
        self._wake()   # a poll now tells whether the store itself is down

    def restored(self, sids: Tuple[SecretId, ...]) -> None:
        with self._lock:
            if self._closed or self._following.issuperset(sids):
                return
            self._following.update(sids)
        self.log.info("the change stream is back; polling stops",
                      provider=sids[0].provider if sids else None)

    def _wake(self) -> None:
        try:
            self._notify()
        except Exception:  # noqa: BLE001 - a closed supervisor: nothing to wake
            pass

    # --- the session's side ---

    def take(self, sid: SecretId) -> Optional[Any]:
        """What the stream says about ``sid``: a delivered outcome (once),
        ``QUIET`` when it holds and has nothing new, None when ``sid`` must
        be polled."""
        with self._lock:
            update = self._updates.pop(sid, None)
            if update is not None:
                return update
            return QUIET if sid in self._following else None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sources, self._sources = self._sources, []
        for source in sources:
            try:
                source.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
