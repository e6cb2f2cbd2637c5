"""``azure-keyvault``: secrets from Azure Key Vault.

A reference's path is the secret's name, checked up front against Key Vault's
rule (1-127 letters, digits and ``-``); ``?version=`` is a version id (the last
segment of the secret's id). ``fetch`` returns the value as text, or for an
``[[import]]`` the JSON object it holds; ``Secret.version`` is the version id
read. ``probe`` reads the latest version id (see there for its cost).

The store is ``vault_url`` or ``vault`` (a name, for ``https://NAME.vault.azure.net``).
The credential is chosen by ``credential``:

- ``default``: the order of azure-identity's ``DefaultAzureCredential``: a
  service principal from the environment (``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID``
  and ``AZURE_CLIENT_SECRET`` or ``AZURE_CLIENT_CERTIFICATE_PATH``), then
  workload identity (``AZURE_FEDERATED_TOKEN_FILE``), then the rest of
  ``DefaultAzureCredential`` (managed identity, Azure CLI, ...). The first two
  are read from secretrun's environment (``ctx.environ``), so the Python API's
  ``environ`` is honoured and the client secret can be kept from the child
  (``consumed_env``); like ``DefaultAzureCredential``, a configured one is
  final: its failure is not hidden by trying the next.
- ``environment``, ``workload-identity``, ``managed-identity``, ``azure-cli``:
  that one alone.

``tenant_id`` / ``client_id`` override ``AZURE_TENANT_ID`` / ``AZURE_CLIENT_ID``
(for managed identity, ``client_id`` picks a user-assigned identity).
``authority_host`` (default ``AZURE_AUTHORITY_HOST``, else the public cloud),
``disable_instance_discovery``, ``ca_cert`` and ``verify_challenge_resource``
serve sovereign clouds, Azure Stack, private endpoints and tests.

Retries belong to the resolver: the SDK's own retry policy is set to zero
attempts, and every call is bounded by ``ctx.timeout``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import ssl
import threading
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Tuple, Union
from urllib.parse import urlsplit

import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.core.pipeline.transport import RequestsTransport
from azure.identity import (
    AzureCliCredential,
    CertificateCredential,
    ClientSecretCredential,
    DefaultAzureCredential,
    ManagedIdentityCredential,
    WorkloadIdentityCredential,
)
from azure.keyvault.secrets import ApiVersion, SecretClient
from requests.adapters import HTTPAdapter
from requests.utils import address_in_network, is_ipv4_address, is_valid_cidr
from urllib3.util.retry import Retry

from ..errors import Denied, InvalidSecret, NotFound, ProviderConfigError, ProviderError, Throttled, Unavailable
from .base import OptionReader, Provider, ProviderContext, Secret, SecretId, Value, as_mapping
from .options import AZURE_CREDENTIALS as CREDENTIALS

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


class _Login(NamedTuple):
    """The settings a credential is built from, options over environment."""

    kind: str
    tenant_id: Optional[str]
    client_id: Optional[str]
    authority: Optional[str]
    disable_instance_discovery: bool
    ca_cert: Optional[str]


class AzureKeyVaultProvider(Provider):
    type_name = "azure-keyvault"
    scaffold = ('[providers.azure]\ntype = "azure-keyvault"\nvault = "my-vault"\n', "azure", "{slug}")
    # Also the size of the HTTP connection pool, so no thread waits for a socket.
    max_concurrency = 32

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


# --- configuration ---------------------------------------------------------


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


def _transport_options(ctx: ProviderContext, ca_cert: Optional[str]) -> Dict[str, Any]:
    options: Dict[str, Any] = {"connection_timeout": ctx.timeout, "read_timeout": ctx.timeout}
    if ca_cert:
        options["connection_verify"] = ca_cert
    return options


def _credential(ctx: ProviderContext, login: _Login, opts: OptionReader) -> Tuple[Any, Tuple[str, ...]]:
    """The credential ``login`` asks for, and the variables it consumed. Missing
    settings are reported through ``opts``; returns ``(None, ())`` then."""
    env = ctx.environ
    # Token requests get no SDK retries either: the resolver retries Unavailable.
    common: Dict[str, Any] = dict(_transport_options(ctx, login.ca_cert), retry_total=0)
    if login.authority:
        common["authority"] = login.authority
    entra = dict(common, disable_instance_discovery=login.disable_instance_discovery)
    has_workload = bool(env.get("AZURE_FEDERATED_TOKEN_FILE"))
    kind = login.kind
    if kind == "default":
        # As DefaultAzureCredential does: a half-configured one is skipped.
        named = bool(login.tenant_id and login.client_id)
        has_secret = bool(env.get("AZURE_CLIENT_SECRET") or env.get("AZURE_CLIENT_CERTIFICATE_PATH"))
        kind = ("environment" if named and has_secret else
                "workload-identity" if named and has_workload else "default")
    try:
        if kind == "environment":
            return _service_principal(env, login, entra, opts)
        if kind == "workload-identity":
            missing = _missing(login, has_workload, "AZURE_FEDERATED_TOKEN_FILE")
            if missing:
                opts.error(f"credential 'workload-identity' needs {missing}")
                return None, ()
            return WorkloadIdentityCredential(tenant_id=login.tenant_id, client_id=login.client_id,
                                              token_file_path=env["AZURE_FEDERATED_TOKEN_FILE"], **entra), ()
        if kind == "managed-identity":
            return ManagedIdentityCredential(client_id=login.client_id, **_transport_options(ctx, login.ca_cert)), ()
        if kind == "azure-cli":
            return AzureCliCredential(tenant_id=login.tenant_id or "", process_timeout=int(ctx.timeout) or 1), ()
        # The rest of DefaultAzureCredential's chain. Its environment and workload
        # credentials read os.environ, and were found not configured in ours.
        extra: Dict[str, Any] = {}
        if login.client_id:
            extra["managed_identity_client_id"] = login.client_id
        if login.authority:
            extra["authority"] = login.authority
        if login.ca_cert:
            extra["connection_verify"] = login.ca_cert
        return DefaultAzureCredential(exclude_environment_credential=True,
                                      exclude_workload_identity_credential=True,
                                      process_timeout=int(ctx.timeout) or 1, **extra), ()
    except (ValueError, TypeError, OSError) as exc:
        # Construction errors name settings (a malformed tenant, an unreadable
        # certificate file); only their first line, never a password.
        opts.error(f"credential {kind!r} cannot be built: {_first_line(exc)}")
        return None, ()


def _service_principal(env: Mapping[str, str], login: _Login, entra: Dict[str, Any],
                       opts: OptionReader) -> Tuple[Any, Tuple[str, ...]]:
    secret = env.get("AZURE_CLIENT_SECRET")
    cert = env.get("AZURE_CLIENT_CERTIFICATE_PATH")
    missing = _missing(login, bool(secret or cert), "AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH")
    if missing:
        opts.error(f"credential 'environment' needs {missing}")
        return None, ()
    if secret:
        return ClientSecretCredential(login.tenant_id, login.client_id, secret, **entra), ("AZURE_CLIENT_SECRET",)
    password = env.get("AZURE_CLIENT_CERTIFICATE_PASSWORD")
    send_chain = env.get("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", "").lower() in ("1", "true")
    credential = CertificateCredential(login.tenant_id, login.client_id, cert, password=password or None,
                                       send_certificate_chain=send_chain, **entra)
    return credential, (("AZURE_CLIENT_CERTIFICATE_PASSWORD",) if password else ())


def _missing(login: _Login, have_key: bool, key_name: str) -> str:
    missing: List[str] = []
    if not login.tenant_id:
        missing.append("AZURE_TENANT_ID (or 'tenant_id')")
    if not login.client_id:
        missing.append("AZURE_CLIENT_ID (or 'client_id')")
    if not have_key:
        missing.append(key_name)
    return ", ".join(missing)


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
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=AzureKeyVaultProvider.max_concurrency,
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


# --- errors: the one place SDK failures become ours ------------------------


def _what(sid: SecretId) -> str:
    return f"secret '{sid.path}'" + (f" version {sid.version}" if sid.version else "")


def _translate(exc: BaseException, what: str, where: str, writing: bool = False) -> ProviderError:
    """Our error for an SDK failure. Messages are built from the status, Key
    Vault's error codes and what was asked, never from the SDK's message, which
    may quote a request or a response; only azure-identity's reasons for a
    failed sign-in are passed on (see ``_auth_reason``)."""
    if isinstance(exc, ProviderError):
        return exc
    response = getattr(exc, "response", None)
    request = getattr(response, "request", None)
    if isinstance(exc, HttpResponseError) and exc.status_code and str(getattr(request, "url", "")).startswith(where):
        return _vault_refusal(exc, what, where, writing)
    transient = _network_reason(exc)
    if isinstance(exc, ClientAuthenticationError):
        if transient:
            return Unavailable(f"the sign-in authority for {where} is unavailable ({transient})")
        return Denied(f"could not sign in to {where}: {_auth_reason(exc)}")
    if transient:
        return Unavailable(f"cannot reach {where} for {what}: {transient}")
    if isinstance(exc, ValueError) and "challenge resource" in str(exc):
        return Denied(f"{where} asked for a token for another domain than its own, refused: set "
                      f"verify_challenge_resource = false only for private endpoints and tests")
    return ProviderError(f"reading {what} from {where} failed ({type(exc).__name__})")


def _vault_refusal(exc: HttpResponseError, what: str, where: str, writing: bool) -> ProviderError:
    status = exc.status_code
    code, inner = _error_codes(exc)
    label = f"HTTP {status}" + (f" {code}" if code else "") + (f"/{inner}" if inner else "")
    if status == 404:
        return NotFound(f"{what} not found in {where}")
    if status == 403 and "SecretDisabled" in (code, inner):
        return InvalidSecret(f"{what} is disabled in {where}")
    if status == 403:
        verb = "set" if writing else "get"
        return Denied(f"{where} refused access to {what} ({label}: the identity lacks secrets/{verb} permission)")
    if status == 401:
        return Denied(f"{where} refused the token presented for {what} ({label})")
    if status == 429:
        return Throttled(f"{where} throttled {what} ({label})", retry_after=_retry_after(exc))
    if status >= 500:
        return Unavailable(f"{where} could not serve {what} ({label})", retry_after=_retry_after(exc))
    return InvalidSecret(f"{where} refused the request for {what} ({label})")


def _retry_after(exc: HttpResponseError) -> Optional[float]:
    """Key Vault's ``Retry-After`` in seconds (throttling sends one); an
    HTTP-date or garbage counts as none."""
    try:
        seconds = float(getattr(exc.response, "headers", {}).get("Retry-After", ""))
    except (TypeError, ValueError):
        return None
    return seconds if 0 <= seconds < 3600 else None


def _error_codes(exc: HttpResponseError) -> Tuple[Optional[str], Optional[str]]:
    """Key Vault's ``error.code`` and ``error.innererror.code``; Entra's ``error``."""
    try:
        body = json.loads(exc.response.text())
    except Exception:  # noqa: BLE001 - not JSON: no codes
        return None, None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):   # OAuth2: {"error": "invalid_client", ...}
        return error, None
    if not isinstance(error, dict):
        return None, None
    inner = error.get("innererror")
    code = error.get("code")
    return (code if isinstance(code, str) else None,
            inner.get("code") if isinstance(inner, dict) and isinstance(inner.get("code"), str) else None)


# MSAL reports the token endpoint's own 429 / 5xx only in this message (and
# throttles the endpoint for Retry-After, default 5 s, so our retries may be
# answered from its cache: the outage then lasts as long as the throttle).
_MSAL_HTTP_ERROR = re.compile(r"HTTP Error: (429|5\d\d)\b")


def _network_reason(exc: BaseException) -> Optional[str]:
    """Why a request failed transiently (no connection, a timeout, a throttled
    or failing authority), from the exception chain; None if it did not."""
    seen = 0
    stack: List[Any] = [exc]
    reason: Optional[str] = None
    while stack and seen < 20:
        item = stack.pop()
        seen += 1
        if isinstance(item, ssl.SSLCertVerificationError):
            return "TLS certificate not trusted, see the ca_cert option"
        if isinstance(item, ConnectionRefusedError):
            return "connection refused"
        if isinstance(item, socket.gaierror):
            return "its host name does not resolve"
        if isinstance(item, ConnectionResetError):
            return "connection reset"
        if isinstance(item, (TimeoutError, socket.timeout)) or "Timeout" in type(item).__name__:
            reason = reason or "timed out"
        elif type(item).__name__ in ("ServiceRequestError", "ServiceResponseError", "ConnectionError",
                                     "NewConnectionError", "ProtocolError", "SSLError",
                                     "RemoteDisconnected", "ConnectionResetError"):
            reason = reason or "connection failed"
        elif type(item).__name__ == "MsalServiceError":
            match = _MSAL_HTTP_ERROR.search(str(item))
            if match:
                reason = reason or f"HTTP {match.group(1)}"
        for attr in ("__cause__", "__context__", "inner_exception", "reason"):
            nested = getattr(item, attr, None)
            if isinstance(nested, BaseException):
                stack.append(nested)
        stack.extend(arg for arg in getattr(item, "args", ()) if isinstance(arg, BaseException))
    return reason


def _auth_reason(exc: ClientAuthenticationError) -> str:
    """What azure-identity says went wrong, compacted. Its messages hold Entra's
    error descriptions and the chain's attempts, never a token or a secret."""
    lines = [line.strip() for line in str(getattr(exc, "message", None) or exc).splitlines()]
    lines = [line for line in lines if line and "aka.ms" not in line and not line.startswith("To mitigate")]
    text = "; ".join(lines[:8])
    return text[:600] + ("..." if len(text) > 600 else "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
