"""``settings.user`` / ``--user``: run the command as another user.

secretrun resolves as itself (root, or a service account that can read the
bootstrap credential), then the command runs as ``user``: supplementary
groups, gid and uid are dropped in that order (as ``gosu``, ``su-exec`` and
``setpriv`` do), and ``HOME``, ``USER`` and ``LOGNAME`` describe the new
user. In exec mode secretrun drops and execs; under ``--watch`` only the
command runs as ``user`` (``forkspawn.py``), the supervisor keeps its
identity and its credentials.

``user`` is a name (``"app"``), a uid, ``"NAME:GROUP"`` or ``"UID:GID"``.
A user secretrun cannot switch to (unknown name, not running as root) is
refused with exit 78 before anything is fetched.
"""

from __future__ import annotations

import os
from typing import Dict, Mapping, NamedTuple, Optional, Tuple

from .errors import Kind, ManifestError, Problem


class RunAs(NamedTuple):
    uid: int
    gid: int
    groups: Tuple[int, ...]
    name: str
    home: str

    def child_env(self, env: Mapping[str, str]) -> Dict[str, str]:
        out = dict(env)
        out.update(HOME=self.home, USER=self.name, LOGNAME=self.name)
        return out


def _refuse(message: str, location: Optional[str]) -> ManifestError:
    return ManifestError([Problem(Kind.MANIFEST, message, location=location)],
                         title="cannot run the command as another user")


def resolve(spec: str, location: Optional[str] = None) -> RunAs:
    """The identity ``spec`` names; ``ManifestError`` (78) when it names no
    one or secretrun cannot switch to it."""
    import grp
    import pwd

    user, _, group = str(spec).partition(":")
    entry = None
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        if not user.isdigit():
            raise _refuse(f"settings.user: there is no user named {user!r} (see /etc/passwd)", location) from None
    except (OverflowError, ValueError):
        raise _refuse(f"settings.user: {spec!r} is not a user name, a uid or UID:GID", location) from None
    uid = entry.pw_uid if entry else int(user)
    if group:
        try:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise _refuse(f"settings.user: there is no group named {group!r} (see /etc/group)", location) from None
    elif entry is not None:
        gid = entry.pw_gid
    else:
        raise _refuse(f"settings.user: uid {uid} has no entry in /etc/passwd; give its group too, "
                      f"as \"{uid}:GID\"", location)
    name = entry.pw_name if entry else str(uid)
    groups: Tuple[int, ...] = (gid,)
    if entry is not None and not group:
        groups = tuple(dict.fromkeys([gid, *os.getgrouplist(entry.pw_name, gid)]))
    home = (entry.pw_dir if entry else "") or "/"
    if os.geteuid() != 0 and (uid, gid) != (os.geteuid(), os.getegid()):
        raise _refuse(f"settings.user: secretrun runs as uid {os.geteuid()}, not root, so it cannot run the "
                      f"command as {spec!r}; start secretrun as root, or drop settings.user", location)
    return RunAs(uid, gid, groups, name, home)


def for_run(settings, cli_user: Optional[str], location: Optional[str]) -> Optional[RunAs]:
    """The identity the command runs as: ``--user`` over ``settings.user``."""
    spec = cli_user or getattr(settings, "user", None)
    return resolve(spec, location) if spec else None


def drop(user: RunAs) -> None:
    """Become ``user`` for good: groups, then gid, then uid (after setuid the
    others could no longer be changed). Raises ``ManifestError`` (78)."""
    try:
        if os.geteuid() == 0:
            os.setgroups(list(user.groups))
        os.setgid(user.gid)
        os.setuid(user.uid)
    except OSError as exc:
        raise _refuse(f"cannot switch to uid {user.uid}, gid {user.gid}: {exc.strerror}", None) from None
    if user.uid != 0:
        try:
            os.setuid(0)
        except OSError:
            return
        raise _refuse("dropped to another user, but could still become root again; refusing to run", None)
