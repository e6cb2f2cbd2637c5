"""Vault login and the token's lifetime: one login per provider instance,
on first use, by token, AppRole, Kubernetes or JWT; ``keepalive`` renews the
token past half its TTL and logs in again when it cannot."""

from __future__ import annotations

from typing import Mapping, Optional

from ... import logs
from ...errors import Denied, ProviderError, Unavailable, in_words
from .client import VaultClient
from .config import _env
from .errors import _copy


class VaultLogin(VaultClient):
    """Logging in on first use, and keeping the token valid while supervising."""

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
        if granted is None or not token:
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
        raise Denied(f"{what} {path} cannot be read ({in_words(exc)})") from None
    if not text:
        raise Denied(f"{what} {path} is empty")
    return text
