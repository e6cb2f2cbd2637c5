"""Vault's mounts: each mount's type and KV version, learnt once per run
from the same preflight endpoint the Vault CLI asks
(``sys/internal/ui/mounts/PATH``); concurrent fetches under one mount share
that one request."""

from __future__ import annotations

from concurrent.futures import Future
from typing import NamedTuple, Optional

from ... import logs
from ...errors import Denied, InvalidSecret, NotFound, ProviderError
from .client import VaultClient


class Mount(NamedTuple):
    """A mount as the preflight describes it. ``kv`` is 2 or 1 for KV
    mounts, 0 for every other engine (read as is)."""

    path: str          # with its trailing slash, "auth/" included for auth mounts
    type: str
    kv: int


_UNKNOWN_MOUNT = Mount("", "", 0)


class VaultMounts(VaultClient):
    """The mount table: which mount a path is under, asked once."""

    def _mount(self, path: str) -> Mount:
        """The mount ``path`` is under, asked once per mount. Concurrent
        callers whose paths start with the same segment wait for one
        preflight instead of each sending their own."""
        known = self._known_mount(path)
        if known is not None:
            return known
        key = path.split("/", 1)[0]
        with self._mount_lock:
            pending = self._mount_calls.get(key)
            leader = pending is None
            if pending is None:
                pending = self._mount_calls[key] = Future()
        if not leader:
            try:
                pending.result()
            except ProviderError:
                pass              # asked again below, so the error names this path
            known = self._known_mount(path)
            if known is not None:
                return known
            return self._preflight(path)
        try:
            mount = self._preflight(path)
            pending.set_result(mount)
            return mount
        except BaseException as exc:
            pending.set_exception(exc)
            raise
        finally:
            with self._mount_lock:
                del self._mount_calls[key]

    def _known_mount(self, path: str) -> Optional[Mount]:
        probe = path + "/"
        for mount in self._mounts:
            if probe.startswith(mount.path):
                return mount
        return None

    def _preflight(self, path: str) -> Mount:
        try:
            body = self._call("get", f"sys/internal/ui/mounts/{path}", f"looking up the mount of {path}")
        except (Denied, NotFound, InvalidSecret):
            # 403: no mount there, or no access to it; 404: a server without
            # the endpoint. Read the path as is and let that read say which.
            return _UNKNOWN_MOUNT
        data = body.get("data") or {}
        mount_path = str(data.get("path") or "")
        if not mount_path:
            return _UNKNOWN_MOUNT
        if not mount_path.endswith("/"):
            mount_path += "/"
        if path.startswith("auth/") and not mount_path.startswith("auth/"):
            mount_path = "auth/" + mount_path
        engine = str(data.get("type") or "")
        kv = 0
        if engine in ("kv", "generic"):
            kv = 2 if str((data.get("options") or {}).get("version") or "1") == "2" else 1
        mount = Mount(mount_path, engine, kv)
        with self._mount_lock:
            if mount not in self._mounts:
                self._mounts.append(mount)
                self._mounts.sort(key=lambda m: len(m.path), reverse=True)
        logs.get().debug("vault mount learnt", provider=self.name, mount=mount.path, engine=engine, kv=kv)
        return mount
