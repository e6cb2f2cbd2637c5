"""An in-process Google Cloud Secret Manager for tests: a real gRPC server on
127.0.0.1 speaking ``google.cloud.secretmanager.v1.SecretManagerService``.

Written from the public API reference (the v1 protos shipped in
google-cloud-secret-manager and cloud.google.com/secret-manager/docs), not from
what secretrun expects:

- secret ids match ``[a-zA-Z0-9_-]{1,255}``; a global secret needs a
  replication policy, a regional one (``projects/P/locations/L``) has none;
- version ids count from 1 per secret; ``latest`` is an alias of the most
  recently *created* version, whatever its state, so accessing ``latest``
  after disabling it fails rather than falling back to an older version;
- ``version_aliases`` of a secret resolve on GetSecretVersion and
  AccessSecretVersion only;
- AccessSecretVersion on a DISABLED or DESTROYED version fails with
  FAILED_PRECONDITION "Secret Version [NAME] is in DISABLED state.";
  DESTROYED is terminal and drops the data;
- AddSecretVersion verifies a client ``data_crc32c`` (INVALID_ARGUMENT on a
  mismatch), computes one otherwise, and AccessSecretVersion always returns
  it; payloads are at most 64 KiB;
- a missing secret or version is NOT_FOUND.

Test controls, applied to every later call until ``reset()``:
``fail(method, code, times=n, name=...)`` injects a gRPC status,
``deny(prefix, code)`` refuses every call on names under a prefix,
``delay(prefix, seconds)`` stalls calls (for client deadlines), and
``corrupt(version_name)`` flips a stored byte while keeping the checksum, as
storage corruption would. ``calls`` counts requests per method, so a test can
assert that no metadata read happened.

    with SecretManagerServer() as server:
        client = server.client()          # the real client, insecure channel
        server.put("proj", "db", b"...")  # or through the client itself

The ``gcp_server`` fixture (session scope, reset per use through
``gcp_store``) is exported for test modules to import.
"""

from __future__ import annotations

import collections
import http.server
import json
import re
import threading
import urllib.parse
from concurrent import futures
from typing import Dict, List, Optional, Tuple

import grpc
import pytest
from google.cloud.secretmanager_v1.types import resources, service
from google.protobuf import empty_pb2

SERVICE = "google.cloud.secretmanager.v1.SecretManagerService"
MAX_PAYLOAD = 64 * 1024

_SecretPb = resources.Secret.pb()
_VersionPb = resources.SecretVersion.pb()
_State = _VersionPb.State

_SECRET_ID = re.compile(r"^[a-zA-Z0-9_-]{1,255}$")
_PARENT = re.compile(r"^projects/[^/]+(?:/locations/[^/]+)?$")
_SECRET_NAME = re.compile(r"^(projects/[^/]+(?:/locations/[^/]+)?/secrets/[^/]+)$")
_VERSION_NAME = re.compile(r"^(projects/[^/]+(?:/locations/[^/]+)?/secrets/[^/]+)/versions/([^/]+)$")


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), bit by bit: deliberately not the table-driven
    form the provider uses, so the two check each other."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the standard check value (RFC 3720 B.4)


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Version:
    __slots__ = ("pb", "data", "crc")

    def __init__(self, pb, data: Optional[bytes], crc: Optional[int]) -> None:
        self.pb = pb
        self.data = data
        self.crc = crc


class _Secret:
    __slots__ = ("pb", "versions")

    def __init__(self, pb) -> None:
        self.pb = pb
        self.versions: List[_Version] = []


