"""The manifest: read TOML, apply a profile, validate, freeze.

``load(path, profile)`` returns a ``Manifest`` or raises one ``ManifestError``
holding *every* problem found (unknown keys, wrong types, bad durations and
signal names, undeclared providers, malformed templates), each naming the file
and the key or variable. Nothing is fetched here.

Profiles are merged on the raw dicts before validation, so a profile is
checked exactly like the base: tables merge key by key, any other value
replaces; a provider whose ``type`` a profile changes is replaced whole; a
profile's ``[[import]]`` entries are added after the base's.
"""

from __future__ import annotations

import os
import signal
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from .errors import Kind, ManifestError, Problem, did_you_mean
from .perms import untrusted
from .template import Ref, Template, TemplateError, parse, refs, single_ref
from .units import parse_duration, parse_signal  # noqa: F401 - re-exported: durations and signals have one grammar

DEFAULT_PATH = "secretrun.toml"
ON_CHANGE = ("restart", "signal", "exit")
VAR_ON_CHANGE = ("restart", "signal", "ignore")
ON_MISSING = ("fail", "warn")


class Settings(NamedTuple):
    """``[settings]``; durations in seconds, signals as numbers."""

    inherit_env: bool = True       # false: the child gets only the manifest's variables, plus PATH
    watch: bool = False
    poll_interval: float = 30.0
    on_change: str = "restart"     # restart | signal | exit
    reload_signal: int = signal.SIGHUP
    stop_signal: int = signal.SIGTERM
    kill_timeout: float = 10.0
    splay: float = 0.0
    strict: bool = False           # no fallback, no defaults, dangerous values refused
    fallback: Optional[str] = None     # a dotenv file, resolved against the manifest's directory
    file_vars: bool = False        # NAME_FILE=/path in the environment gives the child NAME
    mask_output: bool = False
    timeout: float = 10.0          # each store request
    retries: int = 3               # extra attempts after a transient store error
    max_stale: Optional[float] = None  # watching: stop the child after stores are down this long
    revoke_on_exit: bool = False
    status_file: Optional[str] = None
    file_dir: Optional[str] = None     # where ``file = true`` values are written
    debounce: Optional[float] = None   # watching: settle time before acting on a change
    audit_log: Optional[str] = None    # a path, or "stderr": one JSON line per access and change
    on_missing: str = "fail"       # warn: a secret that does not exist leaves its variable unset
    user: Optional[str] = None         # run the command as this user (name, uid, NAME:GROUP, UID:GID)
    listen: Tuple[str, ...] = ()       # sockets secretrun binds for the command (sockets.py)
    ready: Optional[str] = None        # readiness of a new command in an overlapping restart (readiness.py)
    ready_timeout: float = 30.0


class ProviderConfig(NamedTuple):
    name: str
    type: str
    options: Mapping[str, Any]     # raw; strings may be templates, rendered before the provider is built
    templates: Tuple[Tuple[Tuple[str, ...], Template], ...] = ()   # option key path -> parsed template


class EnvVar(NamedTuple):
    name: str
    template: Template
    required: bool = True
    default: Optional[str] = None
    min_length: Optional[int] = None
    pattern: Optional[Any] = None  # pattern.compile_pattern: RE2, linear time
    forbid: Tuple[str, ...] = ()
    file: bool = False
    on_change: Optional[str] = None
    unique: bool = False           # the value must differ from every other unique variable's
    description: Optional[str] = None   # for people, and for `secretrun example`


class Import(NamedTuple):
    ref: Ref
    prefix: str = ""
    required: bool = True
    normalize: bool = False        # upper-case names, other characters to ``_``
    on_change: Optional[str] = None
    allow: Tuple[str, ...] = ()    # loader/interpreter variables this import may set (loadervars.py)

    @property
    def label(self) -> str:
        return f"[[import]] {self.ref.text}"


class Manifest(NamedTuple):
    path: str
    settings: Settings
    providers: Mapping[str, ProviderConfig]
    env: Mapping[str, EnvVar]
    imports: Tuple[Import, ...]
    profile: Optional[str] = None

    @property
    def base_dir(self) -> str:
        return os.path.dirname(os.path.abspath(self.path))


def is_env_name(name: str) -> bool:
    """Letters, digits and ``_``, not starting with a digit (ASCII only)."""
    return bool(name) and name.isascii() and not name[0].isdigit() and name.replace("_", "a").isalnum()


# --- reading -----------------------------------------------------------------


