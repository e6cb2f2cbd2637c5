"""``vault``: HashiCorp Vault and OpenBao, through hvac.

Paths are what ``vault kv get`` takes: ``secret/app/db`` on a KV v2 mount
(no ``data/`` to write), ``kv1/app/db`` on a KV v1 mount, and any other
readable path as is (``database/creds/app``, ``auth/token/lookup-self``). Each
mount's type and KV version is learnt once per run, from the same preflight
endpoint the Vault CLI asks (``sys/internal/ui/mounts/PATH``); concurrent
fetches under one mount share that one request.

A fetch returns the secret's whole data map; the core picks ``#a.b`` fields.
KV v2 secrets carry their version (``?version=N`` pins one), and their
``probe`` reads only the metadata's ``current_version``. A read that comes
with a lease (dynamic credentials) keeps it in ``Secret.lease`` for the
supervisor to renew or revoke.

Connection and login defaults come from the variables an existing Vault or
OpenBao user already has (``VAULT_ADDR``, ``VAULT_TOKEN``, ``VAULT_NAMESPACE``,
``VAULT_CACERT``..., and their ``BAO_`` twins), read from
``ProviderContext.environ``. Login happens once per provider instance, on
first use; ``keepalive`` renews the token past half its TTL and logs in again
when it cannot. A token taken from the environment is reported by
``consumed_env`` so the child does not inherit it.

Every hvac and requests error is translated by ``_translate``, the one place
that maps status codes and transport failures to ``NotFound`` / ``Denied`` /
``Unavailable`` / ``InvalidSecret``. Messages are built here from the path, the
operation and the server address: Vault's own error text is never copied,
since an error body may echo what was sent.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
import urllib.parse
from concurrent.futures import Future
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Tuple
from urllib.request import proxy_bypass_environment  # type: ignore[attr-defined]  # not in typeshed

import hvac
import hvac.exceptions
import requests
import requests.adapters

from .. import logs
from ..errors import Denied, InvalidSecret, NotFound, ProviderError, Throttled, Unavailable
from .base import Lease, OptionReader, Provider, ProviderContext, Secret, SecretId, Value
from .options import VAULT_AUTH_KEYS as _METHOD_KEYS
from .options import VAULT_AUTH_METHODS as METHODS
from .options import vault_auth_problems

DEFAULT_ADDRESS = "https://127.0.0.1:8200"     # the Vault CLI's default
K8S_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
_TRUE = ("1", "t", "true", "yes", "on")        # Go's ParseBool, as the Vault CLI reads VAULT_SKIP_VERIFY


class _TlsError(Unavailable):
    """The server's certificate was refused: exit 69 like any unreachable
    store, but retrying cannot help, so the core does not."""

    retryable = False


class Mount(NamedTuple):
    """A mount as the preflight describes it. ``kv`` is 2 or 1 for KV
    mounts, 0 for every other engine (read as is)."""

    path: str          # with its trailing slash, "auth/" included for auth mounts
    type: str
    kv: int


_UNKNOWN_MOUNT = Mount("", "", 0)


class AuthConfig(NamedTuple):
    """``auth = { method = ... }``, validated. Only the keys of ``method``
    are set; ``token_env`` names the variables a token may come from."""

    method: str = "token"
    mount: str = ""
    role: Optional[str] = None
    role_id: Optional[str] = None
    role_id_file: Optional[str] = None
    secret_id: Optional[str] = None
    secret_id_file: Optional[str] = None
    token: Optional[str] = None
    token_file: Optional[str] = None
    jwt: Optional[str] = None
    jwt_file: Optional[str] = None
    home_token_file: Optional[str] = None   # ~/.vault-token, the CLI's token helper file


class VaultProvider(Provider):
    type_name = "vault"
    # Options the store's own environment gives stay commented out: written,
    # they would override VAULT_ADDR (tests/test_init.py).
    scaffold = ('[providers.vault]\ntype = "vault"\n'
                '# address = "https://vault.example.com:8200"   # default: VAULT_ADDR, then BAO_ADDR\n',
                "vault", "secret/{app}#{name}")
    # Vault answers many requests at once; 32 in flight covers the common
    # manifest in one round trip (see bench/vault.py).
    max_concurrency = 32
    tree_is_value = True   # a KV secret is one map, imported or read by field
    secret_is_map = True

    def __init__(self, ctx: ProviderContext, address: str, auth: AuthConfig, *, namespace: str = "",
                 verify: Any = True, cert: Optional[Tuple[str, str]] = None, timeout: float = 10.0,
                 proxies: Optional[Mapping[str, str]] = None, consumed: Tuple[str, ...] = ()) -> None:
        super().__init__(ctx)
        self.address = address.rstrip("/")
        self.namespace = namespace
        self.auth = auth
        self.timeout = timeout
        self._consumed = consumed
        #: Monotonic clock, replaceable so token lifetimes can be tested without waiting.
        self.clock: Callable[[], float] = time.monotonic

        session = requests.Session()
        # Environment proxies, netrc and REQUESTS_CA_BUNDLE are taken from
        # ``ctx.environ`` (or the options), not from the process environment.
        session.trust_env = False
        session.verify = verify
        if cert:
            session.cert = cert
        session.proxies.update(proxies or {})
        # No retries here: the core retries ``Unavailable``, and two layers of
        # retries multiply. A pool as large as the concurrency keeps every
        # connection for reuse instead of discarding the overflow.
        pool = requests.adapters.HTTPAdapter(pool_connections=2, pool_maxsize=self.max_concurrency,
                                             max_retries=0)
        session.mount("http://", pool)
        session.mount("https://", pool)
        # token="" and cert=False: hvac would otherwise read VAULT_TOKEN,
        # ~/.vault-token and VAULT_CLIENT_CERT from the process environment.
        self._client = hvac.Client(url=self.address, token="", verify=verify, cert=cert or False,
                                   timeout=(timeout, timeout), session=session, namespace=namespace or None)

        self._auth_lock = threading.Lock()
        # (token, what lookup-self said of it), for the message of a 403.
        self._token_check: Optional[Tuple[str, str]] = None
        self._logged_in = False
        self._login_attempts = 0
        self._login_failure: Optional[ProviderError] = None
        self._own_token = False           # True when we logged in (and may revoke it)
        self._token_at = 0.0              # clock() when the TTL below was granted
        self._token_ttl: Optional[float] = None   # seconds; None: not yet known; 0: never expires
        self._login_ttl = 0.0             # the TTL a fresh login grants
        self._token_renewable = False

        self._mounts: List[Mount] = []    # longest path first
        self._mount_lock = threading.Lock()
        self._mount_calls: Dict[str, Future] = {}
        self._leases: Dict[SecretId, Tuple[Lease, float]] = {}   # lease, clock() at issue
        self._no_metadata: set = set()    # KV v2 mounts whose metadata we may not read

    # -- configuration ---------------------------------------------------------

    @classmethod
    def from_config(cls, ctx: ProviderContext, options: Mapping[str, Any]) -> "VaultProvider":
        env = ctx.environ
        opts = OptionReader(ctx, options)
        address = opts.str("address") or _env(env, "VAULT_ADDR", "BAO_ADDR") or DEFAULT_ADDRESS
        if not address.startswith(("http://", "https://")):
            opts.error(f"'address' must start with http:// or https://, not {address!r}")
        namespace = (opts.str("namespace") or _env(env, "VAULT_NAMESPACE", "BAO_NAMESPACE") or "").strip("/")

        ca_cert = opts.str("ca_cert")
        ca_cert = ctx.path(ca_cert) if ca_cert else _env(env, "VAULT_CACERT", "BAO_CACERT", "VAULT_CAPATH",
                                                         "BAO_CAPATH")
        skip = opts.bool("tls_skip_verify", (_env(env, "VAULT_SKIP_VERIFY", "BAO_SKIP_VERIFY") or "").lower() in _TRUE)
        client_cert, client_key = opts.str("client_cert"), opts.str("client_key")
        client_cert = ctx.path(client_cert) if client_cert else _env(env, "VAULT_CLIENT_CERT", "BAO_CLIENT_CERT")
        client_key = ctx.path(client_key) if client_key else _env(env, "VAULT_CLIENT_KEY", "BAO_CLIENT_KEY")
        if bool(client_cert) != bool(client_key):
            opts.error("'client_cert' and 'client_key' go together")
        cert = (client_cert, client_key) if client_cert and client_key else None
        for what, path in (("ca_cert", ca_cert), ("client_cert", client_cert), ("client_key", client_key)):
            if path and not os.path.exists(path):
                opts.error(f"'{what}' {path} does not exist")

        timeout = ctx.timeout
        if isinstance(options.get("timeout"), str):
            timeout = _seconds(opts.str("timeout"), opts, "timeout", timeout)
        else:
            timeout = opts.number("timeout", timeout)
        if timeout is None or timeout <= 0:
            opts.error("'timeout' must be more than 0 seconds")
            timeout = ctx.timeout

        auth, consumed = _read_auth(ctx, opts, opts.table("auth", {}) or {})
        opts.done()

        if skip:
            # The user asked for it; urllib3 would warn on stderr at every request.
            import warnings

            import urllib3

            warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
        verify: Any = False if skip else (ca_cert or True)
        return cls(ctx, address, auth, namespace=namespace, verify=verify, cert=cert, timeout=timeout,
                   proxies=_proxies(env, address), consumed=consumed)

    def describe(self) -> str:
        if self.namespace:
            return f"{self.address} (namespace {self.namespace})"
        return self.address

    def consumed_env(self) -> Tuple[str, ...]:
        return self._consumed

    # -- reading ----------------------------------------------------------------

    def fetch(self, sid: SecretId) -> Secret:
        path = _clean(sid.path)
        self._ensure_login()
        mount = self._mount(path)
        if mount.kv == 2:
            return self._read_kv2(mount, path, sid)
        if sid.version is not None:
            kind = "a KV version 1 mount" if mount.kv == 1 else f"a {mount.type or 'non-KV'} mount"
            raise InvalidSecret(f"{path} is on {kind} ({mount.path or 'unknown'}), which keeps no versions, "
                                f"so '?version={sid.version}' cannot be read at {self.describe()}")
        body = self._call("get", path, f"reading {path}")
        data = body.get("data")
        if not isinstance(data, Mapping):
            raise NotFound(f"{path} holds no data at {self.describe()}")
        lease = None
        version = None
        if body.get("lease_id"):
            lease = Lease(str(body["lease_id"]), float(body.get("lease_duration") or 0),
                          bool(body.get("renewable")))
            self._leases[sid] = (lease, self.clock())
            version = _lease_version(lease)
        return Secret(dict(data), version=version, lease=lease)

    def _read_kv2(self, mount: Mount, path: str, sid: SecretId) -> Secret:
        rest = path[len(mount.path):]
        params = None
        what = f"reading {path}"
        if sid.version is not None:
            if not sid.version.isdigit() or int(sid.version) < 1:
                raise InvalidSecret(f"{path}: '?version={sid.version}' is not a KV v2 version "
                                    f"(a whole number from 1)")
            params = {"version": int(sid.version)}
            what = f"reading version {sid.version} of {path}"
        hint = None
        try:
            body = self._call("get", f"{mount.path}data/{rest}", what, params=params)
        except NotFound as exc:
            if not rest.startswith("data/"):
                raise
            # The API's path, as envconsul and `vault read` take it, is a common slip.
            hint = NotFound(f"{exc}; KV v2 paths are written without 'data/', as `vault kv get` takes them")
        if hint is not None:
            raise hint
        data = body.get("data") or {}
        values = data.get("data")
        if not isinstance(values, Mapping):
            raise NotFound(f"{path} holds no data at {self.describe()}")
        version = (data.get("metadata") or {}).get("version")
        return Secret(dict(values), version=None if version is None else str(version))

    def probe(self, sid: SecretId) -> Optional[str]:
        """The version a poll compares with ``Secret.version``: KV v2's
        ``current_version`` (one metadata read, no value), the pinned
        version, or the lease's stamp while it lasts. ``None`` (refetch) for
        KV v1, for secrets without a lease, and when metadata is forbidden."""
        if sid in self._leases:
            lease, issued = self._leases[sid]
            if lease.duration and self.clock() - issued < lease.duration:
                return _lease_version(lease)
            return None
        path = _clean(sid.path)
        self._ensure_login()
        mount = self._mount(path)
        if mount.kv != 2:
            return None
        if sid.version is not None:
            return sid.version
        if mount.path in self._no_metadata:
            return None
        try:
            body = self._call("get", f"{mount.path}metadata/{path[len(mount.path):]}", f"probing {path}")
        except Denied:
            # Policies often grant data/ but not metadata/: fall back to refetching.
            self._no_metadata.add(mount.path)
            return None
        current = (body.get("data") or {}).get("current_version")
        return None if current is None else str(current)

    def changed_at(self, sid: SecretId) -> Optional[float]:
        """When the current KV v2 version was written (its metadata's
        ``updated_time``); ``None`` elsewhere: KV v1 keeps no dates."""
        path = _clean(sid.path)
        self._ensure_login()
        mount = self._mount(path)
        if mount.kv != 2:
            return None
        body = self._call("get", f"{mount.path}metadata/{path[len(mount.path):]}", f"reading the age of {path}")
        return _epoch((body.get("data") or {}).get("updated_time"))

    # -- mounts -----------------------------------------------------------------

    def _mount(self, path: str) -> Mount:
        """The mount ``path`` is under, asked once per mount. Concurrent
        callers whose paths start with the same segment wait for one
        preflight instead of each sending their own."""
        known = self._known_mount(path)
        if known is not None:
            return known
        key = path.split("/", 1)[0]
        with self._mount_lock:
            pending = self._mount_calls.get(key)
            leader = pending is None
            if leader:
                pending = self._mount_calls[key] = Future()
        if not leader:
            try:
                pending.result()
            except ProviderError:
                pass              # asked again below, so the error names this path
            known = self._known_mount(path)
            if known is not None:
                return known
            return self._preflight(path)
        try:
            mount = self._preflight(path)
            pending.set_result(mount)
            return mount
        except BaseException as exc:
            pending.set_exception(exc)
            raise
        finally:
            with self._mount_lock:
                del self._mount_calls[key]

    def _known_mount(self, path: str) -> Optional[Mount]:
        probe = path + "/"
        for mount in self._mounts:
            if probe.startswith(mount.path):
                return mount
        return None

    def _preflight(self, path: str) -> Mount:
        try:
            body = self._call("get", f"sys/internal/ui/mounts/{path}", f"looking up the mount of {path}")
        except (Denied, NotFound, InvalidSecret):
            # 403: no mount there, or no access to it; 404: a server without
            # the endpoint. Read the path as is and let that read say which.
            return _UNKNOWN_MOUNT
        data = body.get("data") or {}
        mount_path = str(data.get("path") or "")
        if not mount_path:
            return _UNKNOWN_MOUNT
        if not mount_path.endswith("/"):
            mount_path += "/"
        if path.startswith("auth/") and not mount_path.startswith("auth/"):
            mount_path = "auth/" + mount_path
        engine = str(data.get("type") or "")
        kv = 0
        if engine in ("kv", "generic"):
            kv = 2 if str((data.get("options") or {}).get("version") or "1") == "2" else 1
        mount = Mount(mount_path, engine, kv)
        with self._mount_lock:
            if mount not in self._mounts:
                self._mounts.append(mount)
                self._mounts.sort(key=lambda m: len(m.path), reverse=True)
        logs.get().debug("vault mount learnt", provider=self.name, mount=mount.path, engine=engine, kv=kv)
        return mount

    # -- login and token lifetime -------------------------------------------------

    def _ensure_login(self) -> None:
        if self._logged_in:
            return
        seen = self._login_attempts
        with self._auth_lock:
            if self._logged_in:
                return
            if self._login_attempts != seen and self._login_failure is not None:
                # Another thread's login failed while this one waited: share
                # its outcome instead of sending the same login again.
                raise _copy(self._login_failure)
            self._login_attempts += 1
            try:
                self._login_locked()
            except ProviderError as exc:
                self._login_failure = exc
                raise
            self._login_failure = None
            self._logged_in = True

    def _login_locked(self) -> None:
        auth = self.auth
        if auth.method == "token":
            self._client.adapter.token = self._read_token()
            self._token_ttl = None          # looked up by keepalive, only when supervising
            return
        where = f"auth/{auth.mount}"
        what = f"logging in with {auth.method} at {where}"
        if auth.method == "approle":
            role_id = auth.role_id or _read_secret_file(auth.role_id_file, "approle role_id_file")
            secret_id = auth.secret_id
            if auth.secret_id_file:
                secret_id = _read_secret_file(auth.secret_id_file, "approle secret_id_file")
            body = self._sdk(lambda: self._client.auth.approle.login(
                role_id, secret_id, use_token=False, mount_point=auth.mount), what, login=True)
        elif auth.method == "kubernetes":
            jwt = _read_secret_file(auth.token_file, "Kubernetes service-account token")
            body = self._sdk(lambda: self._client.auth.kubernetes.login(
                auth.role, jwt, use_token=False, mount_point=auth.mount), what, login=True)
        else:
            jwt = auth.jwt or _read_secret_file(auth.jwt_file, "jwt_file")
            body = self._sdk(lambda: self._client.auth.jwt.jwt_login(
                auth.role, jwt, use_token=False, path=auth.mount), what, login=True)
        granted = body.get("auth") if isinstance(body, Mapping) else None
        token = (granted or {}).get("client_token")
        if not token:
            raise Denied(f"{what}: the server answered without a token ({self.describe()})")
        self._client.adapter.token = token
        self._own_token = True
        self._token_at = self.clock()
        self._token_ttl = self._login_ttl = float(granted.get("lease_duration") or 0)
        self._token_renewable = bool(granted.get("renewable"))
        logs.get().debug("vault login", provider=self.name, method=auth.method, mount=where,
                         ttl=self._token_ttl, renewable=self._token_renewable)

    def _read_token(self) -> str:
        auth = self.auth
        if auth.token:
            return auth.token
        if auth.token_file:
            return _read_secret_file(auth.token_file, "token_file")
        token = _env(self.ctx.environ, "VAULT_TOKEN", "BAO_TOKEN")
        if token:
            return token
        if auth.home_token_file:
            try:
                with open(auth.home_token_file, encoding="utf-8") as handle:
                    token = handle.read().strip()
            except OSError:
                token = ""
            if token:
                return token
        raise Denied(f"no Vault token for {self.describe()}: set VAULT_TOKEN (or BAO_TOKEN), "
                     "auth.token_file, or log in with `vault login`, or choose another auth.method")

    def keepalive(self) -> None:
        """Keep the login token valid while supervising: renew it once half
        its TTL has passed; log in again when it cannot be renewed, or when
        renewal no longer extends it (its max TTL is near). A token that
        never expires (TTL 0) needs nothing. Raises ``Unavailable`` when the
        server cannot be reached, ``Denied`` when no valid token can be had."""
        self._ensure_login()
        with self._auth_lock:
            if self._token_ttl is None:
                info = self._sdk(self._client.auth.token.lookup_self, "looking up the token")
                data = info.get("data") or {}
                self._token_at = self.clock()
                self._token_ttl = float(data.get("ttl") or 0)
                self._login_ttl = float(data.get("creation_ttl") or self._token_ttl)
                self._token_renewable = bool(data.get("renewable"))
            if not self._token_ttl or self.clock() - self._token_at < self._token_ttl / 2:
                return
            failure: Optional[ProviderError] = None
            if self._token_renewable:
                try:
                    body = self._sdk(self._client.auth.token.renew_self, "renewing the token")
                except ProviderError as exc:
                    # Revoked (403), expired, or past its max TTL, which Vault
                    # answers with a 500: log in again below. If the server is
                    # down, that login says so.
                    body, failure = None, exc
                granted = (body or {}).get("auth") or {}
                if granted:
                    self._token_at = self.clock()
                    self._token_ttl = float(granted.get("lease_duration") or 0)
                    self._token_renewable = bool(granted.get("renewable"))
                    # Renewal capped well below a full TTL means max TTL is
                    # near: a new login now beats an expired token later.
                    if not self._login_ttl or self._token_ttl >= self._login_ttl / 2:
                        return
            self._relogin_locked(failure)

    def _relogin_locked(self, failure: Optional[ProviderError] = None) -> None:
        old = self._client.adapter.token
        if self.auth.method == "token":
            token = self._read_token()
            if token == old:
                if isinstance(failure, Unavailable):
                    raise failure
                raise Denied(f"the Vault token for {self.describe()} can no longer be renewed, "
                             "and its source holds no newer one")
            self._client.adapter.token = token
            self._token_ttl = None
            return
        self._login_locked()

    # -- leases -------------------------------------------------------------------

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

    # -- writing --------------------------------------------------------------------

    def write(self, sid: SecretId, value: Value) -> Optional[str]:
        """Store a KV secret (a map). Returns the new KV v2 version, or
        ``None`` on KV v1."""
        if not isinstance(value, Mapping):
            raise InvalidSecret(f"{sid.path}: a Vault KV secret is a map of keys to values")
        path = _clean(sid.path)
        self._ensure_login()
        mount = self._mount(path)
        if mount.kv == 2:
            body = self._call("post", f"{mount.path}data/{path[len(mount.path):]}", f"writing {path}",
                              json={"data": dict(value)})
            version = (body.get("data") or {}).get("version")
            return None if version is None else str(version)
        if mount.kv == 1:
            self._call("post", path, f"writing {path}", json=dict(value))
            return None
        raise InvalidSecret(f"{path} is not on a KV mount, so secretrun cannot store it")

    def close(self) -> None:
        """Revoke the token this provider logged in with, unless a lease
        depends on it (revoking a token revokes its leases), then close the
        connections. A token the user supplied is left alone."""
        if self._own_token and not self._leases:
            try:
                self._sdk(self._client.auth.token.revoke_self, "revoking the login token")
            except ProviderError:
                pass                  # it expires on its own
            self._own_token = False
        self._client.adapter.close()

    # -- requests and errors ----------------------------------------------------------

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> Mapping[str, Any]:
        url = "/v1/" + urllib.parse.quote(path, safe="/:@+,=-._~")
        try:
            return self._sdk(lambda: self._client.adapter.request(method, url, raise_exception=False, **kwargs),
                             what)
        except Denied as exc:
            error = self._explain_denied(exc, what)
        raise error

    def _explain_denied(self, error: Denied, what: str) -> Denied:
        """Vault answers 403 both to a token it no longer accepts (expired,
        revoked) and to a valid token whose policies do not grant the path.
        The token's own lookup-self, which every valid token may call, tells
        them apart: the fix is a new login for one, a policy for the other.
        Asked once per token, not once per denied read."""
        if "(HTTP 403)" not in str(error):
            return error
        token = self._client.token
        known = self._token_check
        if known is None or known[0] != token:
            try:
                body = self._sdk(lambda: self._client.adapter.request(
                    "get", "/v1/auth/token/lookup-self", raise_exception=False), "looking up the token")
                data = body.get("data") if isinstance(body.get("data"), Mapping) else {}
                policies = data.get("policies") if isinstance(data.get("policies"), list) else []
                state = "valid: " + (", ".join(sorted(str(p) for p in policies)) or "none")
            except Denied:
                state = "invalid"
            except ProviderError:
                state = "unknown"
            known = self._token_check = (token, state)
        state = known[1]
        if state == "invalid":
            return Denied(f"{what}: the token is not valid, expired or revoked (HTTP 403, and so is its own "
                          f"lookup) ({self.describe()}); log in again or set a new VAULT_TOKEN")
        if state.startswith("valid: "):
            return Denied(f"{what}: permission denied (HTTP 403): the token is valid, but its policies "
                          f"({state[7:]}) do not grant this path ({self.describe()})")
        return error

    def _sdk(self, call: Callable[[], Any], what: str, login: bool = False) -> Mapping[str, Any]:
        """Run one hvac call; its JSON body, or one of our errors. The error
        is raised outside the ``except`` block so that no SDK exception is
        chained to it (an SDK message may quote the response)."""
        try:
            body = call()
        except (hvac.exceptions.VaultError, requests.RequestException, ValueError, OSError) as exc:
            error = _translate(exc, what, self.describe(), self.timeout, login)
        else:
            if isinstance(body, Mapping):
                return body
            if isinstance(body, requests.Response):
                if body.status_code == 204:
                    return {}
                if not body.ok:
                    error = _from_status(body.status_code, _json(body), what, self.describe(), login,
                                         _retry_after(body))
                else:
                    error = Unavailable(f"{what}: {self.describe()} did not answer with JSON")
            else:
                error = Unavailable(f"{what}: {self.describe()} did not answer with JSON")
        raise error


# --- the one error table ---------------------------------------------------------------

# Vault's statuses (https://developer.hashicorp.com/vault/api-docs#http-status-codes).
_STATUS: Dict[int, Tuple[type, str]] = {
    400: (InvalidSecret, "request refused (HTTP 400)"),
    401: (Denied, "not authenticated (HTTP 401)"),
    403: (Denied, "permission denied (HTTP 403)"),
    404: (NotFound, "no such secret (HTTP 404)"),
    405: (InvalidSecret, "this path cannot be read (HTTP 405)"),
    412: (Unavailable, "server not yet consistent (HTTP 412)"),
    429: (Throttled, "rate limit exceeded (HTTP 429)"),   # a rate-limit quota
    500: (Unavailable, "server error (HTTP 500)"),
    501: (Unavailable, "server not initialized (HTTP 501)"),
    502: (Unavailable, "bad gateway (HTTP 502)"),
    503: (Unavailable, "server sealed or in standby (HTTP 503)"),
    504: (Unavailable, "gateway timeout (HTTP 504)"),
}
# hvac raises one class per status, and drops the status itself.
_HVAC_STATUS: Dict[type, int] = {
    hvac.exceptions.InvalidRequest: 400,
    hvac.exceptions.Unauthorized: 401,
    hvac.exceptions.Forbidden: 403,
    hvac.exceptions.InvalidPath: 404,
    hvac.exceptions.PreconditionFailed: 412,
    hvac.exceptions.RateLimitExceeded: 429,
    hvac.exceptions.InternalServerError: 500,
    hvac.exceptions.VaultNotInitialized: 501,
    hvac.exceptions.BadGateway: 502,
    hvac.exceptions.VaultDown: 503,
}


def _from_status(status: int, body: Any, what: str, where: str, login: bool = False,
                 retry_after: Optional[float] = None) -> ProviderError:
    """Map an HTTP error status to ours. Of the body, only KV v2's deletion
    metadata and the word "sealed" are looked at; its text is never copied.
    ``retry_after`` (a 429's Retry-After) rides on ``Unavailable``."""
    cls: Any
    cls, reason = _STATUS.get(status) or ((InvalidSecret, f"request refused (HTTP {status})") if 400 <= status < 500
                                          else (Unavailable, f"unexpected answer (HTTP {status or '?'})"))
    body = body if isinstance(body, dict) else {}
    if login and not issubclass(cls, Unavailable):
        # Vault answers a bad role, secret id or JWT with 400, an unknown
        # auth mount with 403 or 405: all mean "cannot log in".
        return Denied(f"{what}: the server refused the credentials, {reason} ({where})")
    if status == 503 and "sealed" in " ".join(map(str, body.get("errors") or [])).lower():
        reason = "server is sealed (HTTP 503)"
    if cls is NotFound:
        meta = (body.get("data") or {}).get("metadata") if isinstance(body.get("data"), dict) else None
        if isinstance(meta, dict) and meta.get("destroyed"):
            return NotFound(f"{what}: version {meta.get('version')} was destroyed ({where})")
        if isinstance(meta, dict) and meta.get("deletion_time"):
            return NotFound(f"{what}: version {meta.get('version')} was deleted ({where})")
    if issubclass(cls, Unavailable):
        return cls(f"{what}: {reason} ({where})", retry_after=retry_after)
    return cls(f"{what}: {reason} ({where})")


def _translate(exc: BaseException, what: str, where: str, timeout: float, login: bool = False) -> ProviderError:
    """Map one hvac or requests exception to ours, by its type only."""
    if isinstance(exc, hvac.exceptions.VaultError):
        return _from_status(_HVAC_STATUS.get(type(exc), 0), exc.json, what, where, login)
    if isinstance(exc, requests.exceptions.SSLError):
        text = str(exc)
        if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text or "record layer failure" in text:
            # An https:// address, and a server that answers in plain HTTP
            # (`bao server -dev` does): no ca_cert can fix that.
            return _TlsError(f"{what}: {where} does not speak TLS (it answered in plain HTTP); "
                             "use an http:// address (address or VAULT_ADDR)")
        detail = "certificate verify failed" if "CERTIFICATE_VERIFY_FAILED" in text else "TLS handshake failed"
        return _TlsError(f"{what}: {detail} for {where}; set ca_cert (VAULT_CACERT) to the CA that signed "
                         "its certificate")
    if isinstance(exc, requests.exceptions.Timeout):
        return Unavailable(f"{what}: no answer within {timeout:g}s from {where}")
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = _connection_reason(exc)
        if reason == "timed out":   # requests wraps a read timeout inside the body as ConnectionError
            return Unavailable(f"{what}: no answer within {timeout:g}s from {where}")
        return Unavailable(f"{what}: cannot connect to {where} ({reason})")
    if isinstance(exc, requests.exceptions.RequestException):
        return Unavailable(f"{what}: request to {where} failed")
    return Unavailable(f"{what}: {where} gave an answer that could not be read")


def _retry_after(response: requests.Response) -> Optional[float]:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.strip().isdigit() else None


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _connection_reason(exc: BaseException) -> str:
    seen = set()
    node: Optional[BaseException] = exc
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        if isinstance(node, ConnectionRefusedError):
            return "connection refused"
        if isinstance(node, socket.gaierror):
            return "host not found"
        if isinstance(node, ConnectionResetError):
            return "connection reset"
        if isinstance(node, TimeoutError) or type(node).__name__ == "ReadTimeoutError":
            return "timed out"
        nxt = node.__cause__ or node.__context__
        if nxt is None and node.args and isinstance(node.args[0], BaseException):
            nxt = node.args[0]
        if nxt is None:
            reason = getattr(node, "reason", None)
            nxt = reason if isinstance(reason, BaseException) else None
        node = nxt
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "host not found"
    return "connection failed"


# --- helpers ---------------------------------------------------------------------------------


def _read_auth(ctx: ProviderContext, opts: OptionReader, table: Mapping[str, Any]) -> Tuple[AuthConfig, Tuple[str, ...]]:
    """Validate ``auth``; problems go to ``opts``. Returns the config and the
    environment variables a token may be taken from."""
    problems = vault_auth_problems(table)
    for problem in problems:
        opts.error(problem)
    method = table.get("method", "token")
    if method not in METHODS:
        return AuthConfig(), ()
    values: Dict[str, Optional[str]] = {key: value for key, value in table.items()
                                        if key in _METHOD_KEYS[method] and isinstance(value, str) and value}
    for key in ("role_id_file", "secret_id_file", "token_file", "jwt_file"):
        if values.get(key):
            values[key] = ctx.path(values[key])

    def one_of(a: str, b: str, required: bool) -> None:
        if values.get(a) and values.get(b):
            opts.error(f"'auth.{a}' and 'auth.{b}' cannot both be set")
        elif required and not values.get(a) and not values.get(b):
            opts.error(f"auth method {method!r} needs 'auth.{a}' or 'auth.{b}'")

    consumed: Tuple[str, ...] = ()
    home_file = None
    if method == "token":
        one_of("token", "token_file", False)
        if not values.get("token") and not values.get("token_file"):
            consumed = tuple(n for n in ("VAULT_TOKEN", "BAO_TOKEN") if ctx.environ.get(n))
            home = ctx.environ.get("HOME")
            home_file = f"{home.rstrip('/')}/.vault-token" if home else None
    elif method == "approle":
        one_of("role_id", "role_id_file", True)
        one_of("secret_id", "secret_id_file", False)
    elif method == "kubernetes":
        if not values.get("role"):
            opts.error("auth method 'kubernetes' needs 'auth.role'")
        values.setdefault("token_file", K8S_TOKEN_FILE)
    elif method == "jwt":
        one_of("jwt", "jwt_file", True)
    mount = (values.pop("mount", None) or ("" if method == "token" else method)).strip("/")
    return AuthConfig(method=method, mount=mount, home_token_file=home_file, **values), consumed


def _read_secret_file(path: Optional[str], what: str) -> str:
    """A credential file's content, stripped; ``Denied`` if it cannot be had."""
    if not path:
        raise Denied(f"no {what} configured")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read().strip()
    except FileNotFoundError:
        raise Denied(f"{what} {path} does not exist") from None
    except PermissionError:
        raise Denied(f"{what} {path} is not readable (permission denied)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise Denied(f"{what} {path} cannot be read ({type(exc).__name__})") from None
    if not text:
        raise Denied(f"{what} {path} is empty")
    return text


def _env(environ: Mapping[str, str], *names: str) -> Optional[str]:
    for name in names:
        value = environ.get(name)
        if value:
            return value
    return None


def _proxies(environ: Mapping[str, str], address: str) -> Dict[str, str]:
    """Proxies as Go's ProxyFromEnvironment reads them (which the Vault CLI
    uses), from ``environ``; VAULT_HTTP_PROXY wins over the generic ones."""
    host = urllib.parse.urlsplit(address).hostname or ""
    explicit = _env(environ, "VAULT_HTTP_PROXY", "VAULT_PROXY_ADDR", "BAO_HTTP_PROXY", "BAO_PROXY_ADDR")
    if explicit:
        return {"http": explicit, "https": explicit}
    no_proxy = _env(environ, "no_proxy", "NO_PROXY")
    if no_proxy and proxy_bypass_environment(host, {"no": no_proxy}):
        return {}
    out = {}
    for scheme in ("http", "https"):
        value = _env(environ, f"{scheme}_proxy", f"{scheme.upper()}_PROXY")
        if value:
            out[scheme] = value
    return out


def _seconds(text: Optional[str], opts: OptionReader, key: str, default: float) -> float:
    from ..units import parse_duration

    raw = (text or "").strip()
    # A bare number in a string is seconds here, as Vault's own clients read it.
    seconds = parse_duration(float(raw) if raw.replace(".", "", 1).isdigit() else raw)
    if seconds is not None:
        return seconds
    opts.error(f"'{key}' must be a number of seconds or a duration such as \"5s\", not {text!r}")
    return default


def _clean(path: str) -> str:
    return "/".join(part for part in path.strip().split("/") if part)


def _copy(error: ProviderError) -> ProviderError:
    copy = type(error)(*error.args)
    if isinstance(error, Unavailable):
        copy.retry_after = error.retry_after  # type: ignore[attr-defined]  # copy is an Unavailable
    return copy


def _lease_version(lease: Lease) -> str:
    # A stamp of the lease, not its id: the id is enough to revoke it.
    return "lease-" + hashlib.sha256(lease.id.encode()).hexdigest()[:12]


def _lease_path(lease: Lease) -> str:
    # A lease id is the path it came from plus a random suffix.
    return lease.id.rsplit("/", 1)[0] if "/" in lease.id else "a secret"


def _epoch(stamp: Any) -> Optional[float]:
    """RFC 3339 with nanoseconds (``2026-01-02T03:04:05.123456789Z``) as
    seconds since the epoch; the fraction does not matter for an age."""
    import calendar
    import re

    match = re.match(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)", str(stamp or ""))
    if not match:
        return None
    return float(calendar.timegm(tuple(int(x) for x in match.groups()) + (0, 0, 0)))
