"""``GcpSecretManagerProvider``: Application Default Credentials found
once, one gRPC client per location, and the verbs."""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import Any, Dict, Mapping, Optional, Tuple

import google.auth
import google.auth.transport.requests
import grpc
from google.api_core import exceptions as api_errors
from google.api_core import gapic_v1
from google.cloud.secretmanager_v1 import SecretManagerServiceClient
from google.cloud.secretmanager_v1.services.secret_manager_service.transports.grpc import (
    SecretManagerServiceGrpcTransport,
)
from google.oauth2 import service_account

from ... import __version__
from ...errors import InvalidSecret, ProviderConfigError, ProviderError
from ..base import OptionReader, Provider, ProviderContext, Secret, SecretId, Value, as_mapping
from .checksum import crc32c
from .errors import _translate
from .names import _FULL, _LOCATION, _SHORT, _VERSION, _Name

# HAZARD: when the SDK's own logging is on (GOOGLE_SDK_PYTHON_LOGGING_SCOPE,
# or a DEBUG level set on the "google" loggers), the transport's logging
# interceptor writes every response payload, that is the secret itself, in
# base64. Silence that one logger for good.
logging.getLogger(SecretManagerServiceGrpcTransport.__module__).disabled = True

_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
_DEFAULT_HOST = "secretmanager.googleapis.com"
_MAX_PAYLOAD = 64 * 1024
# gRPC's default reconnect backoff grows to 120 s: after an outage the channel
# would refuse calls for up to two minutes after the store is back.
_CHANNEL_OPTIONS = (("grpc.initial_reconnect_backoff_ms", 250),
                    ("grpc.max_reconnect_backoff_ms", 5000))


# --- the provider -----------------------------------------------------------------

