"""A wire-level fake of Azure Key Vault (secrets) and of the Microsoft Entra
token endpoint, over HTTPS with a throwaway CA, for the real ``SecretClient``
and real ``azure-identity`` credentials to talk to.

Written from the public REST references, not from secretrun's code:

- Key Vault secrets, api-version 7.x and later (any ``api-version`` is taken,
  none is refused with 400 ``BadParameter``): ``GET /secrets``,
  ``GET /secrets/{name}[/]`` (the latest version), ``GET /secrets/{name}/{version}``,
  ``GET /secrets/{name}/versions`` (paged with ``maxresults`` and ``nextLink``),
  ``PUT /secrets/{name}`` (SetSecret: a new version), and
  ``PATCH /secrets/{name}/{version}`` (UpdateSecret: attributes).
- The bearer challenge: a request without a valid token gets 401 with
  ``WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/{tenant}",
  resource="https://vault.azure.net"``, as Key Vault sends it.
- Errors as Key Vault writes them: ``{"error": {"code", "message", "innererror"}}``.
  404 ``SecretNotFound``; 403 ``Forbidden`` with innererror ``AccessDenied``
  (no permission) or ``SecretDisabled`` (reading a disabled version); 401
  ``Unauthorized``; plus injected 429 / 5xx with ``Retry-After``.
- Entra ID (v2.0): ``GET /{tenant}/v2.0/.well-known/openid-configuration`` and
  ``POST /{tenant}/oauth2/v2.0/token`` with ``grant_type=client_credentials`` and a
  client secret, a certificate-signed assertion (checked against the registered
  certificate) or a federated token (workload identity). Errors are OAuth2
  bodies with AADSTS codes: ``invalid_client`` 401, ``unauthorized_client`` 400.

Use it through the ``azure_fake`` (session) and ``azure`` (per test, faults
and counters reset) fixtures, or run ``python -m tests.servers.azure`` to get a
separate process that prints its addresses as one JSON line (for benchmarks).
"""

from __future__ import annotations

import json
import os
import re
import secrets as _random
import socket
import ssl
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, NamedTuple, Optional
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import trustme

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
VAULT_RESOURCE = "https://vault.azure.net"
NAME_RE = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
TOKEN_LIFETIME = 3599


class Version(NamedTuple):
    id: str
    value: str
    enabled: bool
    created: int
    updated: int
    content_type: Optional[str] = None
    tags: Optional[Dict[str, str]] = None


class Client(NamedTuple):
    client_id: str
    secret: Optional[str] = None
    certificate_pem: Optional[bytes] = None
    federated_token: Optional[str] = None
    permissions: frozenset = frozenset({"get", "list"})


class Grant(NamedTuple):
    client_id: str
    tenant: str
    audience: str
    expires: float


class Fault(NamedTuple):
    status: int
    code: str
    name: Optional[str]
    retry_after: Optional[int]


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, handler, context: ssl.SSLContext, fake: "AzureFake") -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.context = context
        self.fake = fake

    def handle_error(self, request, client_address) -> None:
        # A client that gave up (a timeout test, a refused certificate) is not
        # a server bug; anything else is, and is printed.
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError, TimeoutError)):
            super().handle_error(request, client_address)

    def finish_request(self, request, client_address) -> None:
        # The handshake runs here, in the connection's own thread: wrapping the
        # listening socket would do it in accept() and serialise every client.
        request.settimeout(30)
        # Without it, Nagle's algorithm meets the peer's delayed ACK and every
        # response waits ~40 ms: a cost no real service has.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "azure-fake"
    timeout = 30
    wbufsize = 1 << 16   # headers and body leave in one write, flushed per request

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload=None, headers: Optional[Dict[str, str]] = None) -> None:
        body = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
        self.server.fake._record(self.command, self.path, status)

    def _error(self, status: int, code: str, message: str, inner: Optional[str] = None,
               headers: Optional[Dict[str, str]] = None) -> None:
        error = {"code": code, "message": message}
        if inner:
            error["innererror"] = {"code": inner}
        self._send(status, {"error": error}, headers)

    do_GET = do_PUT = do_PATCH = do_POST = do_DELETE = lambda self: self._dispatch()  # noqa: E731


