"""Who else can change or read a manifest or a dotenv file.

A manifest decides which command gets which secrets, and a dotenv file
holds values, so one that others can *write* is refused (exit 78), as ssh
refuses a group-writable config: whoever can edit it can point a secret at
a store they control. Group write is allowed for the owner's own group (the
user-private-group convention, umask 002) and for root's. One that others
can *read* is a warning: for dotenv files at every run (they hold values),
for manifests only in ``secretrun check`` (a manifest holds references, and
0644 is normal for files under /etc).

The mode is read from the open file (``fstat``), not the path, so a file
swapped after the check is not the one trusted.
"""

from __future__ import annotations

import os
import stat
from typing import Optional


def _owner_gid(uid: int) -> Optional[int]:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_gid
    except (KeyError, ImportError):
        return None


def writable_by_others(st: os.stat_result) -> Optional[str]:
    """Why the file is unsafe to trust, or None."""
    mode = stat.S_IMODE(st.st_mode)
    if mode & stat.S_IWOTH:
        return f"is writable by every user (mode {mode:04o})"
    if mode & stat.S_IWGRP and st.st_gid not in (0, _owner_gid(st.st_uid)):
        return f"is writable by group {st.st_gid} (mode {mode:04o})"
    return None


def readable_by_others(st: os.stat_result) -> Optional[str]:
    mode = stat.S_IMODE(st.st_mode)
    if mode & stat.S_IROTH:
        return f"is readable by every user (mode {mode:04o}); chmod o-r"
    return None