STDIN = "<stdin>"   # where a manifest given as ``-m -`` is said to be


def read_toml_stdin() -> Dict[str, Any]:
    """``-m -``: the manifest from standard input, read to its end (the
    command then inherits a standard input at end of file). A pipe or a
    terminal has no mode others could abuse; relative paths in it are
    relative to the working directory."""
    try:
        with open(0, "rb", closefd=False) as handle:
            data = handle.read()
    except OSError as exc:
        raise ManifestError([Problem(Kind.MANIFEST, f"cannot be read: {exc.strerror}", location=STDIN)]) from None
    return parse_toml(data, STDIN)


def with_env_files(raw: Dict[str, Any], env_files: Sequence[str]) -> Dict[str, Any]:
    """``--env-file PATH``: a ``dotenv`` provider per file and an import of
    the whole file (``${NAME:*}``), as a manifest would write them. Paths are
    relative to the working directory, as on any command line."""
    raw = dict(raw)
    providers = dict(raw.get("providers") or {}) if isinstance(raw.get("providers"), Mapping) else {}
    imports = raw.get("import") or []
    if not isinstance(imports, list):
        return raw  # reported as it is by the checker; nothing sensible to add to
    imports = list(imports)
    for i, path in enumerate(env_files, 1):
        name = "env-file" if i == 1 else f"env-file-{i}"
        while name in providers:
            name += "_"
        providers[name] = {"type": "dotenv", "path": os.path.abspath(path)}
        imports.append({"from": f"${{{name}:*}}"})
    raw["providers"], raw["import"] = providers, imports
    return raw


def read_toml(path: str) -> Dict[str, Any]:
    if os.path.isdir(path):
        raise ManifestError([Problem(Kind.MANIFEST, "is a directory, not a manifest file", location=path)])
    try:
        with open(path, "rb") as handle:
            unsafe = untrusted(path, os.fstat(handle.fileno()))
            data = handle.read()
    except FileNotFoundError:
        raise ManifestError([Problem(
            Kind.MANIFEST, "manifest not found (give one with -m or SECRETRUN_MANIFEST, "
            "or write one with 'secretrun init')", location=path)]) from None
    except OSError as exc:
        raise ManifestError([Problem(Kind.MANIFEST, f"cannot be read: {exc.strerror}", location=path)]) from None
    if unsafe:
        raise ManifestError([Problem(Kind.MANIFEST, f"{unsafe}: others could change which secrets go where "
                                     "(secretrun trusts a file as ssh does)", location=path)])
    return parse_toml(data, path)


def parse_toml(data: bytes, path: str) -> Dict[str, Any]:
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        text = data.decode("utf-8")
        return tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise ManifestError([Problem(Kind.MANIFEST, f"is not valid UTF-8 (byte {exc.start})", location=path)]) from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message names the line and column, never a value.
        raise ManifestError([Problem(Kind.MANIFEST, f"TOML syntax error: {exc}", location=path)]) from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively.
        raise ManifestError([Problem(Kind.MANIFEST, "arrays or tables are nested too deeply", location=path)]) from None


def merge(base: Dict[str, Any], over: Mapping[str, Any]) -> Dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def apply_profile(raw: Dict[str, Any], name: str, problems: List[Problem], path: str) -> Dict[str, Any]:
    profiles = raw.get("profiles") or {}
    if not isinstance(profiles, Mapping) or name not in profiles:
        known = ", ".join(sorted(profiles)) if isinstance(profiles, Mapping) and profiles else "none defined"
        problems.append(Problem(Kind.MANIFEST, f"profile {name!r} does not exist (profiles: {known})", location=path))
        return raw
    over = profiles[name]
    if not isinstance(over, Mapping):
        problems.append(Problem(Kind.MANIFEST, f"profiles.{name} must be a table", location=path))
        return raw
    out = dict(raw)
    for key, value in over.items():
        if key not in ("settings", "providers", "env", "import"):
            problems.append(Problem(Kind.MANIFEST, f"profiles.{name}.{key}: a profile may set only "
                                    "settings, providers, env and import", location=path))
        elif key == "import":
            out["import"] = list(raw.get("import") or []) + (list(value) if isinstance(value, list) else [value])
        elif key == "providers" and isinstance(value, Mapping) and isinstance(raw.get("providers"), Mapping):
            merged = dict(raw["providers"])
            for pname, pval in value.items():
                base = merged.get(pname)
                replace = (not isinstance(base, Mapping) or not isinstance(pval, Mapping)
                           or ("type" in pval and pval["type"] != base.get("type")))
                merged[pname] = pval if replace else merge(base, pval)
            out["providers"] = merged
        elif key == "env" and isinstance(value, Mapping) and isinstance(raw.get("env"), Mapping):
            merged = dict(raw["env"])
            for vname, vval in value.items():
                base = merged.get(vname)
                if isinstance(vval, Mapping) and base is not None:
                    base = base if isinstance(base, Mapping) else {"value": base}
                    merged[vname] = merge(dict(base), vval)
                else:
                    merged[vname] = vval
            out["env"] = merged
        elif isinstance(value, Mapping) and isinstance(raw.get(key), Mapping):
            out[key] = merge(raw[key], value)
        else:
            out[key] = value
    return out