class _VaultHandler(_Handler):
    def _dispatch(self) -> None:
        fake: AzureFake = self.server.fake
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        body = self._read_body()
        if fake.delay:
            time.sleep(fake.delay)
        if "api-version" not in query:
            return self._error(400, "BadParameter", "The request URI contains an invalid API version "
                               "or is missing the api-version parameter.")
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return self._challenge("AKV10000: Request is missing a Bearer or PoP token.")
        grant = fake.tokens.get(auth[len("Bearer "):])
        if grant is None or grant.expires < time.time():
            return self._challenge("AKV10032: Invalid issuer, or the token is expired.")
        if grant.audience.rstrip("/") != VAULT_RESOURCE or grant.tenant != fake.tenant:
            return self._challenge("AKV10022: Invalid audience.")
        parts = [unquote(p) for p in url.path.split("/")[1:]]
        if not parts or parts[0] != "secrets":
            return self._error(404, "NotFound", "The requested resource was not found.")
        name = parts[1] if len(parts) > 1 else None
        fault = fake._take_fault(name)
        if fault:
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
            return self._error(fault.status, fault.code, "Injected by the test.", headers=headers)
        if name is not None and not NAME_RE.match(name):
            return self._error(400, "BadParameter", f"The request URI contains an invalid name: {name}")
        method, rest = self.command, parts[2:]
        client = fake.clients[grant.client_id]
        op = {"GET": "get", "PUT": "set", "PATCH": "set"}.get(method, "other")
        if name is None or rest == ["versions"]:
            op = "list"
        if op not in client.permissions:
            return self._error(403, "Forbidden", f"The user, group or application 'appid={client.client_id}' "
                               f"does not have secrets {op} permission on key vault 'fake'.",
                               inner="AccessDenied")
        host = self.headers.get("Host", "127.0.0.1")
        if name is None and method == "GET":
            return self._send(200, fake._list(host, None, query))
        if method == "PUT" and not rest:
            return self._set(host, name, body)
        if method == "GET" and rest == ["versions"]:
            return self._send(200, fake._list(host, name, query))
        if method == "GET" and len(rest) <= 1:
            return self._get(host, name, rest[0] if rest else "")
        if method == "PATCH" and len(rest) == 1:
            return self._update(host, name, rest[0], body)
        return self._error(405, "MethodNotAllowed", "The method is not allowed for this resource.")

    def _challenge(self, message: str) -> None:
        authority = "https://login.microsoftonline.com/" + self.server.fake.tenant
        header = f'Bearer authorization="{authority}", resource="{VAULT_RESOURCE}"'
        self._error(401, "Unauthorized", message, headers={"WWW-Authenticate": header})

    def _get(self, host: str, name: str, version: str) -> None:
        found = self.server.fake._version(name, version)
        if found is None:
            shown = f"{name}/{version}" if version else name
            return self._error(404, "SecretNotFound", f"A secret with (name/id) {shown} was not found "
                               "in this key vault. If you recently deleted this secret you may be able "
                               "to recover it using the correct recovery command.")
        if not found.enabled:
            return self._error(403, "Forbidden", "Operation get is not allowed on a disabled secret.",
                               inner="SecretDisabled")
        self._send(200, _bundle(host, name, found, with_value=True))

    def _set(self, host: str, name: str, body: bytes) -> None:
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("value"), str):
            return self._error(400, "BadParameter", "Property value is required.")
        attributes = doc.get("attributes") or {}
        version = self.server.fake.set_secret(
            name, doc["value"], enabled=attributes.get("enabled", True) is not False,
            content_type=doc.get("contentType"), tags=doc.get("tags"))
        self._send(200, _bundle(host, name, self.server.fake._version(name, version), with_value=True))

    def _update(self, host: str, name: str, version: str, body: bytes) -> None:
        fake = self.server.fake
        if fake._version(name, version) is None:
            return self._error(404, "SecretNotFound", f"A secret with (name/id) {name}/{version} was not "
                               "found in this key vault.")
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            doc = {}
        attributes = doc.get("attributes") or {}
        if "enabled" in attributes:
            fake.set_enabled(name, bool(attributes["enabled"]), version)
        self._send(200, _bundle(host, name, fake._version(name, version), with_value=False))


