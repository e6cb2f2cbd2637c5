"""A wire-level fake of the Kubernetes API server's core/v1 Secrets and
ConfigMaps, over HTTPS with a throwaway CA, for secretrun's real client to
talk to.

Written from the API conventions, not from secretrun's code:

- ``GET /api/v1/namespaces/{ns}/{secrets|configmaps}/{name}``, the LIST of
  the collection, and its WATCH (``?watch=true``): a chunked stream of JSON
  lines ``{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": ...}``,
  starting after ``resourceVersion`` (history replayed), with bookmarks only
  when ``allowWatchBookmarks=true``, ended after ``timeoutSeconds``; a
  ``resourceVersion`` older than the compaction point gets an ``ERROR`` event
  with a 410 ``Status`` ("too old resource version"), as etcd compaction does.
  ``fieldSelector=metadata.name=N`` narrows LIST and WATCH.
- Authentication: bearer tokens (``add_token``) or client certificates signed
  by the CA, the user being the certificate's CN (``client_cert``); anything
  else is 401. Authorization as RBAC: ``allow(user, verbs, resource,
  namespace, names)``; ``resourceNames`` allow ``get`` of those names, and
  ``list``/``watch`` only with a ``metadata.name`` field selector naming one
  of them. A refusal is 403 with a ``Status`` naming the verb, as the API
  server words it.
- ``fail(status, times, verb)`` injects 429/5xx (with ``Retry-After``);
  ``drop_watches()`` cuts every open watch connection; ``bookmark()`` sends a
  bookmark on every open watch; ``compact()`` forgets the history.
- ``requests`` is the log: ``Request(verb, path, query, user, status)``.

Use it through the ``kube_fake`` (session) and ``kube`` (per test) fixtures,
or ``python -m tests.servers.kubernetes`` for a separate process that prints
its address as one JSON line (for benchmarks).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Dict, Iterable, List, NamedTuple, Optional, Tuple, Union
from urllib.parse import parse_qsl, urlsplit

import pytest
import trustme

# TLS in each connection's own thread, no Nagle delay: as the Key Vault fake serves.
from tests.servers.azure import _TLSServer

RESOURCES = {"secrets": "Secret", "configmaps": "ConfigMap"}


class Rule(NamedTuple):
    verbs: frozenset
    resource: str
    namespace: str
    names: Optional[frozenset] = None


class Request(NamedTuple):
    verb: str                 # get | list | watch
    path: str
    query: Dict[str, str]
    user: Optional[str]
    status: int


class Event(NamedTuple):
    type: str                 # ADDED | MODIFIED | DELETED | BOOKMARK
    resource: Optional[str]   # None for a bookmark: every watch gets it
    namespace: Optional[str]
    obj: dict


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver-fake"
    timeout = 30

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, payload: dict, verb: str, user: Optional[str],
              headers: Optional[Dict[str, str]] = None) -> None:
        body = json.dumps(payload).encode()
        # Logged before the answer leaves: a client that has it sees it logged.
        self.server.fake._record(Request(verb, self.url.path, self.query, user, status))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _status(self, code: int, reason: str, message: str, verb: str, user: Optional[str],
                headers: Optional[Dict[str, str]] = None) -> None:
        self._send(code, _status(code, reason, message), verb, user, headers)

    def do_GET(self) -> None:  # noqa: N802
        fake: KubeFake = self.server.fake
        self.url = urlsplit(self.path)
        self.query = dict(parse_qsl(self.url.query))
        parts = self.url.path.strip("/").split("/")
        # api v1 namespaces NS RESOURCE [NAME]
        if len(parts) not in (5, 6) or parts[:3] != ["api", "v1", "namespaces"] or parts[4] not in RESOURCES:
            return self._status(404, "NotFound", "the server could not find the requested resource", "get", None)
        namespace, resource = parts[3], parts[4]
        name = parts[5] if len(parts) == 6 else None
        watching = self.query.get("watch") in ("true", "1")
        verb = "get" if name else ("watch" if watching else "list")
        user = self._user()
        if user is None:
            return self._status(401, "Unauthorized", "Unauthorized", verb, None)
        fault = fake._take_fault(verb)
        if fault is not None:
            return self._status(fault, "InternalError" if fault >= 500 else "TooManyRequests",
                                "injected", verb, user, {"Retry-After": "0"} if fault == 429 else None)
        selected = _selected_name(self.query.get("fieldSelector"))
        if not fake._allowed(user, verb, resource, namespace, name or selected):
            kind = resource if name is None else f'{resource} "{name}"'
            return self._status(403, "Forbidden", f'{kind} is forbidden: User "{user}" cannot {verb} '
                                f'resource "{resource}" in API group "" in the namespace "{namespace}"',
                                verb, user)
        if verb == "get":
            obj = fake._get(resource, namespace, name)
            if obj is None:
                return self._status(404, "NotFound", f'{resource} "{name}" not found', verb, user)
            return self._send(200, obj, verb, user)
        if verb == "list":
            items, rv = fake._list(resource, namespace, selected)
            kind = RESOURCES[resource] + "List"
            return self._send(200, {"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": str(rv)},
                                    "items": items}, verb, user)
        return self._watch(fake, resource, namespace, selected, user)

    do_PUT = do_POST = do_DELETE = do_PATCH = do_GET

    def _user(self) -> Optional[str]:
        fake: KubeFake = self.server.fake
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth[len("Bearer "):].strip()
            fake._saw_token(token)
            return fake.tokens.get(token)
        cert = self.connection.getpeercert()
        if cert:
            for rdn in cert.get("subject", ()):
                for key, value in rdn:
                    if key == "commonName":
                        return value
        return None

    # --- WATCH ---

    def _chunk(self, payload: Union[dict, bytes]) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _watch(self, fake: "KubeFake", resource: str, namespace: str, selected: Optional[str],
               user: str) -> None:
        bookmarks = self.query.get("allowWatchBookmarks") == "true"
        deadline = time.monotonic() + min(float(self.query.get("timeoutSeconds") or 1800), 1800)
        since = self.query.get("resourceVersion")
        fake._record(Request("watch", self.url.path, self.query, user, 200))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        me = object()

        def mine(event: Event) -> bool:
            if event.type == "BOOKMARK":
                return bookmarks
            return (event.resource == resource and event.namespace == namespace
                    and (selected is None or event.obj["metadata"]["name"] == selected))

        with fake.cond:
            if since and since != "0" and int(since) < fake.compacted:
                backlog = None
            else:
                start = int(since) if since and since != "0" else fake.rv
                backlog = [e for e in fake.events if e.type != "BOOKMARK" and mine(e)
                           and int(e.obj["metadata"]["resourceVersion"]) > start]
            index = len(fake.events)
            fake.watching.add(me)
        try:
            if backlog is None:
                self._chunk({"type": "ERROR", "object": _status(410, "Expired", "too old resource version")})
                self._chunk(b"")
                return
            for event in backlog:
                self._chunk({"type": event.type, "object": event.obj})
            while True:
                with fake.cond:
                    while (len(fake.events) == index and me not in fake.dropping and not fake.stopping
                           and time.monotonic() < deadline):
                        fake.cond.wait(0.05)
                    if me in fake.dropping or fake.stopping:
                        fake.dropping.discard(me)
                        dropped = True
                    else:
                        dropped = False
                    fresh, index = fake.events[index:], len(fake.events)
                if dropped:
                    # Cut, not ended: no last chunk, the connection just goes.
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                for event in fresh:
                    if mine(event):
                        self._chunk({"type": event.type, "object": event.obj})
                if time.monotonic() >= deadline:
                    self._chunk(b"")
                    return
        finally:
            with fake.cond:
                fake.watching.discard(me)
                fake.dropping.discard(me)


def _status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def _selected_name(selector: Optional[str]) -> Optional[str]:
    if not selector:
        return None
    for term in selector.split(","):
        key, _, value = term.partition("=")
        if key.strip() == "metadata.name":
            return value.lstrip("=").strip()
    return None


class KubeFake:
    """One fake API server. ``server`` and ``ca_path`` are what a client needs."""

    def __init__(self) -> None:
        self.ca = trustme.CA()
        leaf = self.ca.issue_cert("127.0.0.1", "localhost")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(context)
        self.ca.configure_trust(context)         # client certificates signed by the CA
        context.verify_mode = ssl.CERT_OPTIONAL  # ... or none: then a bearer token
        self._dir = tempfile.TemporaryDirectory(prefix="kube-fake-")
        self.ca_path = os.path.join(self._dir.name, "ca.crt")
        self.ca.cert_pem.write_to_path(self.ca_path)
        self.cond = threading.Condition()
        self.tokens: Dict[str, str] = {}
        self.rules: Dict[str, List[Rule]] = {}
        self.objects: Dict[Tuple[str, str, str], dict] = {}
        self.events: List[Event] = []
        self.rv = 1000
        self.compacted = 0
        self.watching: set = set()
        self.dropping: set = set()
        self.stopping = False
        self.faults: List[Tuple[int, Optional[str]]] = []
        self.requests: List[Request] = []
        self.tokens_seen: List[str] = []
        self._server = _TLSServer(_Handler, context, self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> "KubeFake":
        self._thread.start()
        return self

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
        self._dir.cleanup()

    def __enter__(self) -> "KubeFake":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- identities and RBAC ---

    def add_token(self, user: str, token: Optional[str] = None) -> str:
        token = token or f"tok-{uuid.uuid4().hex}"
        with self.cond:
            self.tokens[token] = user
        return token

    def client_cert(self, user: str) -> Tuple[str, str]:
        """A client certificate for ``user`` (its CN), as (cert, key) files."""
        leaf = self.ca.issue_cert(f"{user}.users.invalid", common_name=user)
        cert = os.path.join(self._dir.name, f"{user}-{uuid.uuid4().hex[:6]}.crt")
        key = cert[:-4] + ".key"
        leaf.cert_chain_pems[0].write_to_path(cert)
        leaf.private_key_pem.write_to_path(key)
        return cert, key

    def allow(self, user: str, verbs: Iterable[str], resource: str, namespace: str,
              names: Optional[Iterable[str]] = None) -> None:
        rule = Rule(frozenset(verbs), resource, namespace, frozenset(names) if names is not None else None)
        with self.cond:
            self.rules.setdefault(user, []).append(rule)

    # --- objects ---

    def put(self, name: str, data: Dict[str, Union[str, bytes]], namespace: str = "default",
            resource: str = "secrets", string_data: Optional[Dict[str, str]] = None) -> str:
        """Create or replace an object; its new resourceVersion. For a Secret
        ``data`` is stored base64-encoded and ``string_data`` merged into it,
        as the API server does."""
        with self.cond:
            key = (resource, namespace, name)
            existed = key in self.objects
            self.rv += 1
            obj = {"apiVersion": "v1", "kind": RESOURCES[resource],
                   "metadata": {"name": name, "namespace": namespace, "resourceVersion": str(self.rv),
                                "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(key)))}}
            if resource == "secrets":
                merged = dict(data)
                merged.update(string_data or {})
                obj["type"] = "Opaque"
                obj["data"] = {k: base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode()
                               for k, v in merged.items()}
            else:
                obj["data"] = {k: v for k, v in data.items() if isinstance(v, str)}
                binary = {k: base64.b64encode(v).decode() for k, v in data.items() if isinstance(v, bytes)}
                if binary:
                    obj["binaryData"] = binary
            self.objects[key] = obj
            self.events.append(Event("MODIFIED" if existed else "ADDED", resource, namespace, obj))
            self.cond.notify_all()
            return str(self.rv)

    def delete(self, name: str, namespace: str = "default", resource: str = "secrets") -> None:
        with self.cond:
            obj = self.objects.pop((resource, namespace, name))
            self.rv += 1
            gone = json.loads(json.dumps(obj))
            gone["metadata"]["resourceVersion"] = str(self.rv)
            self.events.append(Event("DELETED", resource, namespace, gone))
            self.cond.notify_all()

    def bookmark(self) -> str:
        """A bookmark on every open watch that asked for them; its resourceVersion."""
        with self.cond:
            self.rv += 1   # as other objects' writes would have moved it
            obj = {"kind": "Secret", "apiVersion": "v1", "metadata": {"resourceVersion": str(self.rv)}}
            self.events.append(Event("BOOKMARK", None, None, obj))
            self.cond.notify_all()
            return str(self.rv)

    def compact(self) -> None:
        """Forget every resourceVersion before the current one: resuming from
        one is 410 Gone."""
        with self.cond:
            self.compacted = self.rv

    def drop_watches(self) -> int:
        """Cut every open watch connection; how many there were."""
        with self.cond:
            self.dropping |= self.watching
            self.cond.notify_all()
            return len(self.watching)

    def open_watches(self) -> int:
        with self.cond:
            return len(self.watching)

    def fail(self, status: int, times: int = 1, verb: Optional[str] = None) -> None:
        with self.cond:
            self.faults.extend([(status, verb)] * times)

    def reset(self) -> None:
        with self.cond:
            self.faults.clear()
            self.requests.clear()
            self.tokens_seen.clear()
            self.rules.clear()
            self.tokens.clear()

    def log(self, verb: Optional[str] = None) -> List[Request]:
        with self.cond:
            return [r for r in self.requests if verb is None or r.verb == verb]

    # --- used by the handler ---

    def _record(self, request: Request) -> None:
        with self.cond:
            self.requests.append(request)

    def _saw_token(self, token: str) -> None:
        with self.cond:
            self.tokens_seen.append(token)

    def _take_fault(self, verb: str) -> Optional[int]:
        with self.cond:
            for i, (_, only) in enumerate(self.faults):
                if only is None or only == verb:
                    return self.faults.pop(i)[0]
        return None

    def _allowed(self, user: str, verb: str, resource: str, namespace: str, name: Optional[str]) -> bool:
        with self.cond:
            rules = list(self.rules.get(user, ()))
        for rule in rules:
            if verb not in rule.verbs or rule.resource != resource or rule.namespace != namespace:
                continue
            if rule.names is None or (name is not None and name in rule.names):
                return True
        return False

    def _get(self, resource: str, namespace: str, name: str) -> Optional[dict]:
        with self.cond:
            return self.objects.get((resource, namespace, name))

    def _list(self, resource: str, namespace: str, name: Optional[str]) -> Tuple[List[dict], int]:
        with self.cond:
            items = [obj for (r, ns, n), obj in sorted(self.objects.items())
                     if r == resource and ns == namespace and (name is None or n == name)]
            return items, self.rv


@pytest.fixture(scope="session")
def kube_fake():
    with KubeFake() as fake:
        yield fake


@pytest.fixture
def kube(kube_fake):
    """The session's fake, with identities, rules, faults and the log cleared."""
    kube_fake.reset()
    yield kube_fake
    kube_fake.drop_watches()
    kube_fake.reset()


