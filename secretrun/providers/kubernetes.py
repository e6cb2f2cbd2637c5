"""``kubernetes``: Secrets (or ConfigMaps) read through the Kubernetes API.

A reference's path is ``NAME`` (in the provider's namespace) or
``NAMESPACE/NAME``; ``#KEY`` picks one key of the object's ``data``
(base64-decoded: text when it is UTF-8, bytes otherwise, which only a
``file = true`` variable takes) and ``[[import]]`` takes every key. A
ConfigMap's ``binaryData`` is read the same way with ``kind = "configmap"``.
``Secret.version`` is the object's ``resourceVersion``.

Credentials are found as kubectl finds them: inside a pod, the service
account's token, CA and namespace under ``serviceaccount_dir`` (default
``/var/run/secrets/kubernetes.io/serviceaccount``) with
``KUBERNETES_SERVICE_HOST``/``_PORT``, the token re-read before every request
(projected tokens rotate); elsewhere a kubeconfig (``kubeconfig``, else the
first file of ``KUBECONFIG``, else ``~/.kube/config``) and its ``context``:
bearer tokens, client certificates, CA data or files and exec credential
plugins, handled by lightkube's kubeconfig layer. The requests themselves
are three plain REST calls (GET, LIST, WATCH) over httpx2, the HTTP client
lightkube is built on: the README has the measurements behind this choice.

Under ``--watch`` the provider pushes changes (``changes``): one watch per
namespace and kind (``kubewatch.py``).
"""

from __future__ import annotations

import base64
import os
import re
import ssl
from typing import Any, Dict, Mapping, NamedTuple, Optional, Tuple, Union

import httpx2 as httpx
from lightkube.config.client_adapter import ConnectionParams
from lightkube.config.kubeconfig import KubeConfig, SingleConfig
from lightkube.config.models import Cluster, User
from lightkube.core.exceptions import ConfigError

from ..errors import (
    Denied,
    InvalidSecret,
    NotFound,
    ProviderConfigError,
    ProviderError,
    Unavailable,
    in_words,
)
from .base import (
    OptionReader,
    Provider,
    ProviderContext,
    Secret,
    SecretId,
)
from .capabilities import ChangeSink, Closable

SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
# RFC 1123: a namespace is a DNS label, a Secret's or ConfigMap's name a DNS subdomain.
LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
NAMESPACE_RE = re.compile(rf"^{LABEL}$")
NAME_RE = re.compile(rf"^(?=.{{1,253}}$){LABEL}(?:\.{LABEL})*$")
KINDS = {"secret": "secrets", "configmap": "configmaps"}


class Target(NamedTuple):
    """One object a reference names."""

    namespace: str
    name: str


class Api(NamedTuple):
    """What a request needs: the client, where it goes, and for messages."""

    client: httpx.Client
    server: str
    resource: str          # secrets | configmaps


