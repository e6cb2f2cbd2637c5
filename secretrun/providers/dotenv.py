"""``dotenv``: one ``.env`` file, parsed by python-dotenv (quotes, multi-line
values, ``export`` prefixes). ``${local:NAME}`` reads NAME; ``[[import]]``
with path ``*`` takes every variable of the file.

Interpolation (``${OTHER}`` inside the file) is off: a dotenv value is data,
and expanding it against secretrun's environment would make the value depend
on where it runs.
"""

from __future__ import annotations

import _thread
from typing import Any, Dict, Mapping, Optional

from ..errors import InvalidSecret, NotFound
from .base import OptionReader, Provider, ProviderContext, Secret, SecretId, read_local

_PRIVATE = "secretrun._dotenv_parser"


def _parser():
    """python-dotenv's parser module, without running ``dotenv/__init__``.

    The package's ``__init__`` imports ``dotenv.main`` (logging, tempfile,
    ...), about 30 ms that every container start would pay for a parser that
    needs only ``re``. ``dotenv/parser.py`` imports nothing of its package, so
    it is loaded on its own, under a private name so that a later
    ``import dotenv`` in the same process is not affected. Any surprise falls
    back to the plain import.
    """
    import sys

    module = sys.modules.get("dotenv.parser") or sys.modules.get(_PRIVATE)
    if module is not None:
        return module
    try:
        import importlib.util
        import os

        spec = importlib.util.find_spec("dotenv")
        location = os.path.join(os.path.dirname(spec.origin), "parser.py")
        pspec = importlib.util.spec_from_file_location(_PRIVATE, location)
        module = importlib.util.module_from_spec(pspec)
        pspec.loader.exec_module(module)
        module.parse_stream  # noqa: B018 - the one name used
    except Exception:
        import dotenv.parser as module
    else:
        sys.modules[_PRIVATE] = module
    return module


def read_dotenv(path, what: str) -> Dict[str, Optional[str]]:
    """Parse a dotenv file, refusing unreadable files and lines python-dotenv
    cannot parse (it would only warn, and drop them)."""
    parse_stream = _parser().parse_stream

    data = read_local(path, what, guard=True)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidSecret(f"{what} {path} is not valid UTF-8 (byte {exc.start})") from None
    import io

    bindings = list(parse_stream(io.StringIO(text)))
    bad = [str(b.original.line) for b in bindings if b.error]
    if bad:
        raise InvalidSecret(f"{what} {path}: cannot parse line {', '.join(bad)}")
    return {b.key: b.value for b in bindings if b.key is not None}


class DotenvProvider(Provider):
    type_name = "dotenv"
    scaffold = ('[providers.local]\ntype = "dotenv"\npath = "{dotenv}"\n', "local", "{name}")
    local = True

    def __init__(self, ctx: ProviderContext, path) -> None:
        super().__init__(ctx)
        self.path = path
        self._values: Optional[Dict[str, Optional[str]]] = None
        self._lock = _thread.allocate_lock()

    @classmethod
    def from_config(cls, ctx: ProviderContext, options: Mapping[str, Any]) -> "DotenvProvider":
        opts = OptionReader(ctx, options)
        path = opts.str("path", ".env") or ".env"
        opts.done()
        return cls(ctx, ctx.path(path))

    def _load(self) -> Dict[str, Optional[str]]:
        # Read once per resolution: every variable of one run sees one file.
        with self._lock:
            if self._values is None:
                self._values = read_dotenv(self.path, "dotenv file")
            return self._values

    def fetch(self, sid: SecretId) -> Secret:
        values = self._load()
        if sid.tree:
            return Secret({k: v or "" for k, v in values.items()})
        if sid.path not in values:
            raise NotFound(f"{sid.path} is not set in {self.path}")
        return Secret(values[sid.path] or "")

    def forget(self) -> None:
        # A re-read at every poll: the file is local, and rereading is how a
        # change is seen (there is no cheaper check, so no ``probe``).
        with self._lock:
            self._values = None

    def describe(self) -> str:
        return str(self.path)
