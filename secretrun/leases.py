"""The lease book: every leased secret a session holds (Vault dynamic
credentials), when it was last renewed, and when it ends for good.

A lease is renewed once past half its duration. One that cannot be renewed,
or whose renewal came back shorter than half (capped by its max TTL), gets an
end for good: ``next_expiry`` reports the earliest, and ``expiring`` names the
secrets to refetch before then, so the command can be restarted on new
credentials before the old ones stop working.

Every lease a fetch returns is recorded, whatever its store can do: its
lifetime is data, and a store that cannot renew still gets its secrets
refetched before they end. What the book asks of a store goes by capability
(``providers.capabilities.implements``): ``renew`` only where the store
renews (otherwise the lease simply cannot be extended), ``revoke`` only where
it revokes.

Vault keeps its own record of the leases it issued beside this book, on
purpose: its login token must not be revoked while a lease depends on it,
and its ``probe`` answers a lease's stamp while the lease lasts, also where
this book records nothing (``check`` and ``env`` resolve without it;
``push``, ``rotate`` and ``adopt`` call the provider themselves), on the
provider's own testable clock. A store reading the session's book would
depend on the core that calls it. See ``providers.vault.client``.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Mapping, Optional, Set

from .errors import ProviderError
from .providers.base import Lease, Provider, Secret, SecretId
from .providers.capabilities import implements


class _Record:
    __slots__ = ("lease", "renewed_at", "end")

    def __init__(self, lease: Lease, renewed_at: float, end: Optional[float]) -> None:
        self.lease = lease
        self.renewed_at = renewed_at
        self.end = end          # None while renewal can still extend it


class LeaseBook:
    def __init__(self) -> None:
        self._records: Dict[SecretId, _Record] = {}

    def track(self, snapshot: Mapping[SecretId, Any]) -> None:
        """Record the lease of every fetched secret that has one."""
        now = time.time()
        for sid, out in snapshot.items():
            if isinstance(out, Secret) and out.lease is not None:
                lease = out.lease
                self._records[sid] = _Record(lease, now, None if lease.renewable else now + lease.duration)

    def expiring(self, horizon: float) -> Set[SecretId]:
        """Secrets whose lease ends for good before ``horizon`` (``time.time()``)."""
        return {sid for sid, r in self._records.items() if r.end is not None and r.end <= horizon}

    def renew_due(self, providers: Mapping[str, Provider], log: Callable[[str, SecretId], None]) -> None:
        """Renew every lease past half its duration with its provider's
        ``renew`` (None: the store cannot renew it)."""
        now = time.time()
        for sid, record in list(self._records.items()):
            lease = record.lease
            provider = providers.get(sid.provider)
            if record.end is not None or provider is None or now - record.renewed_at < lease.duration / 2:
                continue
            renewed = provider.renew(lease) if implements(provider, "renew") else None
            if renewed is None or not renewed.renewable:
                record.end = (now + renewed.duration) if renewed is not None else record.renewed_at + lease.duration
            else:
                if renewed.duration < lease.duration / 2:
                    record.end = now + renewed.duration
                record.lease, record.renewed_at = renewed, now
            log("renewed a lease" if renewed else "a lease cannot be renewed any further", sid)

    def next_expiry(self) -> Optional[float]:
        """The earliest time (``time.time()``) a lease ends for good."""
        ends = [r.end for r in self._records.values() if r.end is not None]
        return min(ends) if ends else None

    def revoke_all(self, providers: Mapping[str, Provider], warn: Callable[[ProviderError, SecretId], None]) -> None:
        """Revoke every lease (``revoke_on_exit``); a failure is reported, not raised."""
        for sid, record in list(self._records.items()):
            provider = providers.get(sid.provider)
            if provider is None or not implements(provider, "revoke"):
                continue
            try:
                provider.revoke(record.lease)
            except ProviderError as exc:
                warn(exc, sid)
