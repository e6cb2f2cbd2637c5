"""Reading and writing Vault paths: KV v2 (``secret/app/db``, no ``data/``
to write, ``?version=N`` pins one, ``probe`` reads only the metadata's
``current_version``), KV v1, and any other readable path as is, whose lease
(dynamic credentials) is kept in ``Secret.lease``."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from ...errors import Denied, InvalidSecret, NotFound
from ..base import Lease, Secret, SecretId, Value
from .leases import _lease_version
from .login import VaultLogin
from .mounts import Mount, VaultMounts


class VaultKv(VaultLogin, VaultMounts):
    """Reading (fetch, probe, age) and writing paths, by their mount's kind."""

    def fetch(self, sid: SecretId) -> Secret:
        path = _clean(sid.path)
        self._ensure_login()
        mount = self._mount(path)
        if mount.kv == 2:
            return self._read_kv2(mount, path, sid)
        if sid.version is not None:
            kind = "a KV version 1 mount" if mount.kv == 1 else f"a {mount.type or 'non-KV'} mount"
            raise InvalidSecret(f"{path} is on {kind} ({mount.path or 'unknown'}), which keeps no versions, "
                                f"so '?version={sid.version}' cannot be read at {self.describe()}")
        body = self._call("get", path, f"reading {path}")
        data = body.get("data")
        if not isinstance(data, Mapping):
            raise NotFound(f"{path} holds no data at {self.describe()}")
        lease = None
        version = None
        if body.get("lease_id"):
            lease = Lease(str(body["lease_id"]), float(body.get("lease_duration") or 0),
                          bool(body.get("renewable")))
            self._leases[sid] = (lease, self.clock())
            version = _lease_version(lease)
        return Secret(dict(data), version=version, lease=lease)

    def _read_kv2(self, mount: Mount, path: str, sid: SecretId) -> Secret:
        rest = path[len(mount.path):]
        params = None
        what = f"reading {path}"
        if sid.version is not None:
            if not sid.version.isdigit() or int(sid.version) < 1:
                raise InvalidSecret(f"{path}: '?version={sid.version}' is not a KV v2 version "
                                    f"(a whole number from 1)")
            params = {"version": int(sid.version)}
            what = f"reading version {sid.version} of {path}"
        hint = None
        try:
            body = self._call("get", f"{mount.path}data/{rest}", what, params=params)
        except NotFound as exc:
            if not rest.startswith("data/"):
                raise
            # The API's path, as envconsul and `vault read` take it, is a common slip.
            hint = NotFound(f"{exc}; KV v2 paths are written without 'data/', as `vault kv get` takes them")
        if hint is not None:
            raise hint
        data = body.get("data") or {}
        values = data.get("data")
        if not isinstance(values, Mapping):
            raise NotFound(f"{path} holds no data at {self.describe()}")
        version = (data.get("metadata") or {}).get("version")
        return Secret(dict(values), version=None if version is None else str(version))

    def probe(self, sid: SecretId) -> Optional[str]:
        """The version a poll compares with ``Secret.version``: KV v2's
        ``current_version`` (one metadata read, no value), the pinned
        version, or the lease's stamp while it lasts. ``None`` (refetch) for
        KV v1, for secrets without a lease, and when metadata is forbidden."""
        if sid in self._leases:
            lease, issued = self._leases[sid]
            if lease.duration and self.clock() - issued < lease.duration:
                return _lease_version(lease)
            return None
        path = _clean(sid.path)
        self._ensure_login()
        mount = self._mount(path)
        if mount.kv != 2:
            return None
        if sid.version is not None:
            return sid.version
        if mount.path in self._no_metadata:
            return None
        try:
            body = self._call("get", f"{mount.path}metadata/{path[len(mount.path):]}", f"probing {path}")
        except Denied:
            # Policies often grant data/ but not metadata/: fall back to refetching.
            self._no_metadata.add(mount.path)
            return None
        current = (body.get("data") or {}).get("current_version")
        return None if current is None else str(current)

    def changed_at(self, sid: SecretId) -> Optional[float]:
        """When the current KV v2 version was written (its metadata's
        ``updated_time``); ``None`` elsewhere: KV v1 keeps no dates."""
        path = _clean(sid.path)
        self._ensure_login()
        mount = self._mount(path)
        if mount.kv != 2:
            return None
        body = self._call("get", f"{mount.path}metadata/{path[len(mount.path):]}", f"reading the age of {path}")
        return _epoch((body.get("data") or {}).get("updated_time"))

    def write(self, sid: SecretId, value: Value) -> Optional[str]:
        """Store a KV secret (a map). Returns the new KV v2 version, or
        ``None`` on KV v1."""
        if not isinstance(value, Mapping):
            raise InvalidSecret(f"{sid.path}: a Vault KV secret is a map of keys to values")
        path = _clean(sid.path)
        self._ensure_login()
        mount = self._mount(path)
        if mount.kv == 2:
            body = self._call("post", f"{mount.path}data/{path[len(mount.path):]}", f"writing {path}",
                              json={"data": dict(value)})
            version = (body.get("data") or {}).get("version")
            return None if version is None else str(version)
        if mount.kv == 1:
            self._call("post", path, f"writing {path}", json=dict(value))
            return None
        raise InvalidSecret(f"{path} is not on a KV mount, so secretrun cannot store it")


def _clean(path: str) -> str:
    return "/".join(part for part in path.strip().split("/") if part)


def _epoch(stamp: Any) -> Optional[float]:
    """RFC 3339 with nanoseconds (``2026-01-02T03:04:05.123456789Z``) as
    seconds since the epoch; the fraction does not matter for an age."""
    import calendar
    import re

    match = re.match(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)", str(stamp or ""))
    if not match:
        return None
    return float(calendar.timegm(tuple(int(x) for x in match.groups()) + (0, 0, 0)))
