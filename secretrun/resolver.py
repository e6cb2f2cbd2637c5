"""Resolution: providers built, secrets fetched once each, concurrently.

``Session`` is one manifest with its providers and its latest ``Snapshot``
(``SecretId -> Secret | ProviderError``: errors stay data until ``childenv``
decides which variable they break). It is what the CLI, the Python API and
the supervisor share. The fetching itself (one request per secret, thread
pool, batches, retries, probes) is ``secretrun.fetch``.
"""

from __future__ import annotations

import _thread
import os
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from . import logs
from .consumed import ConsumedCredentials
from .errors import Kind, Problem, ProviderConfigError, ProviderError, ResolutionError, Throttled
from .fetch import (  # noqa: F401 - fetch_all, probe_all and the backoff constants: re-exported
    BACKOFF_BASE,
    BACKOFF_CAP,
    Outcome,
    Snapshot,
    fetch_all,
    probe_all,
)
from .manifest import Manifest, Settings
from .providers import load as load_provider
from .providers.base import Provider, ProviderContext, Secret, SecretId
from .template import Template, refs

if TYPE_CHECKING:  # pragma: no cover
    from .childenv import ChildEnv
    from .leases import LeaseBook


# --- the session -----------------------------------------------------------------


def _set_path(options: Dict[str, Any], path: Tuple[str, ...], value: Any) -> None:
    node = options
    for key in path[:-1]:
        node[key] = dict(node[key])
        node = node[key]
    node[path[-1]] = value


