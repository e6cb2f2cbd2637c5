"""The provider interface: one required verb, ``fetch``.

A provider is one configured store instance (``[providers.NAME]``). The
resolver owns concurrency, retries and dedupe; a provider only answers
requests and translates its SDK's errors, in one place inside its module, into
``NotFound`` / ``Denied`` / ``Unavailable`` / ``InvalidSecret`` /
``ProviderConfigError`` (``secretrun.errors``). SDK exception types never
escape a provider, and no message holds a value.

Optional verbs, each with a default here:

- ``fetch_batch(sids)``: fetch several secrets in one call (AWS
  ``BatchGetSecretValue``, SSM ``GetParameters``). Used when ``batch_size > 1``;
  the resolver chunks to ``batch_size`` and runs chunks in parallel.
- ``check(sid)``: refuse a malformed reference before anything is fetched.
- ``probe(sid)``: a cheap version token for the supervisor's polling
  (Vault KV v2 ``current_version``, AWS ``DescribeSecret`` stages). ``None``
  means "no cheap probe: refetch and compare". ``probe_batch(sids)`` answers
  up to ``batch_size`` probes in one call where the store can (SSM
  ``GetParameters``); the default probes one by one.
- ``forget()``: drop what was read and kept (dotenv's parsed file), so that
  a refresh reads the store again; called by every refresh before it asks.
- ``renew(lease)`` / ``revoke(lease)`` / ``keepalive()``: leased secrets and
  login tokens, for the supervisor.
- ``consumed_env()``: names of environment variables the provider read for
  its own login (``VAULT_TOKEN``...), removed from the child's environment
  unless the manifest sets them.
- ``write(sid, value)``: store a new version (``secretrun push``/``rotate``).
- ``changed_at(sid)``: when the current version was written (seconds since
  the epoch), for ``secretrun rotate --all-older-than``; ``None`` when the
  store does not say.
- ``changes(sids, sink)``: the store pushes changes (Kubernetes' watch):
  start following ``sids`` and tell ``sink`` (a ``ChangeSink``) about them;
  returns something with ``close()``, or ``None`` when this store cannot
  push. Under ``--watch`` the supervisor then stops polling those secrets
  while the stream holds (``secretrun.changes``).
"""

from __future__ import annotations

import builtins
import os
from typing import TYPE_CHECKING, Any, ClassVar, Dict, List, Mapping, NamedTuple, Optional, Tuple, Union

# Records are NamedTuples, not dataclasses: ``dataclasses`` imports
# ``inspect``, which costs ~10 ms of every container start (see bench/).
from ..errors import InvalidSecret, NotFound, ProviderConfigError, ProviderError, Throttled

if TYPE_CHECKING:  # pragma: no cover - typing.Protocol stays off the exec path
    from .capabilities import ChangeSink, Closable


class SecretId(NamedTuple):
    """What one fetch asks for; the resolver's dedupe key.

    ``tree`` marks an ``[[import]]`` fetch, which asks for every key under the
    path (a whole KV map, a JSON object, an SSM path, a directory) rather than
    one value.
    """

    provider: str
    path: str
    version: Optional[str] = None
    tree: bool = False

    def __str__(self) -> str:
        text = f"${{{self.provider}:{self.path}"
        if self.version is not None:
            text += f"?version={self.version}"
        return text + "}"


class Lease(NamedTuple):
    """A leased secret (Vault dynamic credentials): renewable until max TTL."""

    id: str
    duration: float            # seconds from when it was issued or renewed
    renewable: bool = False


Value = Union[str, bytes, Mapping[str, Any]]


class Secret(NamedTuple):
    """A fetched secret. ``value`` is text, bytes, or a mapping (a KV map, a
    parsed JSON object); its repr never shows it."""

    value: Value
    version: Optional[str] = None
    lease: Optional[Lease] = None

    def __repr__(self) -> str:
        return f"Secret(value=*****, version={self.version!r})"


class ProviderContext(NamedTuple):
    """What a provider is built with, besides its own options.

    ``environ`` is secretrun's own environment (read defaults such as
    ``VAULT_ADDR`` from here, never from ``os.environ`` directly, so tests and
    the Python API can pass their own). ``base_dir`` is the manifest's
    directory, against which relative paths resolve. ``timeout`` bounds every
    network call, in seconds.
    """

    name: str
    type: str
    environ: Mapping[str, str] = {}
    base_dir: str = "."
    timeout: float = 10.0

    def path(self, value: str) -> str:
        """A path option, with ``~`` expanded and relative to the manifest."""
        return os.path.join(self.base_dir, os.path.expanduser(value))


