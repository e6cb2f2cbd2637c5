"""The child's environment, built from a manifest and a snapshot. Pure: it
returns problems as data and never raises for a bad value.

Precedence, lowest first: the inherited environment (``inherit_env``), the
``NAME_FILE`` convention (``file_vars``), ``[[import]]`` entries in order,
``[env]``, then ``-e NAME=VALUE``. The manifest wins over the inherited
environment because it is the description of what the app needs.

When a reference cannot be resolved:
- ``settings.fallback`` (a dotenv file) gives the variable its value by name,
  whatever the failure (it exists for a laptop without the store), with a
  warning naming the variable;
- otherwise a missing secret (not found) takes ``default``, or, with
  ``required = false``, leaves the variable unset;
- otherwise it is a problem. Denied and unreachable stores never fall to a
  default: that would hide an outage or a permission error behind a value.
``strict = true`` turns off fallback and defaults, refuses empty values and
well-known placeholder values (``changeme``, ``password``...).

``on_missing = "warn"`` (a development profile's setting) turns "does not
exist" into a warning that leaves the variable unset; denied and unreachable
stores still fail. ``unique = true`` variables must all hold different values.
"""

from __future__ import annotations

import os
from types import MappingProxyType
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Set, Tuple, Union, cast

from . import logs
from .errors import InvalidSecret, Kind, NotFound, Problem, ProviderError, describe
from .manifest import EnvVar, Manifest
from .providers.base import SecretId, as_mapping, render, select_field
from .template import Literal, Ref, Template

# Values a strict manifest refuses from a store: defaults that were never changed.
PLACEHOLDERS = frozenset({
    "changeme", "change-me", "change_me", "password", "passw0rd", "secret", "admin", "default",
    "example", "test", "todo", "xxx", "none", "null", "12345", "123456", "letmein", "placeholder",
})


class ChildEnv(NamedTuple):
    """A complete environment for the child, built from one snapshot: what
    ``build`` returns, and what a ``Session`` resolves to once its files are
    delivered (``paths``)."""

    env: Dict[str, str]                  # the child's whole environment
    files: Dict[str, bytes]              # variable -> content, for ``file = true``
    on_change: Dict[str, str]            # variable -> restart | signal | ignore (or settings.on_change)
    values: List[str]                    # every value that came from a store, for masking
    sources: Dict[str, str]              # variable -> reference text or origin, for logs and ``check``
    versions: Dict[str, Optional[str]]   # variable -> version of the secret it came from
    managed: Tuple[str, ...]             # the variables secretrun set (not inherited)
    problems: Tuple[Problem, ...] = ()
    warnings: Tuple[Problem, ...] = ()   # reported, but the command starts (on_missing = "warn")
    # variable -> the path its file was delivered at (also its value in ``env``);
    # empty until a session delivers the files (``check`` and ``env`` do not).
    paths: Mapping[str, str] = MappingProxyType({})

    @property
    def delivered(self) -> Dict[str, bytes]:
        """Path -> content of every delivered file: what the supervisor writes."""
        return {self.paths[name]: data for name, data in self.files.items() if name in self.paths}


def _lookup(ref: Ref, snapshot: Mapping[SecretId, Any]) -> Tuple[Any, Optional[str], Optional[ProviderError]]:
    """The value a reference points at (field selected), its version, or the error."""
    outcome = snapshot.get(ref.secret_id)
    if outcome is None:
        return None, None, ProviderError(f"{ref.text} was not fetched")
    if isinstance(outcome, ProviderError):
        return None, None, outcome
    value = outcome.value
    if ref.field is not None:
        try:
            value = select_field(value, ref.field, f"secret {ref.secret_id}")
        except ProviderError as exc:
            return None, outcome.version, exc
    return value, outcome.version, None


