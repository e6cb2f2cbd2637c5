"""Adoption tools: ``push`` values into stores, ``rotate`` them, ``generate`` one.

Everything goes through the providers' own verbs (``fetch`` to read what is
there, ``write`` to store a new version), so errors map to the same exit codes
as reads and no value reaches any output: what is printed is names,
references, actions and version ids.

A *target* is one secret in a writable store, with the manifest variables
that read it. A variable counts when its value is exactly one reference
(``${aws:prod/db#password}``); variables of one secret are written together,
fields of a JSON secret or a Vault KV map in one version, the secret's other
fields kept.

Every write is recorded in a journal beside the manifest
(``.secretrun-journal.json``, mode 0600): time, variables, provider,
reference, previous version, new version, never a value. ``rollback`` reads
each recorded previous version back from the store and writes it again as a
new version (every store keeps old versions; none is changed in place).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import string
import time
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Tuple

from .errors import Kind, NotFound, Problem, ProblemReport, ProviderError
from .manifest import EnvVar, Manifest
from .providers.base import Provider, Secret, SecretId, as_mapping, render
from .template import single_ref

JOURNAL = ".secretrun-journal.json"
DEFAULT_LENGTH = 32

ALPHABETS = {
    "alnum": string.ascii_letters + string.digits,
    "hex": "0123456789abcdef",
    "base64url": string.ascii_letters + string.digits + "-_",
    # Printable ASCII without space and quotes, so a value survives shells,
    # dotenv files and connection strings unquoted.
    "ascii-printable": "".join(c for c in string.printable[:94] if c not in "\"'`\\"),
}


# --- generate ----------------------------------------------------------------------


def generate(length: int = DEFAULT_LENGTH, alphabet: str = ALPHABETS["alnum"]) -> str:
    """A uniformly random value from ``secrets`` (the OS's CSPRNG)."""
    if length < 1:
        raise ValueError("length must be at least 1")
    if len(set(alphabet)) < 2:
        raise ValueError("an alphabet needs at least two different characters")
    chars = "".join(dict.fromkeys(alphabet))
    return "".join(secrets.choice(chars) for _ in range(length))


def alphabet_named(name: str) -> str:
    if name not in ALPHABETS:
        raise ValueError(f"unknown alphabet {name!r}: one of {', '.join(ALPHABETS)}")
    return ALPHABETS[name]


# ``^[A-Za-z0-9_-]{40,}$``, ``[a-f0-9]{64}``, ``^[[:alnum:]]+$`` is not Python:
# only a single character class with a repeat is understood.
_SIMPLE = re.compile(r"\^?\[((?:\\.|[^\]\\])+)\](?:\{(\d+)(?:(,)(\d*))?\}|(\+)|(\*))\$?\Z")


def class_of(pattern: str) -> Optional[Tuple[str, int, Optional[int]]]:
    """(alphabet, least length, most length) of a pattern that is one
    character class repeated, else None."""
    match = _SIMPLE.match(pattern)
    if not match:
        return None
    body, low, comma, high, plus, star = match.groups()
    if body.startswith("^"):
        return None  # a negated class: no alphabet to draw from
    chars: List[str] = []
    i = 0
    items = []
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            if body[i + 1] in "dws":
                return None
            items.append(body[i + 1])
            i += 2
        else:
            items.append(body[i])
            i += 1
    j = 0
    while j < len(items):
        if j + 2 < len(items) and items[j + 1] == "-":
            start, end = ord(items[j]), ord(items[j + 2])
            if start > end:
                return None
            chars += [chr(c) for c in range(start, end + 1)]
            j += 3
        else:
            chars.append(items[j])
            j += 1
    alphabet = "".join(dict.fromkeys(chars))
    if len(alphabet) < 2:
        return None
    if plus:
        return alphabet, 1, None
    if star:
        return alphabet, 0, None
    least = int(low)
    most = (int(high) if high else None) if comma else least
    return alphabet, least, most


def value_for(var: EnvVar, length: Optional[int], alphabet: Optional[str]) -> str:
    """A new value for ``var``: its ``pattern``'s character class and length
    when it is a simple one, else ``alphabet``; at least ``min_length`` and
    ``DEFAULT_LENGTH`` characters unless ``length`` says otherwise."""
    chars = alphabet or ALPHABETS["alnum"]
    least, most = 1, None
    if var.pattern is not None:
        simple = class_of(var.pattern.pattern)
        if simple is not None:
            chars = alphabet or simple[0]
            least, most = max(1, simple[1]), simple[2]
    want = length if length is not None else max(DEFAULT_LENGTH, least, var.min_length or 0)
    if length is None and most is not None:
        want = min(want, most)
    value = generate(want, chars)
    if var.pattern is not None and not var.pattern.fullmatch(value):
        raise ProblemReport([Problem(Kind.INVALID, "cannot generate a value that matches its 'pattern'; "
                                     "give --alphabet and --length", variable=var.name)], title="rotate refused")
    if var.min_length and len(value) < var.min_length:
        raise ProblemReport([Problem(Kind.INVALID, f"--length {len(value)} is shorter than its min_length "
                                     f"{var.min_length}", variable=var.name)], title="rotate refused")
    return value


# --- targets -----------------------------------------------------------------------


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
    from .errors import ProviderConfigError
    from .providers import load
    from .providers.capabilities import offers

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
        raise ProviderError(f"provider '{provider.name}' failed unexpectedly ({type(exc).__name__})") from None


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


# --- the journal -------------------------------------------------------------------


def journal_path(manifest: Manifest) -> str:
    return os.path.join(manifest.base_dir, JOURNAL)


def read_journal(path: str) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            from .perms import writable_by_others

            unsafe = writable_by_others(os.fstat(handle.fileno()))
            if unsafe:
                raise ProblemReport([Problem(Kind.MANIFEST, f"the journal {unsafe}: its entries decide what "
                                             "rollback writes", location=path)], title="journal untrusted")
            data = json.load(handle)
    except FileNotFoundError:
        return {"version": 1, "records": []}
    except (OSError, ValueError) as exc:
        raise ProblemReport([Problem(Kind.MANIFEST, f"the journal cannot be read ({type(exc).__name__})",
                                     location=path)], title="journal unreadable") from None
    if not isinstance(data, dict) or not isinstance(data.get("records"), list):
        raise ProblemReport([Problem(Kind.MANIFEST, "the journal is not a secretrun journal", location=path)],
                            title="journal unreadable")
    return data


def write_journal(path: str, data: Mapping[str, Any]) -> None:
    """Atomically, mode 0600: it names every secret and version
    (``safefile.write_file``: no planted link is followed)."""
    from .safefile import write_file

    write_file(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"), 0o600)


def record(path: str, command: str, entries: List[Dict[str, Any]]) -> None:
    if not entries:
        return
    data = read_journal(path)
    data["records"].append({"time": _now(), "command": command, "entries": entries})
    write_journal(path, data)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --- the operations ----------------------------------------------------------------


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


def push(session, values: Mapping[str, str], dry_run: bool = False, overwrite: bool = False) -> List[Row]:
    """Write each writable secret whose variables have a value in ``values``.

    Nothing is written when anything is wrong: every target is read and
    planned first, and a different value already in a store is refused
    (naming every such variable) unless ``overwrite``."""
    manifest: Manifest = session.manifest
    wanted, problems = targets(manifest)
    absent = [Row(n, _ref_text(t, n), "skipped (no value in the source)") for t in wanted for n in t.variables
              if n not in values]
    wanted = [t for t in wanted if any(v in values for v in t.variables)]
    providers, setup = _providers(session, wanted)
    _raise(setup, "push failed")
    session.log.redact.add([v for v in values.values() if v])
    plans = []
    rows: List[Row] = []
    for target in wanted:
        provider = providers[target.provider]
        try:
            provider.check(target.sid)
            now = current(provider, target.sid)
            value, actions = desired(target, now, values, provider)
        except ProviderError as exc:
            problems.append(_problem(exc, target))
            continue
        plans.append((target, provider, now, value, actions))
        for name, _ in target.uses:
            if name in actions:
                rows.append(Row(name, _ref_text(target, name), actions[name]))
    _raise(problems, "push failed")
    if dry_run:
        return rows + absent
    refused = [Problem(Kind.MISSING, "the store holds a different value; --overwrite replaces it",
                       variable=name, provider=t.provider, reference=_ref_text(t, name))
               for t, _, _, _, actions in plans for name, act in actions.items() if act == "replace"]
    if refused and not overwrite:
        raise ProblemReport(refused, title="push refused, nothing written")
    rows, entries = [], []
    path = journal_path(manifest)
    try:
        for target, provider, now, value, actions in plans:
            if all(a == "unchanged" for a in actions.values()):
                rows += [Row(n, _ref_text(target, n), "unchanged", now.version if now else None) for n in actions]
                continue
            try:
                version = _call(provider, lambda: provider.write(target.sid, value))
            except ProviderError as exc:
                problems.append(_problem(exc, target))
                break  # stop at the first failed write; what was written is journalled below
            entries.append(_entry(target, now, version))
            rows += [Row(n, _ref_text(target, n), actions[n], version) for n in actions]
    finally:
        record(path, "push", entries)
    _raise(problems, "push failed part way (the journal lists what was written)")
    return rows + absent


def _entry(target: Target, now: Optional[Secret], version: Optional[str]) -> Dict[str, Any]:
    return {"time": _now(), "variables": list(target.variables), "provider": target.provider,
            "reference": str(target.sid), "previous": now.version if now else None,
            "existed": now is not None, "new": version}


def _ref_text(target: Target, name: str) -> str:
    field = dict(target.uses).get(name)
    return str(target.sid)[:-1] + (f"#{field}}}" if field else "}")


def rollback(session) -> List[Row]:
    """Undo the latest journal record not yet undone: each secret's recorded
    previous version is read and written again as the newest version. A
    secret the record created is left as it is (there is no earlier value)."""
    manifest: Manifest = session.manifest
    path = journal_path(manifest)
    data = read_journal(path)
    pending = [r for r in data["records"] if not r.get("rolled_back") and r.get("command") in ("push", "rotate")]
    if not pending:
        raise ProblemReport([Problem(Kind.MISSING, "the journal has nothing to roll back", location=path)],
                            title="rollback failed")
    rec = pending[-1]
    rows: List[Row] = []
    problems: List[Problem] = []
    undone: List[Dict[str, Any]] = []
    # Only what the manifest still references, through the provider it names:
    # a journal entry is data, not an order to write with the operator's credentials.
    referenced = {(t.provider, t.sid.path) for t in targets(session.manifest)[0]}
    for entry in rec["entries"]:
        name = entry["provider"]
        variables = entry.get("variables") or []
        sid = _parse_sid(str(entry.get("reference", "")))
        if sid.provider != name or (name, sid.path) not in referenced:
            problems.append(Problem(Kind.MANIFEST, f"the journal names {entry.get('reference')!r} through provider "
                                    f"{name!r}, which this manifest does not reference; not rolled back",
                                    location=path))
            continue
        provider = session.provider(name)
        if provider is None:
            problems += list(session.provider_problems.values())
            continue
        if not entry.get("existed") or entry.get("previous") is None:
            rows += [Row(v, entry["reference"], "kept (created by that push, or the store keeps no versions)")
                     for v in variables]
            continue
        target = Target(sid, name, tuple((v, None) for v in variables))
        try:
            old = _call(provider, lambda: provider.fetch(sid._replace(version=str(entry["previous"]))))
            version = _call(provider, lambda: provider.write(sid, old.value))
        except ProviderError as exc:
            problems.append(_problem(exc, target))
            continue
        undone.append({"time": _now(), "variables": variables, "provider": name, "reference": entry["reference"],
                       "previous": entry.get("new"), "existed": True, "new": version,
                       "restored": entry["previous"]})
        rows += [Row(v, entry["reference"], f"restored {entry['previous']}", version) for v in variables]
    if not problems:
        rec["rolled_back"] = _now()
    data["records"].append({"time": _now(), "command": "rollback", "entries": undone})
    write_journal(path, data)
    _raise(problems, "rollback failed part way (the journal lists what was restored)")
    return rows


def _parse_sid(text: str) -> SecretId:
    provider, _, path = text[2:-1].partition(":")
    return SecretId(provider, path)


def rotate(session, names: List[str], length: Optional[int] = None, alphabet: Optional[str] = None,
           older_than: Optional[float] = None) -> Tuple[List[Row], List[Problem]]:
    """Write a new generated value for each variable (with ``older_than``,
    for every writable variable whose current version is older than that many
    seconds). Returns the rows and the warnings (stores that report no age).

    The previous version stays readable in every store (KV v2 versions,
    ``AWSPREVIOUS``, GCP and Key Vault versions, SSM history), so apps that
    have not restarted yet keep working for a grace period."""
    manifest: Manifest = session.manifest
    by_age = older_than is not None and not names
    wanted, problems = targets(manifest, None if by_age else names)
    _raise(problems, "rotate refused")
    providers, setup = _providers(session, wanted)
    _raise(setup, "rotate failed")
    warnings: List[Problem] = []
    if older_than is not None:
        kept = []
        for target in wanted:
            provider = providers[target.provider]
            try:
                changed = _call(provider, lambda: provider.changed_at(target.sid))
            except NotFound:
                # No age to compare; creating secrets is for ``push`` or a
                # rotation by name, not a side effect of a scheduled job.
                warnings.append(Problem(Kind.MISSING, "does not exist; not rotated (name it to create it)",
                                        variable=", ".join(target.variables), reference=str(target.sid)))
                continue
            except ProviderError as exc:
                problems.append(_problem(exc, target))
                continue
            if changed is None:
                warnings.append(Problem(Kind.MISSING, "the store reports no age; not rotated",
                                        variable=", ".join(target.variables), reference=str(target.sid)))
            elif time.time() - changed > older_than:
                kept.append(target)
        wanted = kept
        _raise(problems, "rotate failed")
    plans = []
    for target in wanted:
        provider = providers[target.provider]
        new = {name: value_for(manifest.env[name], length, alphabet) for name, _ in target.uses}
        session.log.redact.add(new.values())
        try:
            provider.check(target.sid)
            now = current(provider, target.sid)
            value, _ = desired(target, now, new, provider)
        except ProviderError as exc:
            problems.append(_problem(exc, target))
            continue
        plans.append((target, provider, now, value))
    _raise(problems, "rotate failed, nothing written")
    rows, entries = [], []
    try:
        for target, provider, now, value in plans:
            try:
                version = _call(provider, lambda: provider.write(target.sid, value))
            except ProviderError as exc:
                problems.append(_problem(exc, target))
                break
            entries.append(_entry(target, now, version))
            rows += [Row(n, _ref_text(target, n), "rotated", version) for n, _ in target.uses]
    finally:
        record(journal_path(manifest), "rotate", entries)
    _raise(problems, "rotate failed part way (the journal lists what was written)")
    return rows, warnings


def parse_age(text: str) -> float:
    """``90d``, ``12h``, ``30m``... as seconds (``units.parse_duration``)."""
    from .units import parse_duration

    seconds = parse_duration(text.strip())
    if seconds is None:
        raise ValueError(f"{text!r} is not a duration (90d, 12h, 30m, 45s)")
    return seconds


def source_values(dotenv: Optional[str], environ: Optional[Mapping[str, str]], names) -> Dict[str, str]:
    """The values to push, by variable name, from a dotenv file or an
    environment; only the names asked for."""
    if dotenv is not None:
        from .providers.dotenv import read_dotenv

        try:
            raw = read_dotenv(dotenv, "dotenv file")
        except ProviderError as exc:
            raise ProblemReport([Problem(exc.kind, str(exc), location=dotenv)], title="push failed") from None
    else:
        raw = dict(environ or {})
    return {name: value for name in names if (value := raw.get(name)) is not None}
