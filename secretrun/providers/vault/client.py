"""The connection to one Vault server: a requests session and an hvac
client built without reading the process environment, and ``_call`` /
``_sdk``, the one way every request is sent and every failure translated
(``errors.py``). The state the other parts share (token, mounts, leases) is
set up here, so each part reads it from one place."""

from __future__ import annotations

import threading
import time
import urllib.parse
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Tuple

import hvac
import hvac.exceptions
import requests
import requests.adapters

from ...errors import Denied, ProviderError, Unavailable
from ..base import Lease, Provider, ProviderContext, SecretId
from .config import AuthConfig
from .errors import _from_status, _json, _retry_after, _translate

if TYPE_CHECKING:  # pragma: no cover
    from .mounts import Mount


class VaultClient(Provider):
    """What every part of the Vault provider stands on: the session, the
    login state, the mount table and the lease book, and the requests."""

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

        self._mounts: List["Mount"] = []    # longest path first
        self._mount_lock = threading.Lock()
        self._mount_calls: Dict[str, Future] = {}
        # The leases this provider issued: lease, clock() at issue. Not the
        # session's ``secretrun.leases.LeaseBook``, on purpose: ``close``
        # must not revoke the login token while a lease depends on it, and
        # ``probe`` answers a lease's stamp while it lasts, in every use of
        # the provider, also where the book records nothing: ``check`` and
        # ``env`` resolve through ``Session.inspect`` (no book), and ``push``,
        # ``rotate`` and ``adopt`` call the provider themselves; the token
        # would be revoked there under leases just handed out. Reading the
        # book would also make a store depend on the core that calls it, and
        # on its wall clock rather than this provider's testable ``clock``.
        # The book decides when to renew and to refetch; this dict only
        # answers those two Vault rules.
        self._leases: Dict[SecretId, Tuple[Lease, float]] = {}
        self._no_metadata: set = set()    # KV v2 mounts whose metadata we may not read

    def describe(self) -> str:
        if self.namespace:
            return f"{self.address} (namespace {self.namespace})"
        return self.address

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
                data = body.get("data")
                if not isinstance(data, Mapping):
                    data = {}
                policies = data.get("policies")
                if not isinstance(policies, list):
                    policies = []
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