class GcpSecretManagerProvider(Provider):
    type_name = "gcp-secretmanager"
    scaffold = ('[providers.gcp]\ntype = "gcp-secretmanager"\n# project = "my-project"\n', "gcp", "{slug}")
    # One HTTP/2 connection multiplexes every call; the service admits 90,000
    # accesses a minute per project, far above what one start asks.
    max_concurrency = 32

    def __init__(self, ctx: ProviderContext, project: Optional[str] = None, location: Optional[str] = None,
                 endpoint: Optional[str] = None, insecure: bool = False) -> None:
        super().__init__(ctx)
        self.project = project
        self.location = location
        self.endpoint = endpoint
        self.insecure = insecure
        # Guards the lazily built credentials and clients: the first fetches
        # arrive together from the resolver's threads, and ADC discovery may
        # probe the metadata server, which must happen once.
        self._lock = threading.Lock()
        self._credentials: Any = None
        self._adc_project: Optional[str] = None
        self._auth_error: Optional[ProviderError] = None
        self._clients: Dict[Optional[str], SecretManagerServiceClient] = {}

    @classmethod
    def from_config(cls, ctx: ProviderContext, options: Mapping[str, Any]) -> "GcpSecretManagerProvider":
        opts = OptionReader(ctx, options)
        project = opts.str("project") or ctx.environ.get("GOOGLE_CLOUD_PROJECT") or None
        location = opts.str("location")
        endpoint = opts.str("endpoint")
        insecure = opts.bool("insecure", False)
        if location is not None and not _LOCATION.match(location):
            opts.error(f"'location' must be a region such as 'europe-west1', not {location!r}")
        if endpoint is not None:
            endpoint = re.sub(r"^(grpcs?|https?)://", "", endpoint).rstrip("/")
            if not endpoint or "/" in endpoint:
                opts.error("'endpoint' must be host[:port]")
        if insecure and not endpoint:
            opts.error("'insecure' needs an 'endpoint': Google's own endpoints are TLS only")
        opts.done()
        return cls(ctx, project, location, endpoint, insecure)

    # --- names and clients ----------------------------------------------------

    def _name(self, sid: SecretId) -> _Name:
        """The full resource name a reference means; ProviderConfigError if
        the reference cannot name a secret version."""
        full = _FULL.match(sid.path)
        if full:
            project, location, secret, version = full.groups()
            if version is not None and sid.version is not None and version != sid.version:
                raise ProviderConfigError(f"reference {sid.path} names version {version} and ?version={sid.version}")
        elif _SHORT.match(sid.path):
            project = self.project or self._credentials_project()
            if not project:
                raise ProviderConfigError(
                    f"no project for secret {sid.path}: set project in [providers.{self.name}], "
                    "GOOGLE_CLOUD_PROJECT, or use projects/P/secrets/S")
            location, secret, version = self.location, sid.path, None
        else:
            raise ProviderConfigError(
                f"{sid.path!r} is not a secret name: expected SECRET (letters, digits, _ and -) "
                "or projects/P/secrets/SECRET[/versions/V]")
        version = sid.version or version or "latest"
        if not _VERSION.match(version):
            raise ProviderConfigError(f"version {version!r} of {secret} is not 'latest', a number or an alias")
        return _Name(project, location, secret, version)

    def _credentials_project(self) -> Optional[str]:
        if self.insecure:
            return None
        with self._lock:
            self._credentials_locked()
            return self._adc_project

    def _credentials_locked(self) -> Any:
        """ADC, found and refreshed once. A refusal is kept and raised again;
        a network failure is not kept, so a retry looks again."""
        if self._auth_error is not None:
            # A new instance each time: one exception object raised in
            # several threads would share (and grow) one traceback.
            raise type(self._auth_error)(str(self._auth_error))
        if self._credentials is not None:
            return self._credentials
        # The variable google-auth would read from os.environ, taken from ours
        # (the Python API may pass its own environment); the rest of ADC as is.
        explicit = self.ctx.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        try:
            if explicit:
                credentials, self._adc_project = google.auth.load_credentials_from_file(explicit, scopes=_SCOPES)
            else:
                credentials, self._adc_project = google.auth.default(scopes=_SCOPES)
            # Refresh now, where a refusal has a type: inside a gRPC call it
            # becomes an opaque UNAVAILABLE from the auth plugin. Service
            # account keys are exempt: the client signs its own JWTs with them
            # and never asks the token endpoint.
            if not isinstance(credentials, service_account.Credentials):
                credentials.refresh(_BoundedRequest(self.ctx.timeout))
        except Exception as exc:  # noqa: BLE001 - no SDK type may escape
            error = _translate(exc, "an access token", "the credentials' token service", self.ctx.timeout)
            if not error.retryable:
                self._auth_error = error
            raise error from None
        self._credentials = credentials
        return credentials

    def _client(self, location: Optional[str]) -> SecretManagerServiceClient:
        with self._lock:
            client = self._clients.get(location)
            if client is None:
                client = self._clients[location] = self._build_locked(location)
            return client

    def _build_locked(self, location: Optional[str]) -> SecretManagerServiceClient:
        info = gapic_v1.client_info.ClientInfo(user_agent=f"secretrun/{__version__}")
        if self.insecure:
            channel = grpc.insecure_channel(self.endpoint, options=_CHANNEL_OPTIONS)
            return SecretManagerServiceClient(
                transport=SecretManagerServiceGrpcTransport(channel=channel, client_info=info))
        credentials = self._credentials_locked()
        endpoint = self._host(location)
        try:
            return SecretManagerServiceClient(
                credentials=credentials, client_info=info,
                client_options={"api_endpoint": endpoint} if endpoint != _DEFAULT_HOST else None,
                transport=lambda **kw: SecretManagerServiceGrpcTransport(channel=_channel, **kw))
        except Exception as exc:  # noqa: BLE001 - mTLS setup errors and the like
            raise _translate(exc, "the client", self._where(location), self.ctx.timeout) from None

    def _where(self, location: Optional[str]) -> str:
        return f"Secret Manager at {self._host(location)}"

    def _host(self, location: Optional[str]) -> str:
        if self.endpoint:
            return self.endpoint
        if location:
            return f"secretmanager.{location}.rep.googleapis.com"
        return _DEFAULT_HOST

    # --- verbs ----------------------------------------------------------------

    def fetch(self, sid: SecretId) -> Secret:
        """The payload of the version asked for (``latest`` by default), as
        text when it is UTF-8, else bytes; with ``sid.tree``, its JSON object.
        ``Secret.version`` is the version number the service resolved."""
        name = self._name(sid)
        where = self._where(name.location)
        client = self._client(name.location)
        try:
            # retry=None: the resolver owns retries; the SDK's default would
            # retry UNAVAILABLE and RESOURCE_EXHAUSTED for 60 s on its own.
            response = client.access_secret_version(name=name.version_name, retry=None, timeout=self.ctx.timeout)
        except Exception as exc:  # noqa: BLE001 - no SDK type may escape
            raise _translate(exc, name, where, self.ctx.timeout) from None
        raw = type(response).pb(response)
        data = raw.payload.data
        if raw.payload.HasField("data_crc32c") and raw.payload.data_crc32c != crc32c(data):
            raise InvalidSecret(f"{name}: the payload failed its CRC32C check (corrupted), refused")
        version = raw.name.rsplit("/", 1)[-1] if raw.name else None
        if sid.tree:
            return Secret(dict(as_mapping(data, str(name))), version=version)
        try:
            return Secret(data.decode("utf-8"), version=version)
        except UnicodeDecodeError:
            return Secret(bytes(data), version=version)

    def consumed_env(self) -> Tuple[str, ...]:
        # Nothing: GOOGLE_APPLICATION_CREDENTIALS names a file, not a secret,
        # and an app on Google Cloud needs the same ADC for its other APIs.
        return ()

    def probe(self, sid: SecretId) -> Optional[str]:
        """A version number pinned in the reference never changes (versions
        are immutable): no call. Anything else is read again (one access of
        the 90,000/min quota), never probed with GetSecretVersion: metadata
        reads have a 600/min quota per project, and every access returns the
        version number anyway."""
        version = self._name(sid).version
        return version if version.isdigit() else None

    def write(self, sid: SecretId, value: Value) -> Optional[str]:
        """Add a version (creating the secret, automatically replicated or
        regional, if missing); the new version number."""
        name = self._name(sid._replace(version=None))
        if isinstance(value, Mapping):
            data = json.dumps(value, separators=(",", ":")).encode("utf-8")
        elif isinstance(value, str):
            data = value.encode("utf-8")
        else:
            data = bytes(value)
        if len(data) > _MAX_PAYLOAD:
            raise InvalidSecret(f"{name}: a payload is at most 64 KiB, this one is {len(data)} bytes")
        where = self._where(name.location)
        client = self._client(name.location)
        call: Dict[str, Any] = {"retry": None, "timeout": self.ctx.timeout}
        add: Dict[str, Any] = {"parent": name.secret_name, "payload": {"data": data, "data_crc32c": crc32c(data)}}
        try:
            try:
                created = client.add_secret_version(request=add, **call)
            except api_errors.NotFound:
                secret: Dict[str, Any] = {} if name.location else {"replication": {"automatic": {}}}
                try:
                    client.create_secret(request={"parent": name.parent, "secret_id": name.secret,
                                                  "secret": secret}, **call)
                except api_errors.AlreadyExists:
                    pass  # created meanwhile by someone else: add to it
                created = client.add_secret_version(request=add, **call)
        except Exception as exc:  # noqa: BLE001 - no SDK type may escape
            raise _translate(exc, f"secret {name.secret_name}", where, self.ctx.timeout) from None
        return created.name.rsplit("/", 1)[-1]

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.transport.close()

    def describe(self) -> str:
        host = self._host(self.location)
        return f"Secret Manager {host}" + (f" (project {self.project})" if self.project else "")


def _channel(target: str, options: Any = (), **kwargs: Any) -> grpc.Channel:
    """The SDK's own channel (TLS, credentials, mTLS), with our reconnect backoff."""
    return SecretManagerServiceGrpcTransport.create_channel(target, options=[*options, *_CHANNEL_OPTIONS], **kwargs)


class _BoundedRequest(google.auth.transport.requests.Request):
    """google-auth's HTTP request with our timeout instead of its 120 s."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def __call__(self, url: str, method: str = "GET", body: Any = None, headers: Any = None,
                 timeout: Optional[float] = None, **kwargs: Any) -> Any:
        return super().__call__(url, method=method, body=body, headers=headers, timeout=self._timeout, **kwargs)