def render_template(tpl: Template, snapshot: Mapping[SecretId, Any]) -> Tuple[Optional[Union[str, bytes]], Optional[ProviderError]]:
    """Render a template to text (or bytes, for one binary reference alone)."""
    parts: List[Union[str, bytes]] = []
    for atom in tpl:
        if isinstance(atom, Literal):
            parts.append(atom.text)
            continue
        value, _, error = _lookup(atom, snapshot)
        if error is not None:
            return None, error
        parts.append(render(value))
    if len(parts) == 1:
        return parts[0], None
    if any(isinstance(p, bytes) for p in parts):
        try:
            parts = [p.decode("utf-8") if isinstance(p, bytes) else p for p in parts]
        except UnicodeDecodeError:
            return None, InvalidSecret("a binary secret cannot be embedded in a larger value")
    return "".join(parts), None  # type: ignore[arg-type]


def _text(value: Union[str, bytes], for_file: bool) -> Tuple[Optional[Union[str, bytes]], Optional[str]]:
    if isinstance(value, bytes):
        if for_file:
            return value, None
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return None, "is binary (not UTF-8), so it cannot be an environment value; use file = true"
    if "\x00" in value and not for_file:
        return None, "contains a NUL byte, which an environment cannot hold; use file = true"
    return value, None


def _normalize(key: str) -> str:
    return "".join(c if c.isalnum() and c.isascii() else "_" for c in key).upper()


