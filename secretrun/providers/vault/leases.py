"""Vault leases (dynamic credentials): renewal and revocation, and the
stamp that stands for a lease as a secret's version."""

from __future__ import annotations

import hashlib
from typing import Optional

from ...errors import Denied, InvalidSecret, NotFound
from ..base import Lease
from .login import VaultLogin


class VaultLeases(VaultLogin):
    """The lease capability: renew and revoke."""

    def renew(self, lease: Lease) -> Optional[Lease]:
        """Renew a lease; ``None`` when it cannot be (expired, revoked, not
        renewable), so the caller fetches the secret again."""
        if not lease.renewable:
            return None
        self._ensure_login()
        try:
            body = self._sdk(lambda: self._client.sys.renew_lease(lease.id), f"renewing lease of {_lease_path(lease)}")
        except (InvalidSecret, NotFound, Denied):
            return None
        renewed = Lease(str(body.get("lease_id") or lease.id), float(body.get("lease_duration") or 0),
                        bool(body.get("renewable")))
        for sid, (known, _) in list(self._leases.items()):
            if known.id == lease.id:
                self._leases[sid] = (renewed, self.clock())
        return renewed

    def revoke(self, lease: Lease) -> None:
        self._ensure_login()
        try:
            self._sdk(lambda: self._client.sys.revoke_lease(lease.id), f"revoking lease of {_lease_path(lease)}")
        except (InvalidSecret, NotFound):
            pass                      # already gone
        for sid, (known, _) in list(self._leases.items()):
            if known.id == lease.id:
                del self._leases[sid]


def _lease_version(lease: Lease) -> str:
    # A stamp of the lease, not its id: the id is enough to revoke it.
    return "lease-" + hashlib.sha256(lease.id.encode()).hexdigest()[:12]


def _lease_path(lease: Lease) -> str:
    # A lease id is the path it came from plus a random suffix.
    return lease.id.rsplit("/", 1)[0] if "/" in lease.id else "a secret"
