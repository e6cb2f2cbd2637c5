"""The manifest's validators: raw TOML (a profile already merged) turned
into the typed records of ``manifest_records``, every problem collected by a
``_Checker`` naming the file and the key or variable. ``manifest.load`` calls
them in order; nothing is fetched here."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

from .errors import Kind, Problem, did_you_mean
from .manifest_records import ON_CHANGE, ON_MISSING, VAR_ON_CHANGE, EnvVar, Import, Manifest, ProviderConfig, Settings, is_env_name
from .template import Template, TemplateError, parse, refs, single_ref
from .units import parse_duration, parse_signal


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
    "on_change": ON_CHANGE, "reload_signal": "signal", "stop_signal": "signal",
    "fallback": "str", "status_file": "str", "file_dir": "str", "retries": "int", "audit_log": "str",
    "on_missing": ON_MISSING,
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
        elif isinstance(kind, tuple):   # one of a fixed set of words
            if value in kind:
                values[key] = value
            else:
                c.bad(f"{where} must be one of {', '.join(kind)}, not {value!r}")
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


def _check_references(m: Manifest, c: _Checker) -> None:
    declared = set(m.providers) | {"env"}

    def check(tpl: Template, variable: Optional[str], where: str = "") -> None:
        for ref in refs(tpl):
            if ref.provider not in declared and ref.provider not in c.broken_providers:
                c.bad(f"{where}reference to undeclared provider {ref.provider!r}"
                      f"{did_you_mean(ref.provider, declared)} (declared: {', '.join(sorted(declared))})",
                      variable, ref.text)

    for var in m.env.values():
        check(var.template, var.name)
    for name, tpl in m.extras.items():
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


def used_providers(m: Manifest) -> set:
    """The providers a reference names, directly or from another provider's options."""
    used = set()
    for tpl in [v.template for v in m.env.values()] + list(m.extras.values()):
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


def _check_provider_options(m: Manifest, c: _Checker, every: bool) -> None:
    # A provider no reference uses is never built, so its from_config never
    # checks its options: check them here, before anything is fetched. The
    # ones in use are checked fully when they are built, unless ``every``
    # (``check --offline``, which builds none).
    used = used_providers(m)
    names = [n for n in m.providers if every or n not in used]
    if names:
        c.problems += provider_option_problems(m, names)