class _AuthorityHandler(_Handler):
    def _dispatch(self) -> None:
        fake: AzureFake = self.server.fake
        url = urlsplit(self.path)
        body = self._read_body()
        parts = url.path.strip("/").split("/")
        tenant, rest = parts[0], "/".join(parts[1:])
        base = f"https://{self.headers.get('Host', '127.0.0.1')}/{tenant}"
        if tenant != fake.tenant:
            return self._oauth_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        if self.command == "GET" and rest == "v2.0/.well-known/openid-configuration":
            return self._send(200, {
                "issuer": f"{base}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                          "client_secret_basic"],
                "tenant_region_scope": "EU",
            })
        if self.command == "POST" and rest == "oauth2/v2.0/token":
            return self._token(fake, body, f"{base}/oauth2/v2.0/token")
        self._oauth_error(404, "invalid_request", 900144, "The endpoint does not exist.")

    def _oauth_error(self, status: int, error: str, code: int, description: str) -> None:
        self._send(status, {"error": error, "error_description": f"AADSTS{code}: {description}",
                            "error_codes": [code], "trace_id": str(uuid.uuid4()),
                            "correlation_id": str(uuid.uuid4())})

    def _token(self, fake: "AzureFake", body: bytes, endpoint: str) -> None:
        if fake.authority_fault:
            status, fake.authority_fault = fake.authority_fault, None
            return self._oauth_error(status, "temporarily_unavailable", 90033, "Injected by the test.")
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "client_credentials":
            return self._oauth_error(400, "unsupported_grant_type", 70003, "The grant type is not supported.")
        client = fake.clients.get(form.get("client_id", ""))
        if client is None:
            return self._oauth_error(400, "unauthorized_client", 700016,
                                     f"Application with identifier '{form.get('client_id')}' was not "
                                     f"found in the directory '{fake.tenant}'.")
        if not _authenticated(client, form, endpoint):
            return self._oauth_error(401, "invalid_client", 7000215, "Invalid client secret provided.")
        scope = form.get("scope", "").split(" ")[0]
        if not scope.endswith("/.default"):
            return self._oauth_error(400, "invalid_scope", 1002012, f"The provided value for scope "
                                     f"{scope} is not valid.")
        token = _random.token_urlsafe(32)
        fake._grant(token, Grant(client.client_id, fake.tenant, scope[:-len("/.default")],
                                 time.time() + TOKEN_LIFETIME))
        self._send(200, {"token_type": "Bearer", "expires_in": TOKEN_LIFETIME,
                         "ext_expires_in": TOKEN_LIFETIME, "access_token": token})


def _authenticated(client: Client, form: Dict[str, str], endpoint: str) -> bool:
    if client.secret is not None and form.get("client_secret") == client.secret:
        return True
    assertion = form.get("client_assertion")
    if not assertion:
        return False
    if client.federated_token is not None and assertion == client.federated_token:
        return True
    if client.certificate_pem is not None:
        import jwt  # PyJWT, a dependency of msal
        from cryptography import x509

        key = x509.load_pem_x509_certificate(client.certificate_pem).public_key()
        try:
            jwt.decode(assertion, key, algorithms=["RS256", "PS256"], audience=endpoint,
                       options={"require": ["exp", "aud", "iss"]})
        except jwt.PyJWTError:
            return False
        return True
    return False


def _bundle(host: str, name: str, version: Version, with_value: bool) -> dict:
    doc = {
        "id": f"https://{host}/secrets/{name}/{version.id}",
        "attributes": {"enabled": version.enabled, "created": version.created,
                       "updated": version.updated, "recoveryLevel": "Recoverable+Purgeable",
                       "recoverableDays": 90},
    }
    if with_value:
        doc["value"] = version.value
    if version.content_type is not None:
        doc["contentType"] = version.content_type
    if version.tags:
        doc["tags"] = version.tags
    return doc


