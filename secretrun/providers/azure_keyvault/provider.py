"""``AzureKeyVaultProvider``: the verbs (fetch, probe, write) and the
options, with names and version ids checked before any request."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from typing import Any, Callable, Mapping, Optional, Tuple, Union
from urllib.parse import urlsplit

from azure.keyvault.secrets import SecretClient

from ...errors import InvalidSecret, ProviderConfigError
from ..base import OptionReader, Provider, ProviderContext, Secret, SecretId, Value, as_mapping
from ..options import AZURE_CREDENTIALS as CREDENTIALS
from .credentials import _credential, _Login
from .errors import _translate, _what
from .transport import POOL_SIZE, _secret_client

# azure-identity logs every failed login at WARNING, with the reason our own
# error already carries (a chain's failure takes a dozen lines). Without a
# handler anywhere, Python's last-resort handler would print it to stderr;
# the NullHandler leaves the rest of the "azure" tree to whoever configures logging.
logging.getLogger("azure").addHandler(logging.NullHandler())
logging.getLogger("azure.identity").setLevel(logging.ERROR)

NAME_RE = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
# Version ids are 32 hex digits; anything alphanumeric is passed on, so the
# service answers "not found" rather than us guessing its format.
VERSION_RE = re.compile(r"^[0-9a-zA-Z]{1,64}$")
VAULT_NAME_RE = re.compile(r"^[a-zA-Z](?!.*--)[a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$")


class AzureKeyVaultProvider(Provider):
    type_name = "azure-keyvault"
    scaffold = ('[providers.azure]\ntype = "azure-keyvault"\nvault = "my-vault"\n', "azure", "{slug}")
    # Also the size of the HTTP connection pool, so no thread waits for a socket.
    max_concurrency = POOL_SIZE

    def __init__(self, ctx: ProviderContext, vault_url: str, client: SecretClient, credential: Any,
                 consumed: Tuple[str, ...] = ()) -> None:
        super().__init__(ctx)
        self.vault_url = vault_url
        self._client = client
        self._credential = credential
        self._consumed = consumed
        # Until one request has gone through, the others wait for it: it
        # learns the vault's challenge and gets the token they will reuse,
        # instead of 16 threads each being challenged and signing in.
        self._gate = threading.Lock()
        self._ready = threading.Event()

    @classmethod
    def from_config(cls, ctx: ProviderContext, options: Mapping[str, Any]) -> "AzureKeyVaultProvider":
        opts = OptionReader(ctx, options)
        vault_url = _vault_url(opts, opts.str("vault_url"), opts.str("vault"))
        kind = opts.str("credential", "default") or "default"
        if kind not in CREDENTIALS:
            opts.error(f"'credential' must be one of {', '.join(CREDENTIALS)}, not {kind!r}")
        env = ctx.environ
        ca_cert = opts.str("ca_cert")
        if ca_cert is not None:
            ca_cert = ctx.path(ca_cert)
            if not os.path.isfile(ca_cert):
                opts.error(f"'ca_cert': no file {ca_cert}")
        authority = opts.str("authority_host") or env.get("AZURE_AUTHORITY_HOST") or None
        if authority and urlsplit(authority).scheme not in ("", "https"):
            opts.error(f"'authority_host' must be an https:// URL, not {authority!r}")
        login = _Login(kind, opts.str("tenant_id") or env.get("AZURE_TENANT_ID") or None,
                       opts.str("client_id") or env.get("AZURE_CLIENT_ID") or None, authority,
                       opts.bool("disable_instance_discovery", False), ca_cert)
        verify_resource = opts.bool("verify_challenge_resource", True)
        api_version = opts.str("api_version")
        credential, consumed = None, ()  # type: Any, Tuple[str, ...]
        if kind in CREDENTIALS:   # even after other errors, so that all are reported at once
            credential, consumed = _credential(ctx, login, opts)
        client = None
        if credential is not None and vault_url and not opts.errors:
            client = _secret_client(ctx, vault_url, credential, login.ca_cert, verify_resource, api_version, opts)
        opts.done()
        # done() raised if any step above reported an error; each way to no client does.
        assert client is not None
        return cls(ctx, vault_url, client, credential, consumed)

    # --- the verbs ---------------------------------------------------------

    def fetch(self, sid: SecretId) -> Secret:
        name = self.check(sid)
        what = _what(sid)
        try:
            secret = self._first_alone(lambda: self._client.get_secret(name, sid.version))
        except Exception as exc:  # noqa: BLE001 - every SDK error is translated, none escapes
            raise _translate(exc, what, self.vault_url) from None
        if secret.properties.enabled is False:
            raise InvalidSecret(f"{what} is disabled in {self.vault_url}")
        value = secret.value if secret.value is not None else ""
        version = secret.properties.version
        if sid.tree:
            return Secret(as_mapping(value, what), version)
        return Secret(value, version)

    def probe(self, sid: SecretId) -> Union[str, Secret, None]:
        """The secret as it is now, for polling.

        Key Vault has no properties-only read of a secret's latest version
        (listing versions is paged and unordered), so the cheapest check is
        the read itself: its ``Secret`` is returned and the resolver keeps it,
        so a poll costs one GET, not a probe and then a fetch. A pinned
        version never changes (versions are immutable), so it costs nothing.
        """
        if sid.version is not None:
            self.check(sid)
            return sid.version
        return self.fetch(sid)

    def write(self, sid: SecretId, value: Value) -> Optional[str]:
        """Store ``value`` as the secret's new version; returns its version id."""
        name = self.check(sid)
        if sid.version is not None:
            raise ProviderConfigError(f"{sid}: a new value cannot be written to a pinned version")
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidSecret(f"{_what(sid)}: Key Vault stores text, and this value is binary") from None
        elif isinstance(value, Mapping):
            value = json.dumps(value, separators=(",", ":"))
        try:
            secret = self._first_alone(lambda: self._client.set_secret(name, value))
        except Exception as exc:  # noqa: BLE001
            raise _translate(exc, _what(sid), self.vault_url, writing=True) from None
        return secret.properties.version

    def _first_alone(self, call: Callable[[], Any]) -> Any:
        if not self._ready.is_set():
            with self._gate:
                if not self._ready.is_set():
                    try:
                        return call()
                    finally:
                        # Open whatever the outcome: after a failure each
                        # request tries (and reports) for itself.
                        self._ready.set()
        return call()

    def check(self, sid: SecretId) -> str:
        """The reference's secret name, or ``ProviderConfigError`` if Key Vault
        could not hold such a name or version: a malformed reference, refused
        before any request."""
        if not NAME_RE.match(sid.path):
            raise ProviderConfigError(
                f"{sid.path!r} is not a Key Vault secret name (1-127 letters, digits and '-')")
        if sid.version is not None and not VERSION_RE.match(sid.version):
            raise ProviderConfigError(
                f"{sid.version!r} is not a Key Vault version id (32 hexadecimal digits)")
        return sid.path

    def consumed_env(self) -> Tuple[str, ...]:
        return self._consumed

    def close(self) -> None:
        for closable in (self._client, self._credential):
            try:
                closable.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    def describe(self) -> str:
        return self.vault_url


def _vault_url(opts: OptionReader, url: Optional[str], name: Optional[str]) -> str:
    if url and name:
        opts.error("set 'vault_url' or 'vault', not both")
        return ""
    if name:
        if not VAULT_NAME_RE.match(name):
            opts.error(f"'vault': {name!r} is not a Key Vault name (3-24 letters, digits and single "
                       f"'-', starting with a letter)")
            return ""
        return f"https://{name.lower()}.vault.azure.net"
    if not url:
        opts.error("set 'vault_url' (https://NAME.vault.azure.net) or 'vault' (the vault's name)")
        return ""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        opts.error(f"'vault_url' must be an https:// URL, not {url!r}")
        return ""
    if parts.path.strip("/") or parts.query or parts.fragment:
        opts.error(f"'vault_url' must be the vault's address alone, without a path: {url!r}")
        return ""
    return url.rstrip("/")