class Provider:
    """Base class of every provider. Subclasses set ``type_name``, implement
    ``from_config`` and ``fetch``, and override the optional verbs they offer.

    Instances are used from several threads at once: ``fetch`` must be safe to
    call concurrently (SDK clients for boto3, hvac/requests sessions and gRPC
    channels are).
    """

    type_name: ClassVar[str] = ""
    #: A store with no network round trip (env, dotenv, file): resolved inline,
    #: without starting a thread pool.
    local: ClassVar[bool] = False
    #: Most secrets ``fetch_batch`` takes in one call; 1 means no batch verb.
    #: Read at every resolution, so an instance may lower it (to 1 when the
    #: store refuses the batch verb, say); ids a batch leaves unanswered are
    #: fetched one by one.
    batch_size: int = 1
    #: Most requests in flight to this store at once.
    max_concurrency: ClassVar[int] = 16
    #: True when a tree fetch (``[[import]]``) answers with what a plain fetch
    #: does (a Vault KV map either way): the resolver then reads the secret
    #: once for an import and the ``#field`` references beside it.
    tree_is_value: ClassVar[bool] = False
    #: True when every secret is a map of fields (a Vault KV secret): ``push``
    #: and ``rotate`` write fields (``#FIELD`` references), never a whole value.
    secret_is_map: ClassVar[bool] = False
    #: What ``secretrun init --provider TYPE`` writes for this store (None: a
    #: generic block): the ``[providers.NAME]`` block (``{dotenv}``: the .env
    #: file given), the provider's name, and each variable's reference
    #: pattern (``{name}``, ``{lower}``, ``{slug}``: the variable as is,
    #: lower-case, lower-case with dashes; ``{app}``: the directory's name).
    scaffold: ClassVar[Optional[Tuple[str, str, str]]] = None

    def __init__(self, ctx: ProviderContext) -> None:
        self.ctx = ctx

    @property
    def name(self) -> str:
        return self.ctx.name

    @classmethod
    def from_config(cls, ctx: ProviderContext, options: Mapping[str, Any]) -> "Provider":
        raise NotImplementedError

    def fetch(self, sid: SecretId) -> Secret:
        raise NotImplementedError

    def fetch_batch(self, sids: Tuple[SecretId, ...]) -> Mapping[SecretId, Union[Secret, ProviderError]]:
        out: Dict[SecretId, Union[Secret, ProviderError]] = {}
        for sid in sids:
            try:
                out[sid] = self.fetch(sid)
            except ProviderError as exc:
                out[sid] = exc
        return out

    def check(self, sid: SecretId) -> Any:
        """Refuse a reference the store could never answer (a malformed name)
        by raising ``ProviderConfigError``. Called for every reference before
        anything is fetched, so a malformed reference fetches nothing."""
        return None

    def probe(self, sid: SecretId) -> Union[str, Secret, None]:
        """A version token, compared with the ``Secret.version`` of the last
        fetch; a ``Secret`` when the only cheap check is the read itself; None
        when there is no cheap check."""
        return None

    def probe_batch(self, sids: Tuple[SecretId, ...]) -> Mapping[SecretId, Union[str, Secret, None, ProviderError]]:
        """Several probes at once: each id's answer or error. Ids left out
        were not asked (here: those after a throttling answer)."""
        out: Dict[SecretId, Union[str, Secret, None, ProviderError]] = {}
        for sid in sids:
            try:
                out[sid] = self.probe(sid)
            except ProviderError as exc:
                out[sid] = exc
                if isinstance(exc, Throttled):
                    break
        return out

    def forget(self) -> None:
        """Drop what was read and kept (a local file's parsed contents), so the
        next ``fetch`` reads the store again. Called at every refresh, before
        anything is asked; ``probe`` is only ever a cheap version check."""
        return None

    def renew(self, lease: Lease) -> Optional[Lease]:
        return None

    def revoke(self, lease: Lease) -> None:
        return None

    def keepalive(self) -> None:
        return None

    def consumed_env(self) -> Tuple[str, ...]:
        return ()

    def write(self, sid: SecretId, value: Value) -> Optional[str]:
        raise ProviderConfigError(f"provider type {self.type_name!r} cannot store secrets")

    def changed_at(self, sid: SecretId) -> Optional[float]:
        return None

    def changes(self, sids: Tuple[SecretId, ...], sink: "ChangeSink") -> Optional["Closable"]:
        """Follow ``sids`` and report to ``sink`` from the store's own threads:
        ``sink.changed({sid: Secret | ProviderError})`` for each new value (a
        deleted secret as ``NotFound``), ``sink.lost(sids, reason)`` when the
        stream cannot be kept (those ids are polled again),
        ``sink.restored(sids)`` when it is back and caught up. ``None``: this
        store only answers polls."""
        return None

    def close(self) -> None:
        return None

    def describe(self) -> str:
        """Where this store is, for error messages (an address, a file)."""
        return self.type_name


