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

Every hvac and requests error is translated by ``errors._translate``, the one place
that maps status codes and transport failures to ``NotFound`` / ``Denied`` /
``Unavailable`` / ``InvalidSecret``. Messages are built here from the path, the
operation and the server address: Vault's own error text is never copied,
since an error body may echo what was sent.

The parts: ``config`` (options and environment, no SDK), ``errors`` (the one
error table), ``client`` (the session and the requests), ``mounts``,
``login`` (and the token's lifetime), ``leases``, ``kv`` (reading and
writing), and ``provider``, which puts them together.
"""

from .config import K8S_TOKEN_FILE, _proxies
from .errors import _from_status
from .provider import VaultProvider

__all__ = ["K8S_TOKEN_FILE", "VaultProvider", "_from_status", "_proxies"]
