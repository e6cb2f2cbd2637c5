"""The HTTP side of Key Vault: one requests session with its pool, no
retries of its own, proxies and CA bundle read once from secretrun's
environment, and the ``SecretClient`` on top."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional
from urllib.parse import urlsplit

import requests
from azure.core.pipeline.transport import RequestsTransport
from azure.keyvault.secrets import ApiVersion, SecretClient
from requests.adapters import HTTPAdapter
from requests.utils import address_in_network, is_ipv4_address, is_valid_cidr
from urllib3.util.retry import Retry

from ..base import OptionReader, ProviderContext

# The provider's max_concurrency: also the size of the HTTP connection pool,
# so no thread waits for a socket.
POOL_SIZE = 32


def _transport_options(ctx: ProviderContext, ca_cert: Optional[str]) -> Dict[str, Any]:
    options: Dict[str, Any] = {"connection_timeout": ctx.timeout, "read_timeout": ctx.timeout}
    if ca_cert:
        options["connection_verify"] = ca_cert
    return options


def _secret_client(ctx: ProviderContext, vault_url: str, credential: Any, ca_cert: Optional[str],
                   verify_resource: bool, api_version: Optional[str], opts: OptionReader) -> Optional[SecretClient]:
    # One session shared by every thread, its pool as large as our concurrency
    # (requests' default of 10 would open and drop sockets under 16 threads).
    # urllib3 retries nothing: attempts are the resolver's. ``trust_env`` is
    # off because requests would rescan the environment for proxies and read
    # ~/.netrc on every request (a sixth of its CPU time); the same settings
    # are read once, from secretrun's environment.
    session = requests.Session()
    session.trust_env = False
    session.proxies.update(_proxies(ctx.environ, vault_url))
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=POOL_SIZE,
                          max_retries=Retry(total=False, redirect=False, raise_on_status=False))
    session.mount("https://", adapter)
    ca_bundle = ca_cert or ctx.environ.get("REQUESTS_CA_BUNDLE") or ctx.environ.get("CURL_CA_BUNDLE") or None
    transport = RequestsTransport(session=session, session_owner=True, **_transport_options(ctx, ca_bundle))
    extra: Dict[str, Any] = {}
    if api_version:
        known = [v.value for v in ApiVersion]
        if api_version not in known:
            opts.error(f"'api_version' {api_version!r} is not supported; one of {', '.join(known)}")
            return None
        extra["api_version"] = api_version
    return SecretClient(vault_url, credential, transport=transport, retry_total=0,
                        verify_challenge_resource=verify_resource, **extra)


def _proxies(environ: Mapping[str, str], url: str) -> Dict[str, str]:
    """The proxy for ``url`` as requests would pick it from the environment:
    ``https_proxy`` / ``HTTPS_PROXY`` (else ``all_proxy``), unless ``no_proxy``
    names the host, a parent domain, ``host:port``, a CIDR block or ``*``."""
    def get(key: str) -> str:
        return environ.get(key) or environ.get(key.upper()) or ""

    proxy = get("https_proxy") or get("all_proxy")
    if not proxy:
        return {}
    parts = urlsplit(url)
    host = parts.hostname or ""
    with_port = f"{host}:{parts.port}" if parts.port else host
    for entry in get("no_proxy").replace(" ", "").split(","):
        if entry == "*":
            return {}
        if entry and is_ipv4_address(host) and is_valid_cidr(entry) and address_in_network(host, entry):
            return {}
        entry = entry.lstrip(".")
        if entry and (entry in (host, with_port) or host.endswith("." + entry)
                      or with_port.endswith("." + entry)):
            return {}
    return {"https": proxy}
