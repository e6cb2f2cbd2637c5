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
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .errors import Kind, ManifestError, Problem, did_you_mean
from .manifest_check import (
    _check_provider_options,
    _check_references,
    _Checker,
    _env_var,
    _imports,
    _providers,
    _settings,
)
from .manifest_records import (  # noqa: F401 - re-exported: the records are this module's public API
    ON_CHANGE,
    ON_MISSING,
    VAR_ON_CHANGE,
    EnvVar,
    Import,
    Manifest,
    ProviderConfig,
    Settings,
    is_env_name,
)
from .perms import untrusted
from .template import Template
from .units import parse_duration, parse_signal  # noqa: F401 - re-exported: durations and signals have one grammar

DEFAULT_PATH = "secretrun.toml"


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
                if (isinstance(base, Mapping) and isinstance(pval, Mapping)
                        and ("type" not in pval or pval["type"] == base.get("type"))):
                    merged[pname] = merge(dict(base), pval)
                else:
                    merged[pname] = pval
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


def profile_names(path: Optional[str] = None) -> List[str]:
    """The profiles a manifest defines, in file order (for ``--all-profiles``)."""
    profiles = read_toml(path or DEFAULT_PATH).get("profiles")
    return list(profiles) if isinstance(profiles, Mapping) else []


def load(path: Optional[str] = None, profile: Optional[str] = None,
         extra_env: Tuple[Tuple[str, str], ...] = (), env_files: Sequence[str] = (),
         offline: bool = False) -> Manifest:
    """Load and validate a manifest with its ``-e NAME=VALUE`` extras.
    ``offline``: also check the options of the providers in use from the
    SDK-free table, since none will be built.

    ``path`` ``-`` reads the manifest from standard input. ``env_files``
    (``--env-file``) are dotenv files imported whole after the manifest's
    own imports; with them, a missing default manifest is an empty one.
    Returns the manifest, the parsed extras in ``Manifest.extras``; raises
    ``ManifestError`` with every problem found.
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
    manifest = Manifest(path, settings, providers, env, tuple(imports), profile, extras)
    _check_references(manifest, c)
    _check_provider_options(manifest, c, every=offline)
    if c.problems:
        raise ManifestError(c.problems)
    return manifest