class SecretManagerServer:
    """The service on ``address`` (``127.0.0.1:PORT``); thread-safe."""

    def __init__(self, port: int = 0, max_workers: int = 64, tls: Optional[Tuple[bytes, bytes]] = None,
                 token: Optional[str] = None) -> None:
        """``tls``: (private key PEM, certificate chain PEM) to serve TLS;
        ``token``: the OAuth access token every call must bear."""
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._secrets: Dict[str, _Secret] = {}
        self._faults: List[list] = []      # [method, code, message, remaining, name]
        self._denied: List[Tuple[str, grpc.StatusCode]] = []
        self._delays: List[Tuple[str, float]] = []
        self.calls: collections.Counter = collections.Counter()
        self.authorizations: List[Optional[str]] = []
        self.token = token
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers,
                                                              thread_name_prefix="fake-gcp"))
        self._server.add_generic_rpc_handlers((self._handlers(),))
        if tls:
            credentials = grpc.ssl_server_credentials([tls])
            self.port = self._server.add_secure_port(f"127.0.0.1:{port}", credentials)
        else:
            self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        self.address = f"127.0.0.1:{self.port}"

    # --- lifecycle -----------------------------------------------------------

    def start(self) -> "SecretManagerServer":
        self._server.start()
        return self

    def stop(self) -> None:
        self._stopping.set()               # ends every delay() at once
        self._server.stop(grace=None).wait(10)

    def __enter__(self) -> "SecretManagerServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self._secrets.clear()
            self._faults.clear()
            self._denied.clear()
            self._delays.clear()
            self.calls.clear()
            self.authorizations.clear()

    def client(self):
        """The real ``SecretManagerServiceClient`` over an insecure channel."""
        from google.cloud.secretmanager_v1 import SecretManagerServiceClient
        from google.cloud.secretmanager_v1.services.secret_manager_service.transports.grpc import (
            SecretManagerServiceGrpcTransport,
        )

        channel = grpc.insecure_channel(self.address)
        return SecretManagerServiceClient(transport=SecretManagerServiceGrpcTransport(channel=channel))

    # --- test controls -------------------------------------------------------

    def put(self, project: str, secret_id: str, data: bytes | str, location: Optional[str] = None,
            aliases: Optional[Dict[str, int]] = None, checksum: bool = True) -> str:
        """Create the secret if needed and add a version; the version's name.
        ``checksum=False`` stores no CRC32C, as for versions older than the
        service's checksums, so accesses return none."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        parent = f"projects/{project}" + (f"/locations/{location}" if location else "")
        name = f"{parent}/secrets/{secret_id}"
        with self._lock:
            if name not in self._secrets:
                pb = _SecretPb(name=name)
                if not location:
                    pb.replication.automatic.SetInParent()
                pb.create_time.GetCurrentTime()
                self._secrets[name] = _Secret(pb)
            secret = self._secrets[name]
            for alias, number in (aliases or {}).items():
                secret.pb.version_aliases[alias] = number
            crc = crc32c(data) if checksum else None
            return self._add_locked(secret, data, crc, client_checksum=False).name

    def set_state(self, version_name: str, state: str) -> None:
        """``ENABLED``, ``DISABLED`` or ``DESTROYED`` (which drops the data)."""
        with self._lock:
            version = self._version_locked(version_name)
            version.pb.state = _State.Value(state)
            if state == "DESTROYED":
                version.data = None
                version.pb.destroy_time.GetCurrentTime()

    def corrupt(self, version_name: str) -> None:
        with self._lock:
            version = self._version_locked(version_name)
            data = bytearray(version.data or b"\0")
            data[0] ^= 0x01
            version.data = bytes(data)

    def fail(self, method: str, code: grpc.StatusCode, message: Optional[str] = None,
             times: int = 1, name: Optional[str] = None) -> None:
        """The next ``times`` calls of ``method`` (on names starting with
        ``name`` if given) fail with ``code``; ``times=-1`` for always."""
        with self._lock:
            self._faults.append([method, code, message or f"injected {code.name}", times, name])

    def deny(self, prefix: str, code: grpc.StatusCode = grpc.StatusCode.PERMISSION_DENIED) -> None:
        with self._lock:
            self._denied.append((prefix, code))

    def delay(self, prefix: str, seconds: float) -> None:
        with self._lock:
            self._delays.append((prefix, seconds))

    # --- plumbing ------------------------------------------------------------

    def _handlers(self):
        def unary(fn, request_type, response_type):
            def handle(request, context):
                try:
                    return fn(request, context)
                except _Abort as exc:
                    context.abort(exc.code, exc.message)

            return grpc.unary_unary_rpc_method_handler(
                handle, request_deserializer=request_type.FromString,
                response_serializer=response_type.SerializeToString)

        s = service
        return grpc.method_handlers_generic_handler(SERVICE, {
            "CreateSecret": unary(self._create_secret, s.CreateSecretRequest.pb(), _SecretPb),
            "GetSecret": unary(self._get_secret, s.GetSecretRequest.pb(), _SecretPb),
            "DeleteSecret": unary(self._delete_secret, s.DeleteSecretRequest.pb(), empty_pb2.Empty),
            "AddSecretVersion": unary(self._add_secret_version, s.AddSecretVersionRequest.pb(), _VersionPb),
            "GetSecretVersion": unary(self._get_secret_version, s.GetSecretVersionRequest.pb(), _VersionPb),
            "ListSecretVersions": unary(self._list_secret_versions, s.ListSecretVersionsRequest.pb(),
                                        s.ListSecretVersionsResponse.pb()),
            "AccessSecretVersion": unary(self._access_secret_version, s.AccessSecretVersionRequest.pb(),
                                         s.AccessSecretVersionResponse.pb()),
            "EnableSecretVersion": unary(self._state_setter("ENABLED"), s.EnableSecretVersionRequest.pb(),
                                         _VersionPb),
            "DisableSecretVersion": unary(self._state_setter("DISABLED"), s.DisableSecretVersionRequest.pb(),
                                          _VersionPb),
            "DestroySecretVersion": unary(self._state_setter("DESTROYED"), s.DestroySecretVersionRequest.pb(),
                                          _VersionPb),
        })

    def _enter(self, method: str, name: str, context) -> None:
        """Count the call, then check the token and apply delays, denials and
        injected faults."""
        metadata = dict(context.invocation_metadata())
        with self._lock:
            self.calls[method] += 1
            self.authorizations.append(metadata.get("authorization"))
            delay = max((sec for prefix, sec in self._delays if name.startswith(prefix)), default=0.0)
            denied = next((code for prefix, code in self._denied if name.startswith(prefix)), None)
            fault = None
            for entry in self._faults:
                f_method, _code, _msg, remaining, f_name = entry
                if f_method == method and remaining != 0 and (f_name is None or name.startswith(f_name)):
                    if remaining > 0:
                        entry[3] -= 1
                    fault = entry
                    break
        if delay:
            self._stopping.wait(delay)
        if self.token is not None and metadata.get("authorization") != f"Bearer {self.token}":
            denied = grpc.StatusCode.UNAUTHENTICATED
        if denied == grpc.StatusCode.UNAUTHENTICATED:
            raise _Abort(denied, "Request had invalid authentication credentials. Expected OAuth 2 access "
                                 "token, login cookie or other valid authentication credential.")
        if denied is not None:
            permission = "secretmanager.versions.access" if method == "AccessSecretVersion" else "secretmanager.secrets.get"
            raise _Abort(denied, f"Permission '{permission}' denied for resource '{name}' (or it may not exist).")
        if fault is not None:
            raise _Abort(fault[1], fault[2])

    def _secret_locked(self, name: str) -> _Secret:
        secret = self._secrets.get(name)
        if secret is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Secret [{name}] not found.")
        return secret

    def _version_locked(self, name: str) -> _Version:
        match = _VERSION_NAME.match(name)
        if not match:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid resource field value in the request: {name}")
        parent, version_id = match.groups()
        secret = self._secrets.get(parent)
        if secret is None or not secret.versions:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Secret [{parent}] not found or has no versions.")
        if version_id == "latest":
            return secret.versions[-1]
        if version_id in secret.pb.version_aliases:
            number = secret.pb.version_aliases[version_id]
        elif version_id.isdigit():
            number = int(version_id)
        else:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Secret Version [{name}] not found.")
        if not 1 <= number <= len(secret.versions):
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Secret Version [{parent}/versions/{number}] not found.")
        return secret.versions[number - 1]

    def _add_locked(self, secret: _Secret, data: bytes, crc: Optional[int], client_checksum: bool):
        pb = _VersionPb(name=f"{secret.pb.name}/versions/{len(secret.versions) + 1}",
                        state=_State.ENABLED, client_specified_payload_checksum=client_checksum)
        pb.create_time.GetCurrentTime()
        secret.versions.append(_Version(pb, data, crc))
        return pb

    # --- methods -------------------------------------------------------------

    def _create_secret(self, request, context):
        self._enter("CreateSecret", request.parent, context)
        if not _PARENT.match(request.parent):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "Invalid resource field value in the request.")
        if not _SECRET_ID.match(request.secret_id):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "Secret id must match [a-zA-Z0-9_-]{1,255}.")
        regional = "/locations/" in request.parent
        if not regional and not request.secret.HasField("replication"):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "Secret.replication must be set.")
        name = f"{request.parent}/secrets/{request.secret_id}"
        with self._lock:
            if name in self._secrets:
                raise _Abort(grpc.StatusCode.ALREADY_EXISTS, f"Secret [{name}] already exists.")
            pb = _SecretPb()
            pb.CopyFrom(request.secret)
            pb.name = name
            pb.create_time.GetCurrentTime()
            self._secrets[name] = _Secret(pb)
            return pb

    def _get_secret(self, request, context):
        self._enter("GetSecret", request.name, context)
        with self._lock:
            return self._secret_locked(request.name).pb

    def _delete_secret(self, request, context):
        self._enter("DeleteSecret", request.name, context)
        with self._lock:
            self._secret_locked(request.name)
            del self._secrets[request.name]
        return empty_pb2.Empty()

    def _add_secret_version(self, request, context):
        self._enter("AddSecretVersion", request.parent, context)
        data = request.payload.data
        if len(data) > MAX_PAYLOAD:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "Secret Payload cannot be larger than 64KiB.")
        crc = crc32c(data)
        given = request.payload.HasField("data_crc32c")
        if given and request.payload.data_crc32c != crc:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "Checksum mismatch: data_crc32c does not match the data.")
        with self._lock:
            return self._add_locked(self._secret_locked(request.parent), data, crc, given)

    def _get_secret_version(self, request, context):
        self._enter("GetSecretVersion", request.name, context)
        with self._lock:
            return self._version_locked(request.name).pb

    def _list_secret_versions(self, request, context):
        self._enter("ListSecretVersions", request.parent, context)
        with self._lock:
            versions = list(reversed(self._secret_locked(request.parent).versions))  # newest first
        start = int(request.page_token or 0)
        size = request.page_size or 25000
        page = versions[start:start + size]
        token = str(start + size) if start + size < len(versions) else ""
        return service.ListSecretVersionsResponse.pb()(
            versions=[v.pb for v in page], next_page_token=token, total_size=len(versions))

    def _access_secret_version(self, request, context):
        self._enter("AccessSecretVersion", request.name, context)
        with self._lock:
            version = self._version_locked(request.name)
            state = version.pb.state
            name, data, crc = version.pb.name, version.data, version.crc
        if state != _State.ENABLED:
            raise _Abort(grpc.StatusCode.FAILED_PRECONDITION,
                         f"Secret Version [{name}] is in {_State.Name(state)} state.")
        response = service.AccessSecretVersionResponse.pb()(name=name)
        response.payload.data = data
        if crc is not None:
            response.payload.data_crc32c = crc
        return response

    def _state_setter(self, state: str):
        method = {"ENABLED": "EnableSecretVersion", "DISABLED": "DisableSecretVersion",
                  "DESTROYED": "DestroySecretVersion"}[state]

        def handle(request, context):
            self._enter(method, request.name, context)
            with self._lock:
                version = self._version_locked(request.name)
                if version.pb.state == _State.DESTROYED:
                    raise _Abort(grpc.StatusCode.FAILED_PRECONDITION,
                                 f"Secret Version [{version.pb.name}] is in DESTROYED state.")
                version.pb.state = _State.Value(state)
                if state == "DESTROYED":
                    version.data = None
                    version.pb.destroy_time.GetCurrentTime()
                return version.pb

        return handle


class MetadataServer:
    """A Compute Engine metadata server on 127.0.0.1, as GKE workload
    identity, Cloud Run and GCE expose one, for Application Default
    Credentials to find (``GCE_METADATA_HOST`` / ``GCE_METADATA_IP``).

    Serves what the public metadata documentation lists for a default
    service account: every answer carries ``Metadata-Flavor: Google`` and
    requests without that header are refused (403). ``refuse = True`` makes
    the token endpoint answer 403 (no usable service account).
    """

    def __init__(self, project: str = "test-proj", token: str = "ya29.test-token",
                 email: str = "app@test-proj.iam.gserviceaccount.com") -> None:
        self.project = project
        self.token = token
        self.email = email
        self.refuse = False
        self.requests: List[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                outer.requests.append(self.path)
                if self.headers.get("Metadata-Flavor") != "Google":
                    return self._send(403, "text/plain", "Missing Metadata-Flavor:Google header.")
                path = urllib.parse.urlsplit(self.path).path
                sa = "/computeMetadata/v1/instance/service-accounts/default/"
                if path in ("/", "/computeMetadata/v1/"):
                    return self._send(200, "application/text", "computeMetadata/\n")
                if path == "/computeMetadata/v1/project/project-id":
                    return self._send(200, "application/text", outer.project)
                if path == "/computeMetadata/v1/universe/universe-domain":
                    return self._send(200, "application/text", "googleapis.com")
                if path == sa:
                    return self._send(200, "application/json", json.dumps(
                        {"aliases": ["default"], "email": outer.email,
                         "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}))
                if path == sa + "email":
                    return self._send(200, "application/text", outer.email)
                if path == sa + "token":
                    if outer.refuse:
                        return self._send(403, "text/plain", "The service account has been disabled.")
                    return self._send(200, "application/json", json.dumps(
                        {"access_token": outer.token, "expires_in": 3599, "token_type": "Bearer"}))
                return self._send(404, "text/html", "Not Found")

            def _send(self, status: int, kind: str, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Metadata-Flavor", "Google")
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-metadata", daemon=True)

    def environ(self) -> Dict[str, str]:
        """What points google-auth at this server."""
        return {"GCE_METADATA_HOST": self.host, "GCE_METADATA_IP": self.host}

    def __enter__(self) -> "MetadataServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(10)


@pytest.fixture(scope="session")
def gcp_server():
    """One server for the session; use ``gcp_store`` for a clean one per test."""
    server = SecretManagerServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def gcp_store(gcp_server):
    """The session server, emptied of secrets, faults and call counts."""
    gcp_server.reset()
    yield gcp_server
    gcp_server.reset()
