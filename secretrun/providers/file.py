"""``file``: one file per secret in a directory.

The directory is the ``path`` option; by default systemd's
``$CREDENTIALS_DIRECTORY`` when set (``LoadCredential=``), else ``/run/secrets``
(Docker and Compose secrets). A provider that defaults to
``$CREDENTIALS_DIRECTORY`` consumes it: the command does not inherit it
(``[env]`` can pass it on by name), so the bootstrap credential systemd
loads for secretrun stays with secretrun. A Kubernetes secret volume works as is: files
are read through the ``..data`` symlink, so an atomic swap is seen whole.

A reference's path is a file name relative to the directory, or an absolute
path. One trailing newline (``\\n`` or ``\\r\\n``) is removed, because
``echo secret > file`` and ``docker secret create`` add one that nobody
means as part of the value; ``trim = "none"`` keeps the bytes exact and
``trim = "whitespace"`` strips all surrounding whitespace. Content that is not
UTF-8 stays bytes: usable with ``file = true``, refused as an environment
value.

``[[import]]`` of a directory gives one variable per file (hidden files such
as Kubernetes' ``..data`` skipped); of a file, the keys of its JSON object.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional

from .base import OptionReader, Provider, ProviderContext, Secret, SecretId, read_local
from .options import FILE_TRIMS as _TRIMS


class FileProvider(Provider):
    type_name = "file"
    scaffold = ('[providers.files]\ntype = "file"\n'
                '# path = "/run/secrets"  # default: $CREDENTIALS_DIRECTORY or /run/secrets\n', "files", "{lower}")
    local = True

    def __init__(self, ctx: ProviderContext, directory: str, trim: str = "newline",
                 consumed: tuple = ()) -> None:
        super().__init__(ctx)
        self.directory = directory
        self.trim = trim
        self._consumed = consumed

    def consumed_env(self) -> tuple:
        # systemd's credentials are secretrun's bootstrap (an AppRole secret
        # id...): the command does not get the directory unless [env] names it.
        return self._consumed

    @classmethod
    def from_config(cls, ctx: ProviderContext, options: Mapping[str, Any]) -> "FileProvider":
        opts = OptionReader(ctx, options)
        default = ctx.environ.get("CREDENTIALS_DIRECTORY") or "/run/secrets"
        directory = opts.str("path", default) or default
        from_systemd = "path" not in options and bool(ctx.environ.get("CREDENTIALS_DIRECTORY"))
        trim = opts.str("trim", "newline") or "newline"
        if trim not in _TRIMS:
            opts.error(f"'trim' must be one of {', '.join(_TRIMS)}, not {trim!r}")
        opts.done()
        return cls(ctx, ctx.path(directory), trim, ("CREDENTIALS_DIRECTORY",) if from_systemd else ())

    def _path(self, sid: SecretId) -> str:
        return os.path.join(self.directory, os.path.expanduser(sid.path))

    def _trimmed(self, data: bytes) -> bytes:
        if self.trim == "newline":
            if data.endswith(b"\r\n"):
                return data[:-2]
            if data.endswith(b"\n"):
                return data[:-1]
            return data
        if self.trim == "whitespace":
            return data.strip()
        return data

    def fetch(self, sid: SecretId) -> Secret:
        path = self._path(sid)
        if sid.tree and os.path.isdir(path):
            values = {}
            for name in sorted(os.listdir(path)):
                full = os.path.join(path, name)
                if name.startswith(".") or not os.path.isfile(full):
                    continue
                values[name] = _text_or_bytes(self._trimmed(read_local(full)))
            return Secret(values)
        data = self._trimmed(read_local(path))
        return Secret(_text_or_bytes(data), version=_stamp(path))

    def describe(self) -> str:
        return self.directory


def _text_or_bytes(data: bytes):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


def _stamp(path: str) -> Optional[str]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_mtime_ns}:{st.st_size}"
