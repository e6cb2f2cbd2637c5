"""A third-party provider, as a plugin author would write one: a store kept
in a JSON file, with every version. It implements the core (``fetch``,
``close``), the ``write`` and ``age`` capabilities and an ``init`` scaffold, and is
registered only through an entry point (``install`` writes its dist-info), so
``push`` and ``rotate`` can only find it the way they find any plugin."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Mapping, Optional

from secretrun.errors import NotFound
from secretrun.providers.base import OptionReader, Provider, ProviderContext, Secret, SecretId, Value


class JsonStoreProvider(Provider):
    type_name = "jsonstore"
    scaffold = ('[providers.plug]\ntype = "jsonstore"\npath = "store.json"\n', "plug", "{app}/{lower}")
    local = True

    def __init__(self, ctx: ProviderContext, path: str) -> None:
        super().__init__(ctx)
        self.path = path

    @classmethod
    def from_config(cls, ctx: ProviderContext, options: Mapping[str, Any]) -> "JsonStoreProvider":
        opts = OptionReader(ctx, options)
        path = ctx.path(opts.str("path") or "store.json")
        opts.done()
        return cls(ctx, path)

    def _load(self) -> dict:
        try:
            return json.loads(Path(self.path).read_text())
        except FileNotFoundError:
            return {}

    def fetch(self, sid: SecretId) -> Secret:
        versions = self._load().get(sid.path)
        if not versions:
            raise NotFound(f"{sid.path} is not in {self.path}")
        number = int(sid.version) if sid.version else len(versions)
        return Secret(versions[number - 1]["value"], version=str(number))

    def write(self, sid: SecretId, value: Value) -> Optional[str]:
        data = self._load()
        versions = data.setdefault(sid.path, [])
        versions.append({"value": value, "at": time.time()})
        tmp = self.path + ".tmp"
        Path(tmp).write_text(json.dumps(data))
        os.replace(tmp, self.path)
        return str(len(versions))

    def changed_at(self, sid: SecretId) -> Optional[float]:
        versions = self._load().get(sid.path)
        return versions[-1]["at"] if versions else None


def install(site: Path) -> None:
    """Make ``site`` an importable directory holding this plugin as an
    installed distribution: the module and a dist-info with its entry point."""
    (site / "secretrun_jsonstore.py").write_text(Path(__file__).read_text())
    info = site / "secretrun_jsonstore-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: secretrun-jsonstore\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[secretrun.providers]\njsonstore = secretrun_jsonstore:JsonStoreProvider\n")
