"""``secretrun check --offline``: everything about a manifest that can be
checked without a store, for CI and editors.

Nothing is fetched and no store SDK is imported: the manifest is loaded and
validated as ``run`` loads it (every key, template, reference and provider
name), and every declared provider's options are checked against the
SDK-free option table (``providers.options``). With ``all_profiles`` the base
manifest and each profile, merged as ``-p`` merges it, are checked alike.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence, Tuple

from .errors import ManifestError, Problem


class Lint(NamedTuple):
    """The outcome for one profile (``None``: the base manifest)."""

    profile: Optional[str]
    problems: Tuple[Problem, ...]
    variables: int = 0
    providers: int = 0
    not_checked: Tuple[str, ...] = ()    # what could not be checked here, beyond OFFLINE_LIMITS


def lint(path: Optional[str], profile: Optional[str] = None,
         extra_env: Tuple[Tuple[str, str], ...] = ()) -> Lint:
    from .manifest import load
    from .providers import BUILTIN

    try:
        manifest = load(path, profile, extra_env, offline=True)
    except ManifestError as exc:
        return Lint(profile, tuple(exc.problems))
    not_checked = tuple(f"options of provider '{p.name}' (type {p.type}, a plugin): checked when it is built"
                        for p in manifest.providers.values() if p.type not in BUILTIN)
    variables = len(manifest.env) + len(manifest.extras)
    return Lint(profile, (), variables, len(manifest.providers), not_checked)


def lint_all(path: Optional[str], extra_env: Tuple[Tuple[str, str], ...] = ()) -> List[Lint]:
    """The base manifest, then each profile in file order."""
    from .manifest import profile_names

    try:
        names: Sequence[str] = profile_names(path)
    except ManifestError as exc:
        return [Lint(None, tuple(exc.problems))]
    return [lint(path, None, extra_env)] + [lint(path, name, extra_env) for name in names]