def build(manifest: Manifest, snapshot: Mapping[SecretId, Any],
          environ: Mapping[str, str], consumed: Tuple[str, ...] = (),
          skip_providers: Optional[Set[str]] = None,
          env_prefixes: Optional[Mapping[str, str]] = None) -> ChildEnv:
    """``consumed``: variables of ``environ`` secretrun read to log in to a
    store; they reach the child by no route (inherited, imported) unless
    ``[env]`` or ``-e`` (``manifest.extras``) sets them by name.
    ``env_prefixes``: each env-type provider's name and prefix, to tell
    which variable an import read."""
    from .loadervars import is_loader_variable
    from .manifest import is_env_name

    settings = manifest.settings
    extras = manifest.extras
    log = logs.get()
    skip = skip_providers or set()
    consumed_set = set(consumed)
    problems: List[Problem] = []
    warnings: List[Problem] = []
    warn_missing = settings.on_missing == "warn" and not settings.strict
    env: Dict[str, str] = {}
    files: Dict[str, bytes] = {}
    on_change: Dict[str, str] = {}
    values: List[str] = []
    sources: Dict[str, str] = {}
    versions: Dict[str, Optional[str]] = {}
    managed: Dict[str, None] = {}   # ordered; a dict so membership is O(1) with 10,000 variables

    if settings.inherit_env:
        base = dict(environ)
        explicit = set(manifest.env) | set(extras)
        for name in consumed:
            if name not in explicit:
                base.pop(name, None)
    else:
        base = {"PATH": environ.get("PATH", os.defpath)}

    # NAME_FILE=/path -> NAME=<content>, as the official Docker images do by hand.
    if settings.file_vars:
        for name, path in environ.items():
            if not name.endswith("_FILE") or len(name) <= 5:
                continue
            target = name[:-5]
            if target in manifest.env or target in extras or not os.path.isfile(path):
                continue
            if target in environ:
                problems.append(Problem(Kind.MISSING, f"both {target} and {name} are set; set only one",
                                        variable=target))
                continue
            try:
                with open(path, "rb") as handle:
                    data = handle.read()
            except OSError as exc:
                problems.append(Problem(Kind.MISSING, f"{name} names {path}, which cannot be read: "
                                        f"{exc.strerror}", variable=target))
                continue
            text, why = _text(data.rstrip(b"\r\n"), False)
            if why:
                problems.append(Problem(Kind.INVALID, f"the file {name} names {why}", variable=target))
                continue
            text = cast(str, text)   # bytes only when for_file
            base[target] = text
            values.append(text)
            sources[target] = f"{name} ({path})"
            managed[target] = None

    fallback: Optional[Dict[str, Optional[str]]] = None
    fallback_error: Optional[str] = None
    if settings.fallback and not settings.strict:
        from .providers.dotenv import read_dotenv

        path = os.path.join(manifest.base_dir, os.path.expanduser(settings.fallback))
        try:
            fallback = read_dotenv(path, "fallback file")
        except ProviderError as exc:
            fallback_error = str(exc)
            if exc.kind == Kind.MANIFEST:
                # Untrusted (someone else's, or writable by others) or unreadable: refused, used or not.
                problems.append(Problem(exc.kind, fallback_error))

    def deliver(name: str, value: Union[str, bytes], as_file: bool, from_store: bool,
                var: Optional[EnvVar], source: str, version: Optional[str]) -> None:
        text, why = _text(value, as_file)
        if text is None:       # _text gives a text or why there is none
            problems.append(Problem(Kind.INVALID, f"the value {why}", variable=name, reference=source))
            return
        if from_store:
            values.append(text.decode("utf-8", "replace") if isinstance(text, bytes) else text)
        if var is not None and not _valid(var, text, from_store):
            return
        if as_file:
            files[name] = text if isinstance(text, bytes) else text.encode("utf-8")
            env.pop(name, None)
        else:
            env[name] = text  # type: ignore[assignment]
        sources[name] = source
        versions[name] = version
        managed[name] = None

    def _valid(var: EnvVar, value: Union[str, bytes], from_store: bool) -> bool:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        ok = True

        def bad(message: str) -> None:
            nonlocal ok
            ok = False
            problems.append(Problem(Kind.INVALID, message, variable=var.name))

        if var.min_length is not None and len(text) < var.min_length:
            # Never the length itself: it is information about the value.
            bad(f"the value is too short (min_length {var.min_length})")
        if var.pattern is not None and not var.pattern.fullmatch(text):
            bad(f"the value does not match the pattern {var.pattern.pattern!r}")
        if text in var.forbid:
            bad("the value is one of the values listed in 'forbid'")
        if settings.strict and from_store:
            if not text:
                bad("the value is empty (strict mode)")
            elif text.strip().lower() in PLACEHOLDERS:
                bad("the value is a well-known placeholder (strict mode)")
        return ok

    # [[import]]: every key of one secret becomes a variable.
    for imp in manifest.imports:
        if imp.ref.provider in skip:
            continue
        # A tree fetch, or the plain one where the store answers both alike
        # (the session fetched one of the two: ``Provider.tree_is_value``).
        sid = imp.ref.secret_id._replace(tree=True)
        outcome = snapshot.get(sid, snapshot.get(imp.ref.secret_id))
        if isinstance(outcome, ProviderError) or outcome is None:
            err = outcome or ProviderError("was not fetched")
            if isinstance(err, NotFound) and not imp.required:
                continue
            if isinstance(err, NotFound) and warn_missing:
                warnings.append(Problem(err.kind, f"{err}; left unset (on_missing = \"warn\")",
                                        variable=imp.label, provider=imp.ref.provider, reference=imp.ref.text))
                continue
            problems.append(Problem(err.kind, str(err), variable=imp.label, provider=imp.ref.provider,
                                    reference=imp.ref.text))
            continue
        try:
            data = outcome.value
            if imp.ref.field is not None:
                data = select_field(data, imp.ref.field, f"secret {imp.ref.secret_id}")
            mapping = as_mapping(data, f"secret {imp.ref.secret_id}")
        except ProviderError as exc:
            problems.append(Problem(exc.kind, str(exc), variable=imp.label, reference=imp.ref.text))
            continue
        read_from = None
        if env_prefixes is not None and imp.ref.provider in env_prefixes:
            read_from = env_prefixes[imp.ref.provider] + imp.ref.secret_id.path.rstrip("*")
        for key, raw in mapping.items():
            name = imp.prefix + (_normalize(key) if imp.normalize else key)
            if not is_env_name(name):
                problems.append(Problem(Kind.INVALID, f"key {key!r} does not make a valid variable name "
                                        f"({name!r}); set normalize = true", variable=imp.label,
                                        reference=imp.ref.text))
                continue
            if read_from is not None and read_from + key in consumed_set:
                # A login credential, back through an import of our environment.
                continue
            if is_loader_variable(name) and name not in imp.allow:
                problems.append(Problem(Kind.INVALID, f"key {key!r} would set {name}, which changes what code "
                                        "the command loads or where its traffic goes; list it in this "
                                        f"import's allow = [\"{name}\"] if that is intended",
                                        variable=imp.label, reference=imp.ref.text))
                continue
            deliver(name, render(raw), False, True, None, imp.ref.text, outcome.version)
            if imp.on_change:
                on_change[name] = imp.on_change

    # [env] and -e, which override imports.
    entries: List[Tuple[str, Template, Optional[EnvVar]]] = [
        (var.name, var.template, var) for var in manifest.env.values()]
    entries += [(name, tpl, manifest.env.get(name)) for name, tpl in extras.items()]
    for name, tpl, var in entries:
        refs_ = [a for a in tpl if isinstance(a, Ref)]
        if any(r.provider in skip for r in refs_):
            continue
        source = refs_[0].text if len(refs_) == 1 and len(tpl) == 1 else (
            ", ".join(r.text for r in refs_) if refs_ else "literal")
        value, error = render_template(tpl, snapshot)
        version = None
        if len(refs_) == 1:
            version = _lookup(refs_[0], snapshot)[1]
        if error is not None:
            failed = next((r for r in refs_ if _lookup(r, snapshot)[2] is not None), refs_[0] if refs_ else None)
            if fallback is not None and name in fallback:
                log.warning(f"{name}: using the fallback file {settings.fallback}, because {describe(error)}",
                            variable=name)
                value, source, version = fallback[name] or "", f"fallback {settings.fallback}", None
            elif var is not None and not settings.strict and isinstance(error, NotFound) and var.default is not None:
                value, source, version = var.default, "default", None
            elif var is not None and not settings.strict and isinstance(error, NotFound) and not var.required:
                continue
            elif isinstance(error, NotFound) and warn_missing:
                warnings.append(Problem(error.kind, f"{error}; left unset (on_missing = \"warn\")", variable=name,
                                        provider=failed.provider if failed else None,
                                        reference=failed.text if failed else None))
                continue
            else:
                message = str(error)
                if fallback_error and settings.fallback:
                    message += f"; {fallback_error}"
                elif fallback is not None:
                    message += "; not in the fallback file either"
                problems.append(Problem(error.kind, message, variable=name,
                                        provider=failed.provider if failed else None,
                                        reference=failed.text if failed else None))
                continue
        as_file = bool(var and var.file)
        if name in files and not as_file:
            files.pop(name)
        # Fallback values count as secrets (masked, checked); defaults are the manifest's own text.
        assert value is not None   # render_template gives a value or an error; each error branch set one
        deliver(name, value, as_file, bool(refs_) and source != "default", var, source, version)
        if var is not None and var.on_change:
            on_change[name] = var.on_change

    problems += _unique_problems(manifest, env, files, sources)
    for name in managed:
        on_change.setdefault(name, settings.on_change)
    merged = dict(base)
    merged.update(env)
    return ChildEnv(merged, files, on_change, values, sources, versions, tuple(managed), tuple(problems),
                    tuple(warnings))


def value_bytes(value: Union[str, bytes]) -> bytes:
    """A variable's value as bytes, for comparing (``unique``, ``--distinct-from``)."""
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


def _unique_problems(manifest: Manifest, env: Mapping[str, str], files: Mapping[str, bytes],
                     sources: Mapping[str, str]) -> List[Problem]:
    """``unique = true`` variables whose values are equal, each pair named
    once. Compared in constant time, straight from the environment being
    built: no copy of a value outlives the comparison."""
    names = [v.name for v in manifest.env.values() if v.unique and (v.name in env or v.name in files)]
    if len(names) < 2:
        return []
    import hmac  # only here: it loads OpenSSL, which the exec path does not need otherwise

    problems = []
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            a = env[first] if first in env else files[first]      # each name is in one of them
            b = env[second] if second in env else files[second]
            if hmac.compare_digest(value_bytes(a), value_bytes(b)):
                problems.append(Problem(Kind.INVALID, f"has the same value as {second}; variables with "
                                        "unique = true must all differ", variable=first,
                                        reference=sources.get(first)))
    return problems