class KubernetesProvider(Provider):
    type_name = "kubernetes"
    # Also the HTTP connection pool's size, so no thread waits for a socket.
    max_concurrency = 16

    def __init__(self, ctx: ProviderContext, api: Api, namespace: str) -> None:
        super().__init__(ctx)
        self.api = api
        self.namespace = namespace

    @classmethod
    def from_config(cls, ctx: ProviderContext, options: Mapping[str, Any]) -> "KubernetesProvider":
        opts = OptionReader(ctx, options)
        kind = opts.str("kind", "secret") or "secret"
        if kind not in KINDS:
            opts.error(f"'kind' must be \"secret\" or \"configmap\", not {kind!r}")
        namespace = opts.str("namespace")
        if namespace is not None and not NAMESPACE_RE.match(namespace):
            opts.error(f"'namespace': {namespace!r} is not a Kubernetes namespace name")
        timeout = _timeout(opts, ctx.timeout)
        sa_dir = opts.str("serviceaccount_dir")
        kubeconfig = opts.str("kubeconfig")
        context = opts.str("context")
        if sa_dir is not None and (kubeconfig is not None or context is not None):
            opts.error("set 'serviceaccount_dir' (in a pod) or 'kubeconfig'/'context', not both")
        opts.done()
        login = _login(ctx, sa_dir, kubeconfig, context)
        client = _client(ctx, login, timeout)
        return cls(ctx, Api(client, login.server, KINDS[kind]), namespace or login.namespace)

    # --- the verbs ---------------------------------------------------------

    def check(self, sid: SecretId) -> Target:
        """The object a reference names; ``ProviderConfigError`` when no
        Kubernetes object could have that name."""
        namespace, _, name = sid.path.rpartition("/")
        namespace = namespace or self.namespace
        if not NAMESPACE_RE.match(namespace):
            raise ProviderConfigError(f"{namespace!r} is not a Kubernetes namespace name (in {sid})")
        if not NAME_RE.match(name):
            raise ProviderConfigError(f"{name!r} is not a Kubernetes object name (lowercase letters, digits, "
                                      f"'-' and '.', at most 253)")
        if sid.version is not None:
            raise ProviderConfigError(f"{sid}: a Kubernetes object has no versions to pin; "
                                      f"drop ?version=")
        return Target(namespace, name)

    def fetch(self, sid: SecretId) -> Secret:
        target = self.check(sid)
        obj = request_json(self.api, "get", target.namespace, target.name)
        return to_secret(obj, self.api.resource, target)

    def probe(self, sid: SecretId) -> Union[str, Secret, None]:
        """The object as it is now: a GET is as cheap as any version check
        Kubernetes offers, so the read itself is the probe (one request per
        poll). Under ``--watch`` the watch replaces the polls."""
        return self.fetch(sid)

    def changes(self, sids: Tuple[SecretId, ...], sink: ChangeSink) -> Optional[Closable]:
        from .kubewatch import Watches

        targets = {sid: self.check(sid) for sid in sids}
        watches = Watches(self.api, targets, sink, self.ctx.name)
        watches.start()
        return watches

    def close(self) -> None:
        try:
            self.api.client.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass

    def describe(self) -> str:
        return self.api.server


# --- reading objects ----------------------------------------------------------


def object_path(resource: str, namespace: str, name: Optional[str] = None) -> str:
    path = f"/api/v1/namespaces/{namespace}/{resource}"
    return f"{path}/{name}" if name else path


def to_secret(obj: Mapping[str, Any], resource: str, target: Target) -> Secret:
    """A Secret's or ConfigMap's keys as a mapping: ``data`` base64-decoded
    for a Secret (text when UTF-8, else bytes), ``data`` as is and
    ``binaryData`` decoded for a ConfigMap."""
    what = described(resource, target)
    values: Dict[str, Union[str, bytes]] = {}
    encoded = obj.get("data") if resource == "secrets" else obj.get("binaryData")
    plain = obj.get("data") if resource == "configmaps" else None
    try:
        for key, text in (plain or {}).items():
            values[key] = str(text)
        for key, data in (encoded or {}).items():
            raw = base64.b64decode(data or "", validate=True)
            try:
                values[key] = raw.decode("utf-8")
            except UnicodeDecodeError:
                values[key] = raw    # only a file = true variable takes it (childenv)
    except (ValueError, TypeError, AttributeError):
        raise InvalidSecret(f"{what}: the API server sent data that is not base64") from None
    version = (obj.get("metadata") or {}).get("resourceVersion")
    return Secret(values, str(version) if version is not None else None)