class AzureFake:
    """One fake vault and its authority, sharing clients and tokens.

    ``vault_url``, ``authority_host`` and ``ca_path`` (a PEM bundle with the
    throwaway CA) are what a client needs. Register identities with
    ``add_client``, store secrets with ``set_secret`` (returns the version id),
    inject failures with ``fail``. ``requests`` is the log of (server, method,
    path, status) tuples; ``tokens_issued`` counts token grants.
    """

    def __init__(self, tenant: str = TENANT) -> None:
        self.tenant = tenant
        self.ca = trustme.CA()
        leaf = self.ca.issue_cert("127.0.0.1", "localhost")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(context)
        self._dir = tempfile.TemporaryDirectory(prefix="azure-fake-")
        self.ca_path = os.path.join(self._dir.name, "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_path)
        self.lock = threading.Lock()
        self.secrets: Dict[str, List[Version]] = {}
        self.clients: Dict[str, Client] = {}
        self.tokens: Dict[str, Grant] = {}
        self.faults: List[Fault] = []
        self.authority_fault: Optional[int] = None
        self.delay = 0.0
        self.requests: List[tuple] = []
        self.tokens_issued = 0
        self._vault = _TLSServer(_VaultHandler, context, self)
        self._authority = _TLSServer(_AuthorityHandler, context, self)
        self._threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05},
                                          daemon=True) for s in (self._vault, self._authority)]

    @property
    def vault_url(self) -> str:
        return f"https://127.0.0.1:{self._vault.server_address[1]}"

    @property
    def vault_port(self) -> int:
        return self._vault.server_address[1]

    @property
    def authority_host(self) -> str:
        return f"https://127.0.0.1:{self._authority.server_address[1]}"

    def start(self) -> "AzureFake":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        for server in (self._vault, self._authority):
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(10)
        self._dir.cleanup()

    def __enter__(self) -> "AzureFake":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- state, for tests --------------------------------------------------

    def add_client(self, client_id: str, secret: Optional[str] = None, *, certificate_pem: Optional[bytes] = None,
                   federated_token: Optional[str] = None, permissions=("get", "list")) -> Client:
        client = Client(client_id, secret, certificate_pem, federated_token, frozenset(permissions))
        with self.lock:
            self.clients[client_id] = client
        return client

    def set_secret(self, name: str, value: str, *, enabled: bool = True, content_type: Optional[str] = None,
                   tags: Optional[Dict[str, str]] = None) -> str:
        now = int(time.time())
        version = Version(uuid.uuid4().hex, value, enabled, now, now, content_type, tags)
        with self.lock:
            self.secrets.setdefault(name, []).append(version)
        return version.id

    def set_enabled(self, name: str, enabled: bool, version: str = "") -> None:
        with self.lock:
            versions = self.secrets[name]
            index = len(versions) - 1 if not version else [v.id for v in versions].index(version)
            versions[index] = versions[index]._replace(enabled=enabled, updated=int(time.time()))

    def fail(self, status: int, *, name: Optional[str] = None, times: int = 1, code: Optional[str] = None,
             retry_after: Optional[int] = None) -> None:
        """The next ``times`` requests (for ``name``, or any) get ``status``."""
        code = code or {429: "Throttled", 500: "InternalServerError", 503: "ServiceUnavailable"}.get(
            status, "Injected")
        with self.lock:
            self.faults.extend([Fault(status, code, name, retry_after)] * times)

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens = {t: g._replace(expires=0.0) for t, g in self.tokens.items()}

    def reset(self) -> None:
        with self.lock:
            self.faults.clear()
            self.requests.clear()
            self.authority_fault = None
            self.delay = 0.0
            self.tokens_issued = 0

    def count(self, method: str, path_start: str, status: Optional[int] = None) -> int:
        with self.lock:
            return sum(1 for m, p, s in self.requests
                       if m == method and p.startswith(path_start) and (status is None or s == status))

    # --- used by the handlers ----------------------------------------------

    def _record(self, method: str, path: str, status: int) -> None:
        with self.lock:
            self.requests.append((method, path, status))

    def _grant(self, token: str, grant: Grant) -> None:
        with self.lock:
            self.tokens[token] = grant
            self.tokens_issued += 1

    def _take_fault(self, name: Optional[str]) -> Optional[Fault]:
        with self.lock:
            for i, fault in enumerate(self.faults):
                if fault.name is None or fault.name == name:
                    return self.faults.pop(i)
        return None

    def _version(self, name: str, version: str) -> Optional[Version]:
        with self.lock:
            versions = self.secrets.get(name) or []
            if not version:
                return versions[-1] if versions else None
            return next((v for v in versions if v.id == version), None)

    def _list(self, host: str, name: Optional[str], query: Dict[str, str]) -> dict:
        size = max(1, min(25, int(query.get("maxresults") or 25)))
        start = int(query.get("$skiptoken") or 0)
        with self.lock:
            if name is None:
                items = [(n, vs[-1]) for n, vs in sorted(self.secrets.items())]
            else:
                items = [(name, v) for v in self.secrets.get(name, [])]
        page = [_bundle(host, n, v, with_value=False) for n, v in items[start:start + size]]
        if name is None:
            for doc, (n, _) in zip(page, items[start:start + size]):
                doc["id"] = f"https://{host}/secrets/{n}"
        path = "/secrets" + (f"/{name}/versions" if name else "")
        more = start + size < len(items)
        next_link = (f"https://{host}{path}?api-version={query['api-version']}&$skiptoken={start + size}"
                     f"&maxresults={size}") if more else None
        return {"value": page, "nextLink": next_link}


@pytest.fixture(scope="session")
def azure_fake():
    with AzureFake() as fake:
        yield fake


@pytest.fixture
def azure(azure_fake):
    """The session's fake, with faults, delays and counters cleared around each test."""
    azure_fake.reset()
    yield azure_fake
    azure_fake.reset()


def main() -> None:
    """Serve until stdin closes; print addresses, CA and a client as one JSON line.

    ``--secrets FILE``: a JSON object of name → value to store first.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m tests.servers.azure")
    parser.add_argument("--secrets")
    args = parser.parse_args()
    with AzureFake() as fake:
        client_id, client_secret = str(uuid.uuid4()), _random.token_urlsafe(24)
        fake.add_client(client_id, client_secret)
        if args.secrets:
            with open(args.secrets) as handle:
                for name, value in json.load(handle).items():
                    fake.set_secret(name, value)
        print(json.dumps({"vault_url": fake.vault_url, "vault_port": fake.vault_port,
                          "authority_host": fake.authority_host, "ca_path": fake.ca_path,
                          "tenant": fake.tenant, "client_id": client_id,
                          "client_secret": client_secret}), flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