class Session(ConsumedCredentials):
    """One manifest, its providers, and its latest resolution.

    ``resolve()`` / ``refresh()`` return a ``ChildEnv`` (files delivered) or raise
    ``ResolutionError`` with every problem. Providers are built on first use,
    in dependency order (a provider's options may reference another
    provider), and only for the stores the manifest uses.
    """

    def __init__(self, manifest: Manifest, environ: Optional[Mapping[str, str]] = None, watch: bool = False,
                 log: Optional[logs.Logger] = None, deliver_files: bool = True, run_as=None) -> None:
        self.manifest = manifest
        self.run_as = run_as        # runas.RunAs: the command's user, who alone may read file = true values
        self.settings: Settings = manifest.settings
        self.environ = dict(os.environ if environ is None else environ)
        self.watch = watch
        # False (``check``, ``env``): ``file = true`` values are kept by
        # variable name in ``ChildEnv.files`` (no ``paths``) instead of being written out.
        self.deliver_files = deliver_files
        self.log = log or logs.get()
        if self.settings.fallback and self.settings.strict:
            # Said once, not at every poll's rebuild.
            self.log.info(f"settings.fallback ({self.settings.fallback}) is off: strict = true")
        self.providers: Dict[str, Provider] = {}
        self.provider_problems: Dict[str, Problem] = {}
        self.snapshot: Snapshot = {}
        self.rendered: Optional[ChildEnv] = None
        self._delivery: Any = None
        self._warned: set = set()
        self._consumed_by: Dict[str, str] = {}   # variable -> what read it, for ``check``
        self._leases: Optional["LeaseBook"] = None   # made at the first leased secret
        self._audit = None
        self._changes: Any = None        # a changes.ChangeFeed, under --watch with a pushing store
        if self.settings.audit_log:
            from .audit import AuditLog

            target = self.settings.audit_log
            if target != "stderr":
                target = os.path.join(manifest.base_dir, os.path.expanduser(target))
            try:
                self._audit = AuditLog(target)
            except OSError as exc:
                raise ResolutionError([Problem(Kind.MANIFEST, f"settings.audit_log: {target} cannot be "
                                               f"opened: {exc.strerror}", location=manifest.path)]) from None
        # _thread: ``threading`` is imported only when a thread pool is needed.
        self._lock = _thread.allocate_lock()

    # -- providers --

    def provider(self, name: str) -> Optional[Provider]:
        """The store named ``name``, built on first use; None when it could not
        be set up (the reason is in ``provider_problems``)."""
        return self._provider(name)

    def _provider(self, name: str, building: Tuple[str, ...] = ()) -> Optional[Provider]:
        if name in self.providers:
            return self.providers[name]
        if name in self.provider_problems:
            return None
        cfg = self.manifest.providers.get(name)
        ctx_type = cfg.type if cfg else "env"
        ctx = ProviderContext(name, ctx_type, self.environ, self.manifest.base_dir, self.settings.timeout)
        try:
            cls = load_provider(ctx_type)
            if not cls.local:
                logs.capture_stdlib()
            options: Dict[str, Any] = dict(cfg.options) if cfg else {}
            for path, tpl in (cfg.templates if cfg else ()):
                _set_path(options, path, self._render_option(name, path, tpl, building + (name,)))
            provider = cls.from_config(ctx, options)
        except ProviderError as exc:
            self.provider_problems[name] = Problem(exc.kind, str(exc), provider=name,
                                                   location=self.manifest.path)
            return None
        self.providers[name] = provider
        return provider

    def _render_option(self, name: str, path: Tuple[str, ...], tpl: Template, building: Tuple[str, ...]) -> Union[str, bytes]:
        from .childenv import render_template

        deps = {}
        for ref in refs(tpl):
            dep = self._provider(ref.provider, building)
            if dep is None:
                raise ProviderConfigError(f"providers.{name}.{'.'.join(path)} needs provider "
                                          f"'{ref.provider}', which could not be set up")
            if dep.type_name == "env":
                # A credential a store read from our environment for its own
                # login is not the child's business (unless [env] sets it):
                # the exact variable read, whatever the env provider's name or prefix.
                variable = getattr(dep, "prefix", "") + ref.path
                self._consumed_by.setdefault(variable, f"providers.{name}.{'.'.join(path)}")
            deps[ref.provider] = dep
        snap = fetch_all(deps, [r.secret_id for r in refs(tpl)], self.settings.retries)
        value, error = render_template(tpl, snap)
        if error is not None:
            raise type(error)(f"providers.{name}.{'.'.join(path)}: {error}")
        assert value is not None   # render_template gives a value or an error
        self.log.redact.add([value])
        return value

    def _wanted(self) -> List[SecretId]:
        wanted: List[SecretId] = []
        for var in self.manifest.env.values():
            wanted += [r.secret_id for r in refs(var.template)]
        for tpl in self.manifest.extras.values():
            wanted += [r.secret_id for r in refs(tpl)]
        wanted += [self._import_sid(imp) for imp in self.manifest.imports]
        return list(dict.fromkeys(wanted))

    def _import_sid(self, imp: Any) -> SecretId:
        """What an ``[[import]]`` fetches: a tree, or the plain secret where the
        store answers both alike, so ``#field`` references to it share the read."""
        sid = imp.ref.secret_id
        provider = self._provider(sid.provider)
        return sid if provider is not None and provider.tree_is_value else sid._replace(tree=True)

    # -- resolution --

    def _fetch(self, sids: List[SecretId], retry_throttled: bool = True) -> Snapshot:
        usable: Dict[str, Provider] = {}
        for name in dict.fromkeys(s.provider for s in sids):
            provider = self._provider(name)
            if provider is not None:
                usable[name] = provider
        sids = [s for s in sids if s.provider in usable]
        observe = self._observe if self._audit is not None else None
        refused: Snapshot = {}
        for sid in sids:
            try:
                usable[sid.provider].check(sid)
            except ProviderError as exc:
                refused[sid] = exc
        if any(err.kind == Kind.MANIFEST for err in refused.values() if isinstance(err, ProviderError)):
            for sid, err in refused.items():
                if observe:
                    observe(sid, err, 0.0)
            return refused  # a malformed reference: nothing is fetched
        return fetch_all(usable, sids, self.settings.retries, observe=observe, retry_throttled=retry_throttled)

    def _users(self, sid: SecretId) -> List[str]:
        names = [v.name for v in self.manifest.env.values() if any(r.secret_id == sid for r in refs(v.template))]
        names += [n for n, t in self.manifest.extras.items() if any(r.secret_id == sid for r in refs(t))]
        names += [i.label for i in self.manifest.imports if self._import_sid(i) == sid]
        return names

    def _observe(self, sid: SecretId, outcome: Outcome, seconds: float) -> None:
        fields: Dict[str, Any] = {"provider": sid.provider, "reference": str(sid), "variables": self._users(sid)}
        if isinstance(outcome, Secret):
            fields.update(version=outcome.version, outcome="ok")
        else:
            fields.update(outcome=outcome.kind.name.lower(), error=str(outcome))
        fields["duration_ms"] = round(seconds * 1000, 1)
        if self._audit is not None:
            self._audit.write("access", **fields)

    def audit(self, event: str, **fields: Any) -> None:
        """An audit record from outside the resolver (the supervisor's changes)."""
        if self._audit is not None:
            self._audit.write(event, **fields)

    def resolve(self) -> ChildEnv:
        """Fetch everything and build the child's environment."""
        with self._lock:
            self.snapshot = self._fetch(self._wanted())
            self._track_leases(self.snapshot)
            return self._render()

    def refresh(self) -> ChildEnv:
        """Re-resolve for polling: secrets whose provider offers a cheap
        ``probe`` are refetched only when the probe says their version moved.

        A store that throttles is asked nothing more in this refresh (its
        other secrets keep their last good values until the next poll) and
        its ``Throttled`` answers are not retried here: the error raised
        carries them as ``throttled``, and the poller slows down."""
        from .providers.capabilities import implements, offers  # not on the exec path (watching only)

        with self._lock:
            for store in list(self.providers.values()):
                if implements(store, "forget"):
                    store.forget()   # a local store reads its file again
            wanted = self._wanted()
            stale = []
            expiring = self._expiring()
            probes: Dict[str, List[SecretId]] = {}
            for sid in wanted:
                old = self.snapshot.get(sid)
                provider = self.providers.get(sid.provider)
                if provider is None or not isinstance(old, Secret) or sid in expiring:
                    stale.append(sid)
                elif self._changes is not None and self._pushed(sid):
                    continue   # the change stream answers for it
                elif not offers(provider, "probe"):
                    stale.append(sid)   # no cheap check: refetched, without asking
                else:
                    probes.setdefault(sid.provider, []).append(sid)
            failures: Dict[SecretId, ProviderError] = {}
            throttled = set()
            for name, sids in probes.items():
                for sid, token in probe_all(self.providers[name], sids).items():
                    old = getattr(self.snapshot[sid], "version", None)   # a Secret: only those are probed
                    if isinstance(token, ProviderError):
                        failures[sid] = token
                        if isinstance(token, Throttled):
                            throttled.add(name)
                    elif isinstance(token, Secret):  # the probe was a read: no second request
                        self.snapshot[sid] = token
                    elif token is None or old is None or token != old:
                        stale.append(sid)
            # What a throttling store would be asked next waits for the next poll.
            stale = [s for s in stale if s.provider not in throttled or not isinstance(self.snapshot.get(s), Secret)]
            fresh = self._fetch(stale, retry_throttled=False)
            # Keep last good values for secrets whose store failed: the
            # supervisor decides what an outage means, from the problems.
            failures.update((sid, out) for sid, out in fresh.items() if isinstance(out, ProviderError))
            good = {sid: out for sid, out in fresh.items() if not isinstance(out, ProviderError)}
            self.snapshot.update(good)
            self._track_leases(good)
            if failures:
                problems = [Problem(exc.kind, str(exc), provider=sid.provider, reference=str(sid))
                            for sid, exc in failures.items()]
                error = ResolutionError(problems, title="could not refresh secrets")
                error.throttled = tuple(exc for exc in failures.values() if isinstance(exc, Throttled))
                raise error
            return self._render()

    def _pushed(self, sid: SecretId) -> bool:
        """Whether the change stream answers for ``sid`` (its delivered value
        put in the snapshot), so that it is not polled."""
        from .changes import QUIET

        pushed = self._changes.take(sid)
        if pushed is None:
            return False
        if pushed is not QUIET:
            self.snapshot[sid] = pushed
        return True

    def watch_changes(self, notify: Callable[[], None]) -> int:
        """Follow pushed changes from the stores that can push (see
        ``secretrun.changes``); ``notify`` is called from their threads on
        every change. How many secrets are followed instead of polled."""
        from .changes import ChangeFeed

        self._changes = ChangeFeed(notify, self.log)
        return self._changes.start(self.providers, self._wanted())

    def stop_changes(self) -> None:
        if self._changes is not None:
            self._changes.close()

    def _build(self):
        from .childenv import build

        result = build(self.manifest, self.snapshot, self.environ, self.consumed_env(),
                       skip_providers=set(self.provider_problems), env_prefixes=self.env_prefixes())
        if not (self.watch and self.rendered is not None):
            # Watching, later values are registered by the supervisor when the
            # command gets them (redact.Secrets.deliver), in bounded generations.
            self.log.redact.add(result.values)
        for warning in result.warnings:
            # Once per session: a watching supervisor rebuilds at every poll.
            if warning not in self._warned:
                self._warned.add(warning)
                self.log.warning(str(warning))
        return result, list(self.provider_problems.values()) + list(result.problems)

    def inspect(self):
        """Resolve without raising, for ``check``: the ``ChildEnv`` (values
        included, so never print it whole) and every problem."""
        with self._lock:
            self.snapshot = self._fetch(self._wanted())
            return self._build()

    def _render(self) -> ChildEnv:
        result, problems = self._build()
        if problems:
            raise ResolutionError(problems)
        if result.files and self.deliver_files:
            paths = self._deliver(result.files)
            result = result._replace(env={**result.env, **paths}, paths=paths)
        self.rendered = result
        return self.rendered

    def _deliver(self, contents: Mapping[str, bytes]) -> Dict[str, str]:
        """Each ``file = true`` variable's path (its value for the child)."""
        from . import deliver

        if self._delivery is None:
            self._delivery = deliver.for_mode(self.watch, self.settings.file_dir, self.run_as)
        # Watching, the supervisor writes the files when it (re)starts or
        # signals the child: a file must not change under a running child
        # before the supervisor has decided what a change means.
        return self._delivery.place(contents, write=not self.watch)

    # -- supervision hooks --

    def _track_leases(self, snapshot: Mapping[SecretId, Outcome]) -> None:
        if self._leases is None:
            if not any(isinstance(out, Secret) and out.lease is not None for out in snapshot.values()):
                return   # most runs hold no lease: the book's module is not even imported
            from .leases import LeaseBook

            self._leases = LeaseBook()
        self._leases.track(snapshot)

    def _expiring(self) -> set:
        """Leased secrets that renewal can no longer extend and that end
        within a minute plus two polls: refetched now, so the child can be
        restarted on new credentials before the old ones stop working."""
        if self._leases is None:
            return set()
        return self._leases.expiring(time.time() + 60.0 + 2 * self.settings.poll_interval)

    def keepalive(self) -> None:
        """Renew login tokens, and every lease past half its duration (the
        lease book says which, and when one ends for good)."""
        from .providers.capabilities import implements

        for provider in list(self.providers.values()):
            if implements(provider, "keepalive"):
                provider.keepalive()
        if self._leases is not None:
            self._leases.renew_due(self.providers, lambda message, sid: self.log.info(message, reference=str(sid)))

    def next_expiry(self) -> Optional[float]:
        """The earliest time (``time.time()``) a lease ends for good."""
        return self._leases.next_expiry() if self._leases is not None else None

    def revoke_leases(self) -> None:
        if self._leases is not None:
            self._leases.revoke_all(self.providers, lambda exc, sid: self.log.warning(
                f"could not revoke a lease: {exc}", provider=sid.provider))

    def close_providers(self) -> None:
        """Release the stores (a Vault login token is revoked here); values
        already delivered stay valid."""
        for provider in self.providers.values():
            try:
                provider.close()
            except Exception:
                pass

    def close(self) -> None:
        self.stop_changes()
        self.close_providers()
        if self._audit is not None:
            self._audit.close()
        if self._delivery is not None:
            self._delivery.close()