def request_json(api: Api, verb: str, namespace: str, name: Optional[str] = None,
                 params: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """One GET (``get`` an object, ``list`` a collection), as JSON; every
    failure as our error."""
    path = object_path(api.resource, namespace, name)
    what = described(api.resource, Target(namespace, name)) if name else f"{api.resource} in namespace {namespace}"
    try:
        response = api.client.get(path, params=params)
    except Exception as exc:  # noqa: BLE001 - every client error is translated, none escapes
        raise transport_error(exc, what, api.server) from None
    if response.status_code != 200:
        raise status_error(response.status_code, verb, api.resource, namespace, what, api.server,
                           response.headers.get("Retry-After"))
    try:
        body = response.json()
    except ValueError:
        raise Unavailable(f"{api.server} answered {what} with something that is not JSON") from None
    if not isinstance(body, dict):
        raise Unavailable(f"{api.server} answered {what} with something that is not an object")
    return body


def status_error(status: int, verb: str, resource: str, namespace: str, what: str, server: str,
                 retry_after: Optional[str] = None) -> ProviderError:
    """An HTTP status as our error. The API server's own message is left
    out: it is not needed to name what RBAC must allow."""
    rbac = f"{verb} {resource} in namespace {namespace}"
    if status == 401:
        return Denied(f"{server} did not accept the credentials for {what} (401 Unauthorized): "
                      f"the token, certificate or exec plugin gives no valid identity; "
                      f"RBAC must then allow it to {rbac}")
    if status == 403:
        return Denied(f"{what}: forbidden by {server} (403): RBAC must allow {rbac}")
    if status == 404:
        return NotFound(f"{what} does not exist in {server}")
    if status == 429 or status >= 500:
        return Unavailable(f"{server} could not serve {what} ({status})", retry_after=_seconds(retry_after))
    return ProviderError(f"{server} refused {what} ({status})")


def transport_error(exc: BaseException, what: str, server: str) -> ProviderError:
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, ConfigError):
        # An exec plugin that failed; its message holds the plugin's stderr,
        # which is the plugin's business: named, not echoed.
        return Denied(f"{what}: the kubeconfig's exec credential plugin failed (run it by hand to see why)")
    if isinstance(exc, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return Denied(f"{what}: the TLS handshake with {server} failed: its certificate is not signed by "
                      f"the configured CA, or the client certificate was refused")
    if isinstance(exc, httpx.TimeoutException):
        return Unavailable(f"{what}: {server} did not answer in time")
    if isinstance(exc, httpx.TransportError):
        return Unavailable(f"{what}: could not connect to {server} ({in_words(exc)})")
    if isinstance(exc, (OSError, ValueError)):
        return Unavailable(f"{what}: the request to {server} failed ({in_words(exc)})")
    return ProviderError(f"{what}: the request to {server} failed unexpectedly ({in_words(exc)})")


def _timeout(opts: OptionReader, default: float) -> float:
    """``timeout``: seconds, or a duration such as ``"5s"``."""
    from ..manifest import parse_duration

    opts.seen.add("timeout")
    raw = opts.options.get("timeout", default)
    seconds = parse_duration(raw)
    if not seconds:
        opts.error(f"'timeout' must be a duration (\"5s\") or a number of seconds above 0, not {raw!r}")
        return default
    return seconds


def described(resource: str, target: Target) -> str:
    kind = "Secret" if resource == "secrets" else "ConfigMap"
    return f"{kind} {target.namespace}/{target.name}"


def _seconds(text: Optional[str]) -> Optional[float]:
    try:
        return max(0.0, float(text)) if text else None
    except ValueError:
        return None


# --- credentials -----------------------------------------------------------------


class Login(NamedTuple):
    """A selected cluster and user, from the service account or a kubeconfig."""

    config: SingleConfig
    namespace: str
    token_file: Optional[str]   # in a pod: re-read before every request
    server: str


def _login(ctx: ProviderContext, sa_dir: Optional[str], kubeconfig: Optional[str],
           context: Optional[str]) -> Login:
    """As kubectl chooses: the pod's service account when the API server's
    address is in the environment (or ``serviceaccount_dir`` is set),
    otherwise the kubeconfig."""
    env = ctx.environ
    in_pod = env.get("KUBERNETES_SERVICE_HOST") and env.get("KUBERNETES_SERVICE_PORT")
    if sa_dir is not None or (in_pod and kubeconfig is None and context is None
                              and os.path.isfile(os.path.join(SERVICE_ACCOUNT, "token"))):
        return _service_account(ctx, ctx.path(sa_dir) if sa_dir else SERVICE_ACCOUNT)
    return _kubeconfig(ctx, kubeconfig, context)


def _service_account(ctx: ProviderContext, directory: str) -> Login:
    env = ctx.environ
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    where = f"provider '{ctx.name}' (type kubernetes)"
    if not host or not port:
        raise ProviderConfigError(f"{where}: the service account in {directory} needs KUBERNETES_SERVICE_HOST "
                                  f"and KUBERNETES_SERVICE_PORT (set in every pod)")
    token, ca = os.path.join(directory, "token"), os.path.join(directory, "ca.crt")
    for path in (token, ca):
        if not os.path.isfile(path):
            raise ProviderConfigError(f"{where}: no {path} (is a service account token mounted?)")
    try:
        with open(os.path.join(directory, "namespace")) as handle:
            namespace = handle.read().strip() or "default"
    except OSError:
        namespace = "default"
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    config = _context(KubeConfig.from_one(cluster=Cluster(server=server, certificate_auth=ca),
                                          user=User(token_file=token), namespace=namespace), None)
    return Login(config, namespace, token, server)


def _context(kube: KubeConfig, context: Optional[str]) -> SingleConfig:
    """The configuration of ``context`` (the current one when None).
    ``get`` without a default raises ``ConfigError`` rather than return None."""
    config = kube.get(context)
    if config is None:
        raise ConfigError("no context is selected")
    return config


def _kubeconfig(ctx: ProviderContext, path: Optional[str], context: Optional[str]) -> Login:
    where = f"provider '{ctx.name}' (type kubernetes)"
    if path is not None:
        path = ctx.path(path)
    else:
        # KUBECONFIG may list several files; kubectl merges them, and the
        # first holds the current context in the common case.
        listed = [p for p in ctx.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
        home = ctx.environ.get("HOME") or os.path.expanduser("~")
        path = listed[0] if listed else os.path.join(home, ".kube", "config")
    if not os.path.isfile(path):
        pod = (f"in a pod, but no service account token in {SERVICE_ACCOUNT}"
               if ctx.environ.get("KUBERNETES_SERVICE_HOST")
               else "and not in a pod: KUBERNETES_SERVICE_HOST is not set")
        raise ProviderConfigError(f"{where}: no kubeconfig at {path} ({pod})")
    try:
        config = _context(KubeConfig.from_file(path), context)
    except ConfigError as exc:
        raise ProviderConfigError(f"{where}: kubeconfig {path}: {exc}") from None
    except KeyError as exc:
        raise ProviderConfigError(f"{where}: kubeconfig {path}: a context names a cluster or user "
                                  f"that is not defined ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - a malformed file: YAML or structure
        raise ProviderConfigError(f"{where}: kubeconfig {path} cannot be read "
                                  f"({in_words(exc)})") from None
    user = config.user
    if user is None:
        user = User()
        config = config._replace(user=user)
    if user.auth_provider:
        raise ProviderConfigError(f"{where}: kubeconfig {path}: the 'auth-provider' login of context "
                                  f"{config.context_name!r} was removed from Kubernetes; use an exec plugin")
    return Login(config, config.namespace, None, config.cluster.server.rstrip("/"))


class _TokenFile(httpx.Auth):
    """The pod's token, read before every request: the kubelet rewrites a
    projected token before it expires (hourly by default)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def auth_flow(self, request: httpx.Request):
        try:
            with open(self.path) as handle:
                token = handle.read().strip()
        except OSError:
            raise Denied(f"the service account token {self.path} cannot be read") from None
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


def _client(ctx: ProviderContext, login: Login, timeout: float) -> httpx.Client:
    where = f"provider '{ctx.name}' (type kubernetes)"
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=KubernetesProvider.max_concurrency)
    try:
        params = ConnectionParams(timeout=httpx.Timeout(timeout), trust_env=False).httpx_params(login.config)
        if login.token_file:
            params["auth"] = _TokenFile(login.token_file)
        return httpx.Client(limits=limits, headers={"Accept": "application/json"}, **params)
    except ConfigError as exc:
        raise ProviderConfigError(f"{where}: {exc}") from None
    except (OSError, ssl.SSLError, ValueError) as exc:
        # An unreadable CA or client certificate; named, never echoed (a key is in there).
        raise ProviderConfigError(f"{where}: the CA or client certificate of {login.server} cannot be "
                                  f"loaded ({in_words(exc)})") from None
