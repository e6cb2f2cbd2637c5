"""``VaultProvider``: the parts put together (``kv``, ``leases``,
``login``, ``mounts`` on ``client``), and its options read from the manifest
and the environment (``config``)."""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Tuple

from ...errors import ProviderError
from ..base import OptionReader, ProviderContext
from .config import _TRUE, DEFAULT_ADDRESS, _env, _proxies, _read_auth, _seconds
from .kv import VaultKv
from .leases import VaultLeases


class VaultProvider(VaultKv, VaultLeases):
    type_name = "vault"
    # Options the store's own environment gives stay commented out: written,
    # they would override VAULT_ADDR (tests/e2e/test_init.py).
    scaffold = ('[providers.vault]\ntype = "vault"\n'
                '# address = "https://vault.example.com:8200"   # default: VAULT_ADDR, then BAO_ADDR\n',
                "vault", "secret/{app}#{name}")
    # Vault answers many requests at once; 32 in flight covers the common
    # manifest in one round trip (see bench/vault.py).
    max_concurrency = 32
    tree_is_value = True   # a KV secret is one map, imported or read by field
    secret_is_map = True

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

        timeout: Optional[float] = ctx.timeout
        if isinstance(options.get("timeout"), str):
            timeout = _seconds(opts.str("timeout"), opts, "timeout", ctx.timeout)
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

    def consumed_env(self) -> Tuple[str, ...]:
        return self._consumed

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
