"""The plan: which secrets can be written (*targets*), what each holds
now, and the value and action (create, update, unchanged, replace) for
each variable; plus the output rows, never a value."""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Tuple

from ..errors import Kind, NotFound, Problem, ProblemReport, ProviderError, provider_bug
from ..manifest import Manifest
from ..providers.base import Provider, Secret, SecretId, as_mapping, render
from ..template import single_ref


class Target(NamedTuple):
    """One secret to write, and the variables that read it: (variable,
    field or None) pairs."""

    sid: SecretId
    provider: str
    uses: Tuple[Tuple[str, Optional[str]], ...]

    @property
    def variables(self) -> Tuple[str, ...]:
        return tuple(v for v, _ in self.uses)


def writable(type_name: str) -> bool:
    """Whether a provider type can be pushed to and rotated: its class offers
    the ``write`` capability (``providers.capabilities``), built-in or not.
    A type whose library is missing counts as writable here, so that
    building it reports the missing library instead of skipping it."""
    from ..errors import ProviderConfigError
    from ..providers import load
    from ..providers.capabilities import offers

    try:
        return offers(load(type_name), "write")
    except ProviderConfigError:
        return True


def targets(manifest: Manifest, names: Optional[List[str]] = None) -> Tuple[List[Target], List[Problem]]:
    """The writable secrets behind ``names`` (every variable when None).
    Variables that are not one reference to a writable store are skipped
    silently when all are asked for, and are problems when named."""
    types = {name: cfg.type for name, cfg in manifest.providers.items()}
    grouped: Dict[SecretId, List[Tuple[str, Optional[str]]]] = {}
    problems: List[Problem] = []
    for name in names if names is not None else list(manifest.env):
        var = manifest.env.get(name)
        if var is None:
            problems.append(Problem(Kind.MISSING, "is not a variable of the manifest", variable=name,
                                    location=manifest.path))
            continue
        ref = single_ref(var.template)
        type_name = types.get(ref.provider) if ref is not None else None
        if ref is None or type_name is None or not writable(type_name):
            if names is not None:
                why = f"provider type {type_name!r} has no write()" if type_name else "see the provider table"
                problems.append(Problem(Kind.MISSING, f"is not exactly one reference to a writable store ({why})",
                                        variable=name))
            continue
        if ref.version is not None:
            if names is None:
                continue  # a pinned read is history, not something to push
            problems.append(Problem(Kind.MISSING, "pins a version, so a new one would not be read",
                                    variable=name, reference=ref.text))
            continue
        grouped.setdefault(ref.secret_id, []).append((name, ref.field))
    out = [Target(sid, sid.provider, tuple(uses)) for sid, uses in grouped.items()]
    return out, problems


def _set_field(node: Dict[str, Any], field: str, value: str) -> None:
    """Set ``a.b`` in a map, as ``select_field`` reads it: a key holding the
    dotted name itself wins."""
    if field in node or "." not in field:
        node[field] = value
        return
    parts = field.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def _get_field(node: Mapping[str, Any], field: str) -> Any:
    if field in node:
        return node[field]
    for part in field.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _ABSENT
        node = node[part]
    return node


_ABSENT = object()


def _call(provider: Provider, call: Callable[[], Any]) -> Any:
    """A provider call whose failures are all ``ProviderError`` (a provider
    bug must not become a traceback with values in it)."""
    try:
        return call()
    except ProviderError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise provider_bug(provider.name, exc) from None


def current(provider: Provider, sid: SecretId) -> Optional[Secret]:
    """What the store holds now, or None when the secret does not exist."""
    try:
        return _call(provider, lambda: provider.fetch(sid))
    except NotFound:
        return None


def desired(target: Target, now: Optional[Secret], values: Mapping[str, str],
            provider: Provider) -> Tuple[Any, Dict[str, str]]:
    """The value to write for ``target`` and each variable's action
    (``create``, ``update``, ``unchanged`` or ``replace``: differs from what is
    there). Fields keep the secret's other fields."""
    actions: Dict[str, str] = {}
    whole = [v for v, f in target.uses if f is None and v in values]
    fields = [(v, f) for v, f in target.uses if f is not None and v in values]
    if whole and fields:
        raise ProviderError(f"{target.sid}: read both whole and by field; push one or the other")
    if whole:
        if provider.secret_is_map:
            raise ProviderError(f"{target.sid}: a {provider.type_name} secret is a map, so the reference "
                                "needs '#FIELD'")
        texts = {values[v] for v in whole}
        if len(texts) > 1:
            raise ProviderError(f"{target.sid}: {', '.join(whole)} give it different values")
        new = texts.pop()
        old = None if now is None else render(now.value)
        if isinstance(old, bytes):
            old = old.decode("utf-8", "replace")
        for name in whole:
            actions[name] = "create" if old is None else "unchanged" if old == new else "replace"
        return new, actions
    base: Dict[str, Any] = {}
    if now is not None:
        base = json.loads(json.dumps(dict(as_mapping(now.value, str(target.sid)))))
    for name, field in fields:
        old = _get_field(base, field)
        if old is _ABSENT:
            actions[name] = "create" if now is None else "update"
        else:
            actions[name] = "unchanged" if render(old) == values[name] else "replace"
    for name, field in fields:
        _set_field(base, field, values[name])
    return base, actions


class Row(NamedTuple):
    """One line of output: never a value."""

    variable: str
    reference: str
    action: str
    version: Optional[str] = None


def _problem(exc: ProviderError, target: Target, variables=None) -> Problem:
    return Problem(exc.kind, str(exc), variable=", ".join(variables or target.variables),
                   provider=target.provider, reference=str(target.sid))


def _providers(session, wanted: List[Target]) -> Tuple[Dict[str, Provider], List[Problem]]:
    out: Dict[str, Provider] = {}
    for name in dict.fromkeys(t.provider for t in wanted):
        provider = session.provider(name)
        if provider is not None:
            out[name] = provider
    return out, list(session.provider_problems.values())


def _raise(problems: List[Problem], title: str) -> None:
    if problems:
        raise ProblemReport(problems, title=title)


def _ref_text(target: Target, name: str) -> str:
    field = dict(target.uses).get(name)
    return str(target.sid)[:-1] + (f"#{field}}}" if field else "}")
