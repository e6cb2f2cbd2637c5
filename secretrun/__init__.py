"""secretrun: run a command with secrets from your stores in its environment.

As a library::

    import secretrun
    env = secretrun.resolve("secretrun.toml", profile="production")
    # {"DATABASE_URL": "...", ...}: the variables the manifest sets

Errors are ``SecretrunError`` subclasses; ``error.code`` is the exit code the
CLI would use, and ``error.problems`` lists every problem found.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional

from .errors import CommandError, ManifestError, Problem, ProblemReport, ResolutionError, SecretrunError, UsageError

__version__ = "0.1.0"
__all__ = ["CommandError", "ManifestError", "Problem", "ProblemReport", "ResolutionError", "SecretrunError",
           "UsageError", "__version__", "resolve"]


def resolve(manifest: str = "secretrun.toml", profile: Optional[str] = None,
            environ: Optional[Mapping[str, str]] = None, include_inherited: bool = False) -> Dict[str, str]:
    """Resolve a manifest to the variables it sets (all of the child's
    environment with ``include_inherited``). ``environ`` stands in for the
    process environment (``${env:...}``, provider defaults such as VAULT_ADDR).
    ``file = true`` variables are written to a private directory that lives
    until the process exits (in-memory files on Linux); their values are the
    paths."""
    import os

    from .manifest import load
    from .resolver import Session

    loaded = load(manifest, profile)
    session = Session(loaded, os.environ if environ is None else environ)
    try:
        rendered = session.resolve()
    finally:
        # The stores are released; delivered files stay until the process exits.
        session.close_providers()
    if include_inherited:
        return dict(rendered.env)
    return {name: rendered.env[name] for name in rendered.managed if name in rendered.env}