def kubeconfig(fake: KubeFake, path: str, *, token: Optional[str] = None, cert: Optional[Tuple[str, str]] = None,
               exec_command: Optional[List[str]] = None, namespace: Optional[str] = None,
               ca_inline: bool = False, extra_contexts: Optional[Dict[str, dict]] = None) -> str:
    """A kubeconfig file for ``fake`` (YAML is JSON's superset: written as JSON)."""
    user: dict = {}
    if token:
        user["token"] = token
    if cert:
        user["client-certificate"], user["client-key"] = cert
    if exec_command:
        user["exec"] = {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": exec_command[0],
                        "args": exec_command[1:], "interactiveMode": "Never"}
    cluster: dict = {"server": fake.server}
    if ca_inline:
        with open(fake.ca_path, "rb") as handle:
            cluster["certificate-authority-data"] = base64.b64encode(handle.read()).decode()
    else:
        cluster["certificate-authority"] = fake.ca_path
    context: dict = {"cluster": "fake", "user": "me"}
    if namespace:
        context["namespace"] = namespace
    contexts = [{"name": "fake", "context": context}]
    for name, ctx in (extra_contexts or {}).items():
        contexts.append({"name": name, "context": dict({"cluster": "fake", "user": "me"}, **ctx)})
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "fake",
           "clusters": [{"name": "fake", "cluster": cluster}], "users": [{"name": "me", "user": user}],
           "contexts": contexts}
    with open(path, "w") as handle:
        json.dump(doc, handle)
    os.chmod(path, 0o600)
    return path


def main() -> None:
    """Serve until stdin closes; print the address, CA and a token as one JSON line.

    ``--secrets FILE``: a JSON object of Secret name -> {key: value} to store first.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m tests.servers.kubernetes")
    parser.add_argument("--secrets")
    args = parser.parse_args()
    with KubeFake() as fake:
        token = fake.add_token("bench")
        fake.allow("bench", ("get", "list", "watch"), "secrets", "default")
        if args.secrets:
            with open(args.secrets) as handle:
                for name, data in json.load(handle).items():
                    fake.put(name, data)
        print(json.dumps({"server": fake.server, "port": fake.port, "ca_path": fake.ca_path,
                          "token": token}), flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
