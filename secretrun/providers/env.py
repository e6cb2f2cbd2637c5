"""``env``: secretrun's own environment. Built in as the provider named
``env``; declare ``type = "env"`` with a ``prefix`` to read ``PREFIX + path``."""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import NotFound
from .base import OptionReader, Provider, ProviderContext, Secret, SecretId


class EnvProvider(Provider):
    type_name = "env"
    local = True

    def __init__(self, ctx: ProviderContext, prefix: str = "") -> None:
        super().__init__(ctx)
        self.prefix = prefix

    @classmethod
    def from_config(cls, ctx: ProviderContext, options: Mapping[str, Any]) -> "EnvProvider":
        opts = OptionReader(ctx, options)
        prefix = opts.str("prefix", "") or ""
        opts.done()
        return cls(ctx, prefix)

    def fetch(self, sid: SecretId) -> Secret:
        environ = self.ctx.environ
        if sid.tree:
            # ``[[import]] from = "${env:APP_}"``: every variable starting with the path.
            start = self.prefix + sid.path.rstrip("*")
            found = {k[len(start):]: v for k, v in environ.items() if k.startswith(start) and k != start}
            return Secret(found)
        name = self.prefix + sid.path
        if name not in environ:
            raise NotFound(f"environment variable {name} is not set")
        return Secret(environ[name])

    def describe(self) -> str:
        return "the environment"