# --- validation ----------------------------------------------------------------


class _Checker:
    """Collects problems while turning raw TOML into typed records."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: List[Problem] = []
        # Providers declared with a bad entry: already reported, so a
        # reference to one is not a second, false "undeclared provider".
        self.broken_providers: set = set()

    def bad(self, message: str, variable: Optional[str] = None, reference: Optional[str] = None) -> None:
        self.problems.append(Problem(Kind.MANIFEST, message, variable=variable, reference=reference,
                                     location=self.path))

    def template(self, text: str, where: str, variable: Optional[str] = None) -> Optional[Template]:
        result = parse(text)
        if isinstance(result, TemplateError):
            self.bad(f"{where}: malformed template at {result}", variable)
            return None
        return result


_SETTING_KINDS = {
    "inherit_env": "bool", "watch": "bool", "strict": "bool", "file_vars": "bool",
    "mask_output": "bool", "revoke_on_exit": "bool",
    "poll_interval": "duration", "kill_timeout": "duration", "splay": "duration",
    "timeout": "duration", "max_stale": "duration", "debounce": "duration",
    "on_change": "on_change", "reload_signal": "signal", "stop_signal": "signal",
    "fallback": "str", "status_file": "str", "file_dir": "str", "retries": "int", "audit_log": "str",
    "on_missing": "on_missing",
    "user": "str",
    "listen": "listen", "ready": "ready", "ready_timeout": "duration",
}


def _settings(raw: Any, c: _Checker) -> Settings:
    if raw is None:
        return Settings()
    if not isinstance(raw, Mapping):
        c.bad("settings must be a table")
        return Settings()
    values: Dict[str, Any] = {}
    for key, value in raw.items():
        kind = _SETTING_KINDS.get(key)
        where = f"settings.{key}"
        if kind is None:
            c.bad(f"unknown key {where!r}{did_you_mean(key, _SETTING_KINDS) or '.'} "
                  f"Valid keys: {', '.join(sorted(_SETTING_KINDS))}")
        elif kind == "bool":
            if isinstance(value, bool):
                values[key] = value
            else:
                c.bad(f"{where} must be true or false")
        elif kind == "duration":
            seconds = parse_duration(value)
            if seconds is None:
                c.bad(f"{where}: {value!r} is not a duration (like \"250ms\", \"30s\", \"5m\", \"1h\", \"1d\")")
            else:
                values[key] = seconds
        elif kind == "signal":
            sig = parse_signal(value)
            if sig is None:
                c.bad(f"{where}: {value!r} is not a signal name (like \"SIGHUP\")")
            else:
                values[key] = sig
        elif kind == "on_change":
            if value in ON_CHANGE:
                values[key] = value
            else:
                c.bad(f"{where} must be one of {', '.join(ON_CHANGE)}, not {value!r}")
        elif kind == "on_missing":
            if value in ON_MISSING:
                values[key] = value
            else:
                c.bad(f"{where} must be one of {', '.join(ON_MISSING)}, not {value!r}")
        elif kind == "int":
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 100:
                values[key] = value
            else:
                c.bad(f"{where} must be a whole number from 0 to 100")
        elif kind in ("listen", "ready"):
            checked = _listen_setting(kind, value, c)
            if checked is not None:
                values[key] = checked
        elif kind == "str":
            if isinstance(value, str) and value:
                values[key] = value
            else:
                c.bad(f"{where} must be a non-empty string")
    if values.get("poll_interval", 1.0) <= 0:
        c.bad("settings.poll_interval must be more than 0")
    return Settings(**values)


def _listen_setting(kind: str, value: Any, c: _Checker) -> Any:
    """``settings.listen`` (a list of addresses) or ``settings.ready``,
    checked by the modules that use them (imported only when present)."""
    if kind == "ready":
        from .readiness import parse as parse_ready

        try:
            parse_ready(value)
        except ValueError as exc:
            c.bad(f"settings.ready: {exc}")
            return None
        return value
    from .sockets import parse as parse_address

    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        c.bad("settings.listen must be a list of addresses like [\"tcp://0.0.0.0:8080\"]")
        return None
    ok = True
    for item in value:
        try:
            parse_address(item)
        except ValueError as exc:
            c.bad(f"settings.listen: {exc}")
            ok = False
    return tuple(value) if ok else None


def _option_templates(options: Mapping[str, Any], prefix: Tuple[str, ...], c: _Checker, pname: str):
    for key, value in options.items():
        path = prefix + (key,)
        if isinstance(value, str) and "$" in value:
            tpl = c.template(value, f"providers.{pname}.{'.'.join(path)}")
            if tpl is not None and refs(tpl):
                yield path, tpl
        elif isinstance(value, Mapping):
            yield from _option_templates(value, path, c, pname)


def _providers(raw: Any, c: _Checker) -> Dict[str, ProviderConfig]:
    from . import providers as registry

    out: Dict[str, ProviderConfig] = {}
    if raw is None:
        return out
    if not isinstance(raw, Mapping):
        c.bad("providers must be a table of [providers.NAME] entries")
        return out
    for name, entry in raw.items():
        if not isinstance(entry, Mapping):
            c.bad(f"providers.{name} must be a table with a 'type'")
            c.broken_providers.add(name)
            continue
        if not all(ch.isalnum() and ch.isascii() or ch in "_-" for ch in name):
            c.bad(f"provider name {name!r} may only hold letters, digits, '_' and '-'")
            continue
        ptype = entry.get("type")
        if not isinstance(ptype, str):
            c.bad(f"providers.{name} has no 'type' (one of {', '.join(registry.known_types())})")
            c.broken_providers.add(name)
            continue
        if not registry.is_known(ptype):
            c.bad(f"providers.{name}: unknown provider type {ptype!r}"
                  f"{did_you_mean(ptype, registry.known_types(True)) or '.'} "
                  f"Valid types: {', '.join(registry.known_types(True))}")
            c.broken_providers.add(name)
            continue
        templates = tuple(_option_templates(entry, (), c, name))
        out[name] = ProviderConfig(name, ptype, dict(entry), templates)
    return out


_VAR_KEYS = ("value", "required", "default", "min_length", "pattern", "forbid", "file", "on_change",
             "description", "unique")


def _env_var(name: str, raw: Any, c: _Checker) -> Optional[EnvVar]:
    if not is_env_name(name):
        c.bad(f"{name!r} is not a valid environment variable name "
              "(letters, digits and '_', not starting with a digit)", name)
        return None
    if isinstance(raw, str):
        tpl = c.template(raw, "value", name)
        return EnvVar(name, tpl) if tpl is not None else None
    if not isinstance(raw, Mapping):
        c.bad("must be a string or a table with 'value'", name)
        return None
    ok = True
    for key in raw:
        if key not in _VAR_KEYS:
            c.bad(f"unknown key {key!r}{did_you_mean(key, _VAR_KEYS) or '.'} Valid keys: {', '.join(_VAR_KEYS)}", name)
            ok = False
    value = raw.get("value")
    if not isinstance(value, str):
        c.bad("needs 'value', a string", name)
        return None
    tpl = c.template(value, "value", name)
    fields: Dict[str, Any] = {}
    for key, typ, label in (("required", bool, "true or false"), ("file", bool, "true or false"),
                            ("unique", bool, "true or false"),
                            ("default", str, "a string"), ("min_length", int, "a whole number"),
                            ("description", str, "a string")):
        if key in raw:
            if isinstance(raw[key], typ) and (typ is not int or not isinstance(raw[key], bool)):
                fields[key] = raw[key]
            else:
                c.bad(f"'{key}' must be {label}", name)
                ok = False
    if "pattern" in raw:
        from .pattern import PatternError, compile_pattern

        try:
            fields["pattern"] = compile_pattern(raw["pattern"])
        except PatternError as exc:
            c.bad(f"'pattern' is not a valid regular expression: {exc}", name)
            ok = False
    if "forbid" in raw:
        forbid = raw["forbid"]
        if isinstance(forbid, list) and all(isinstance(x, str) for x in forbid):
            fields["forbid"] = tuple(forbid)
        else:
            c.bad("'forbid' must be a list of strings", name)
            ok = False
    if "on_change" in raw:
        if raw["on_change"] in VAR_ON_CHANGE:
            fields["on_change"] = raw["on_change"]
        else:
            c.bad(f"'on_change' must be one of {', '.join(VAR_ON_CHANGE)}", name)
            ok = False
    if tpl is None or not ok:
        return None
    return EnvVar(name, tpl, **fields)


def _imports(raw: Any, c: _Checker) -> List[Import]:
    out: List[Import] = []
    if raw is None:
        return out
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list):
        c.bad("import must be an array of tables ([[import]])")
        return out
    keys = ("from", "prefix", "required", "normalize", "on_change", "allow")
    for i, entry in enumerate(raw, 1):
        where = f"[[import]] #{i}"
        if not isinstance(entry, Mapping):
            c.bad(f"{where} must be a table")
            continue
        unknown = [k for k in entry if k not in keys]
        for k in unknown:
            c.bad(f"{where}: unknown key {k!r}{did_you_mean(k, keys) or '.'} Valid keys: {', '.join(keys)}")
        source = entry.get("from")
        if not isinstance(source, str):
            c.bad(f"{where} needs 'from', a reference like \"${{vault:secret/app}}\"")
            continue
        tpl = c.template(source, f"{where} from")
        if tpl is None:
            continue
        ref = single_ref(tpl)
        if ref is None:
            c.bad(f"{where}: 'from' must be exactly one reference, not {source!r}")
            continue
        prefix = entry.get("prefix", "")
        if not isinstance(prefix, str) or (prefix and not is_env_name(prefix)):
            c.bad(f"{where}: 'prefix' must be the start of a variable name, like \"APP_\"")
            continue
        flags = {}
        for key in ("required", "normalize"):
            if key in entry:
                if isinstance(entry[key], bool):
                    flags[key] = entry[key]
                else:
                    c.bad(f"{where}: '{key}' must be true or false")
        if "on_change" in entry:
            if entry["on_change"] in VAR_ON_CHANGE:
                flags["on_change"] = entry["on_change"]
            else:
                c.bad(f"{where}: 'on_change' must be one of {', '.join(VAR_ON_CHANGE)}")
        if "allow" in entry:
            allow = entry["allow"]
            if isinstance(allow, list) and all(isinstance(a, str) and is_env_name(a) for a in allow):
                flags["allow"] = tuple(allow)
            else:
                c.bad(f"{where}: 'allow' must be a list of variable names, like [\"PATH\"]")
        if not unknown:
            out.append(Import(ref, prefix, **flags))
    return out


def _check_references(m: Manifest, extra: Mapping[str, Template], c: _Checker) -> None:
    declared = set(m.providers) | {"env"}

    def check(tpl: Template, variable: Optional[str], where: str = "") -> None:
        for ref in refs(tpl):
            if ref.provider not in declared and ref.provider not in c.broken_providers:
                c.bad(f"{where}reference to undeclared provider {ref.provider!r}"
                      f"{did_you_mean(ref.provider, declared)} (declared: {', '.join(sorted(declared))})",
                      variable, ref.text)

    for var in m.env.values():
        check(var.template, var.name)
    for name, tpl in extra.items():
        check(tpl, name, "-e: ")
    for imp in m.imports:
        check((imp.ref,), None, "[[import]]: ")
    for p in m.providers.values():
        for _, tpl in p.templates:
            check(tpl, None, f"providers.{p.name}: ")
    # Provider options may read other providers (a Vault secret id from a
    # file); a cycle would never resolve.
    graph = {p.name: {r.provider for _, t in p.templates for r in refs(t)} - {"env"} for p in m.providers.values()}
    state: Dict[str, int] = {}

    def visit(node: str, trail: Tuple[str, ...]) -> None:
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            c.bad("provider options refer to each other in a cycle: " + " -> ".join(trail + (node,)))
            return
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if dep in graph:
                visit(dep, trail + (node,))
        state[node] = 2

    for node in sorted(graph):
        visit(node, ())


def used_providers(m: Manifest, extras: Mapping[str, Template]) -> set:
    """The providers a reference names, directly or from another provider's options."""
    used = set()
    for tpl in [v.template for v in m.env.values()] + list(extras.values()):
        used |= {r.provider for r in refs(tpl)}
    used |= {imp.ref.provider for imp in m.imports}
    for p in m.providers.values():
        used |= {r.provider for _, t in p.templates for r in refs(t)}
    return used


