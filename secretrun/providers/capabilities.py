"""What a provider can do beyond its core, asked by capability, not by type.

The core every provider has is ``fetch`` and ``close`` (with ``from_config``
to build it). Everything else is a capability: a small protocol a provider
implements by defining its verbs. ``base.Provider`` gives every verb a
harmless default so a subclass only writes what it offers; ``offers`` tells
an offered verb from an inherited default, so ``push``, ``rotate`` and the
core ask "can this store be written to?" rather than "is it one of these
five types?", and a third-party provider gets the same treatment as ours.

This module is not on the exec path (``typing.Protocol`` costs start-up).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Protocol, Tuple, Union, runtime_checkable

from ..errors import ProviderError
from .base import Lease, Provider, Secret, SecretId, Value


@runtime_checkable
class Core(Protocol):
    """Every provider: read one secret; release what it holds."""

    type_name: str

    def fetch(self, sid: SecretId) -> Secret: ...
    def close(self) -> None: ...


@runtime_checkable
class Batch(Protocol):
    """Read many secrets in one request (``batch_size`` > 1)."""

    batch_size: int

    def fetch_batch(self, sids: Tuple[SecretId, ...]) -> Mapping[SecretId, Union[Secret, ProviderError]]: ...


@runtime_checkable
class Probe(Protocol):
    """A cheap check of whether a secret changed: a version token to compare
    with the last ``Secret.version``, a ``Secret`` when the only cheap check is
    the read itself, None when there is none."""

    def probe(self, sid: SecretId) -> Union[str, Secret, None]: ...


@runtime_checkable
class Leases(Protocol):
    """Secrets with a lifetime (Vault dynamic credentials) and a login that
    must be kept alive."""

    def renew(self, lease: Lease) -> Optional[Lease]: ...
    def revoke(self, lease: Lease) -> None: ...
    def keepalive(self) -> None: ...


@runtime_checkable
class Write(Protocol):
    """Store a value as a new version; return the version id (or None).
    ``push`` and ``rotate`` use every provider that has it."""

    def write(self, sid: SecretId, value: Value) -> Optional[str]: ...


@runtime_checkable
class Age(Protocol):
    """When the current version was written (epoch seconds), for
    ``rotate --all-older-than``."""

    def changed_at(self, sid: SecretId) -> Optional[float]: ...


class ChangeSink(Protocol):
    """Where a pushing store reports (see ``ChangeSource``)."""

    def changed(self, outcomes: Mapping[SecretId, Union[Secret, ProviderError]]) -> None: ...
    def lost(self, sids: Tuple[SecretId, ...], reason: str) -> None: ...
    def restored(self, sids: Tuple[SecretId, ...]) -> None: ...


class Closable(Protocol):
    def close(self) -> None: ...


@runtime_checkable
class ChangeSource(Protocol):
    """A store that pushes changes (Kubernetes' watch; later Vault's event
    subscriptions, cloud change notifications) instead of being polled.
    ``changes(sids, sink)`` starts following ``sids`` and reports from the
    store's own threads: ``sink.changed({sid: Secret | ProviderError})`` for
    each new value, ``sink.lost(sids, reason)`` when the stream cannot be kept
    (those ids are polled again), ``sink.restored(sids)`` when it is back. It
    returns something with ``close()``, or None when it cannot push after all.
    Under ``--watch`` the supervisor stops polling what is followed
    (``secretrun.changes``); polling stays the fallback."""

    def changes(self, sids: Tuple[SecretId, ...], sink: ChangeSink) -> Optional[Closable]: ...


#: Capability name -> (protocol, the verbs that make it up).
CAPABILITIES: Dict[str, Tuple[Any, Tuple[str, ...]]] = {
    "batch": (Batch, ("fetch_batch",)),
    "probe": (Probe, ("probe",)),
    "lease": (Leases, ("renew", "revoke")),
    "write": (Write, ("write",)),
    "age": (Age, ("changed_at",)),
    "change_source": (ChangeSource, ("changes",)),
}


def offers(provider: Any, capability: str) -> bool:
    """True when ``provider`` (a class or an instance) implements
    ``capability`` itself: each of its verbs is defined, and is not
    ``base.Provider``'s default. ``batch`` also needs ``batch_size`` > 1."""
    _, verbs = CAPABILITIES[capability]
    if not all(implements(provider, verb) for verb in verbs):
        return False
    if capability == "batch":
        return int(getattr(provider, "batch_size", 1)) > 1
    return True


def implements(provider: Any, verb: str) -> bool:
    """True when ``provider`` (a class or an instance) defines ``verb`` itself
    rather than inheriting ``base.Provider``'s harmless default. For the verbs
    a capability does not require on their own (``keepalive``), and for a
    lease verb the core calls without its pair (``renew`` alone)."""
    cls = provider if isinstance(provider, type) else type(provider)
    mine = getattr(cls, verb, None)
    return mine is not None and mine is not getattr(Provider, verb, None)


def capabilities(provider: Any) -> Tuple[str, ...]:
    """Every capability ``provider`` offers, by name (for docs and ``check``)."""
    return tuple(name for name in CAPABILITIES if offers(provider, name))