class OptionReader:
    """Typed access to a provider's options that collects every problem.

    ``opts.str("address")``... then ``opts.done()``, which raises one
    ``ProviderConfigError`` naming every bad or unknown key.
    """

    def __init__(self, ctx: ProviderContext, options: Mapping[str, Any]) -> None:
        self.ctx = ctx
        self.options = dict(options)
        self.options.pop("type", None)
        self.seen = {"type"}
        self.errors: list[str] = []

    def _get(self, key: str, kinds: Tuple[type, ...], kind_name: str, default: Any) -> Any:
        self.seen.add(key)
        if key not in self.options:
            return default
        value = self.options[key]
        if isinstance(value, bool) and bool not in kinds:
            self.errors.append(f"'{key}' must be {kind_name}")
            return default
        if not isinstance(value, kinds):
            self.errors.append(f"'{key}' must be {kind_name}")
            return default
        return value

    def str(self, key: builtins.str, default: Optional[builtins.str] = None) -> Optional[builtins.str]:  # noqa: A003
        return self._get(key, (str,), "a string", default)

    def bool(self, key: builtins.str, default: bool = False) -> bool:
        return self._get(key, (bool,), "true or false", default)

    def number(self, key: builtins.str, default: Optional[float] = None) -> Optional[float]:
        return self._get(key, (int, float), "a number", default)

    def table(self, key: builtins.str, default: Optional[Mapping[builtins.str, Any]] = None) -> Optional[Mapping[builtins.str, Any]]:
        return self._get(key, (dict,), "a table", default)

    def list(self, key: builtins.str, default: Optional[builtins.list] = None) -> Optional[builtins.list]:  # noqa: A003
        return self._get(key, (list,), "a list", default)

    def error(self, message: builtins.str) -> None:
        self.errors.append(message)

    def done(self) -> None:
        unknown = sorted(set(self.options) - self.seen)
        if unknown:
            from ..errors import did_you_mean

            for key in unknown:
                self.errors.append(f"unknown option '{key}'{did_you_mean(key, sorted(self.seen - {'type'}))}")
        if self.errors:
            raise ProviderConfigError(
                f"provider '{self.ctx.name}' (type {self.ctx.type}): " + "; ".join(self.errors))


def read_local(path: str, what: str = "file", guard: bool = False) -> bytes:
    """A local file's bytes, with the ways it can fail mapped to our errors
    (a missing file is not found; a directory or unreadable file is the
    manifest's mistake). With ``guard``, a file others can write is refused
    and one others can read is warned about (``secretrun.perms``)."""
    try:
        with open(path, "rb") as handle:
            if guard:
                _guard(path, what, os.fstat(handle.fileno()))
            return handle.read()
    except FileNotFoundError:
        raise NotFound(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise ProviderConfigError(f"{what} {path} is a directory, not a file") from None
    except PermissionError:
        raise ProviderConfigError(f"{what} {path} is not readable (permission denied)") from None
    except OSError as exc:
        raise ProviderConfigError(f"{what} {path} cannot be read: {exc.strerror}") from None


def _guard(path: str, what: str, st: os.stat_result) -> None:
    from .. import logs
    from ..perms import readable_by_others, untrusted

    unsafe = untrusted(path, st)
    if unsafe:
        raise ProviderConfigError(f"{what} {path} {unsafe}: others could change the values")
    exposed = readable_by_others(st)
    if exposed:
        logs.get().warning_once(os.path.abspath(path), f"{what} {path} {exposed}")


# --- structured values --------------------------------------------------------


def as_mapping(value: Value, what: str) -> Mapping[str, Any]:
    """A secret's value as a mapping: a mapping as is, text parsed as a JSON
    object. ``what`` names the secret in the error (never the value)."""
    import json

    if isinstance(value, Mapping):
        return value
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidSecret(f"{what} is binary, not a JSON object") from None
    try:
        parsed = json.loads(value)
    except ValueError:
        # ``from None``: the JSON error's message quotes the document.
        raise InvalidSecret(f"{what} is not JSON, so it has no fields") from None
    except RecursionError:
        # json's decoder recurses once per level; a hostile secret can nest deeper than the stack.
        raise InvalidSecret(f"{what} is JSON nested too deeply to select a field") from None
    if not isinstance(parsed, dict):
        raise InvalidSecret(f"{what} is JSON but not an object, so it has no fields")
    return parsed


def select_field(value: Value, field_path: str, what: str) -> Any:
    """Walk ``a.b`` into a structured value. A key holding a literal dot is
    found first, so ``#tls.crt`` works on a map with a ``tls.crt`` key."""
    node: Any = as_mapping(value, what)
    if field_path in node:
        return node[field_path]
    walked: List[str] = []
    for part in field_path.split("."):
        if not isinstance(node, Mapping):
            raise InvalidSecret(f"{what}: field '{'.'.join(walked)}' is not an object, so it has no '{part}'")
        if part not in node:
            missing = ".".join(walked + [part])
            raise NotFound(f"{what} has no field '{missing}'")
        node = node[part]
        walked.append(part)
    return node


def render(value: Any) -> Union[str, bytes]:
    """How a value becomes an environment string.

    Text as is, bytes as is (the caller decides whether bytes are allowed),
    ``true``/``false`` and numbers as their JSON text, ``null`` as the empty
    string, objects and arrays as compact JSON.
    """
    if isinstance(value, (str, bytes)):
        return value
    import json

    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=False, default=_jsonable)


def _jsonable(value: Any) -> Any:
    """What JSON cannot hold: bytes inside an object (a Kubernetes Secret's
    binary key) as base64, as the store itself shows them; the rest as text."""
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode("ascii")
    return str(value)