def provider_option_problems(m: Manifest, names) -> List[Problem]:
    """Problems with the options of the named built-in providers, from the
    SDK-free option table (``providers.options``)."""
    from .providers.options import check_options

    out = []
    for name in names:
        p = m.providers[name]
        errors = check_options(p.type, p.options)
        if errors:
            out.append(Problem(Kind.MANIFEST, f"provider '{name}' (type {p.type}): " + "; ".join(errors),
                               provider=name, location=m.path))
    return out


def _check_provider_options(m: Manifest, extras: Mapping[str, Template], c: _Checker, every: bool) -> None:
    # A provider no reference uses is never built, so its from_config never
    # checks its options: check them here, before anything is fetched. The
    # ones in use are checked fully when they are built, unless ``every``
    # (``check --offline``, which builds none).
    used = used_providers(m, extras)
    names = [n for n in m.providers if every or n not in used]
    if names:
        c.problems += provider_option_problems(m, names)


def profile_names(path: Optional[str] = None) -> List[str]:
    """The profiles a manifest defines, in file order (for ``--all-profiles``)."""
    profiles = read_toml(path or DEFAULT_PATH).get("profiles")
    return list(profiles) if isinstance(profiles, Mapping) else []


def load(path: Optional[str] = None, profile: Optional[str] = None,
         extra_env: Tuple[Tuple[str, str], ...] = (), env_files: Sequence[str] = (),
         offline: bool = False) -> Tuple[Manifest, Dict[str, Template]]:
    """Load and validate a manifest and the ``-e NAME=VALUE`` extras.
    ``offline``: also check the options of the providers in use from the
    SDK-free table, since none will be built.

    ``path`` ``-`` reads the manifest from standard input. ``env_files``
    (``--env-file``) are dotenv files imported whole after the manifest's
    own imports; with them, a missing default manifest is an empty one.
    Returns the manifest and the parsed extras; raises ``ManifestError`` with
    every problem found.
    """
    path = path or DEFAULT_PATH
    if path == "-":
        raw, path = read_toml_stdin(), STDIN
    elif env_files and path == DEFAULT_PATH and not os.path.lexists(path):
        raw = {"version": 1}
    else:
        raw = read_toml(path)
    c = _Checker(path)
    if not raw:
        c.bad("the manifest is empty: it needs at least 'version = 1'")
        raise ManifestError(c.problems)
    if profile:
        raw = apply_profile(raw, profile, c.problems, path)
    if env_files:
        raw = with_env_files(raw, env_files)
    known = ("version", "settings", "providers", "env", "import", "profiles")
    for key in raw:
        if key not in known:
            c.bad(f"unknown top-level key {key!r}{did_you_mean(key, known) or '.'} Valid keys: {', '.join(known)}")
    version = raw.get("version")
    if version != 1:
        c.bad("'version = 1' is required" if version is None else f"unsupported version {version!r}: this secretrun reads version 1")
    settings = _settings(raw.get("settings"), c)
    providers = _providers(raw.get("providers"), c)
    env_raw = raw.get("env") or {}
    env: Dict[str, EnvVar] = {}
    if not isinstance(env_raw, Mapping):
        c.bad("env must be a table of NAME = value entries")
    else:
        for name, value in env_raw.items():
            var = _env_var(name, value, c)
            if var is not None:
                env[name] = var
    imports = _imports(raw.get("import"), c)
    extras: Dict[str, Template] = {}
    for name, value in extra_env:
        if not is_env_name(name):
            c.bad(f"-e: {name!r} is not a valid environment variable name", name)
            continue
        tpl = c.template(value, "-e value", name)
        if tpl is not None:
            extras[name] = tpl
    # strict with a fallback is the natural layout (a base with fallback = ".env", a
    # production profile with strict = true, and TOML cannot unset a key): strict
    # turns the fallback off instead (childenv), but it cannot be told to warn and go on.
    if settings.strict and settings.on_missing == "warn":
        c.bad("settings.on_missing = \"warn\" cannot be used with settings.strict = true: "
              "strict means a missing secret stops the command")
    manifest = Manifest(path, settings, providers, env, tuple(imports), profile)
    _check_references(manifest, extras, c)
    _check_provider_options(manifest, extras, c, every=offline)
    if c.problems:
        raise ManifestError(c.problems)
    return manifest, extras
