"""Whose files secretrun trusts: the rule ssh applies to its keys.

A manifest decides which command gets which secrets and where secretrun
logs in; a dotenv or fallback file holds values. Whoever can change one can
point a secret (or root's ``VAULT_TOKEN``) at a store they control. So such a
file is trusted only when

- it is owned by the user running secretrun, or by root;
- neither its group nor others can write it (mode ``go-w``);
- no directory above it can be written by anyone else: each is owned by the
  user or root and not writable by group or others, unless it has the sticky
  bit (``/tmp``), where others cannot rename or remove what is not theirs.

Otherwise it is refused (exit 78) with the file, the owner or mode, and the
fix. The file's own mode is read from the open file (``fstat``), not the
path, so a file swapped after the check is not the one trusted.

A file others can *read* is a warning: for dotenv files at every run (they
hold values), for manifests only in ``secretrun check`` (a manifest holds
references, and 0644 is normal for files under /etc).

``unsafe_directory`` is the rule for directories secretrun writes into
(``file_dir``, see ``safefile.py``).
"""

from __future__ import annotations

import os
import stat
from typing import Optional


def _who(uid: int) -> str:
    try:
        import pwd

        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except (KeyError, ImportError):
        return f"uid {uid}"


def _trusted_owner(uid: int) -> bool:
    return uid in (0, os.geteuid())


def writable_by_others(st: os.stat_result) -> Optional[str]:
    """Why a file with this status is unsafe to trust, with the fix, or None."""
    mode = stat.S_IMODE(st.st_mode)
    if not _trusted_owner(st.st_uid):
        return (f"is owned by {_who(st.st_uid)}, not by {_who(os.geteuid())} or root; whoever owns it decides "
                f"what it says (chown {os.geteuid()} it, or copy it)")
    if mode & stat.S_IWOTH:
        return f"is writable by every user (mode {mode:04o}); chmod go-w it"
    if mode & stat.S_IWGRP:
        return f"is writable by group {st.st_gid} (mode {mode:04o}); chmod g-w it"
    return None


def unsafe_directory(st: os.stat_result) -> Optional[str]:
    """Why others could rename or replace entries of this directory, or None."""
    mode = stat.S_IMODE(st.st_mode)
    if not _trusted_owner(st.st_uid):
        return f"is owned by {_who(st.st_uid)}, not by {_who(os.geteuid())} or root"
    if mode & (stat.S_IWGRP | stat.S_IWOTH) and not mode & stat.S_ISVTX:
        who = "every user" if mode & stat.S_IWOTH else f"group {st.st_gid}"
        return f"is writable by {who} without the sticky bit (mode {mode:04o}); chmod go-w it, or +t"
    return None


def untrusted_parents(path: str) -> Optional[str]:
    """The first directory above ``path`` that others could change, and why."""
    directory = os.path.dirname(os.path.realpath(path))
    while True:
        try:
            why = unsafe_directory(os.stat(directory))
        except OSError:
            why = None
        if why:
            return f"its directory {directory} {why}"
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def untrusted(path: str, st: os.stat_result) -> Optional[str]:
    """The whole rule for a file read from ``path`` (``st`` from its open fd)."""
    return writable_by_others(st) or untrusted_parents(path)


def readable_by_others(st: os.stat_result) -> Optional[str]:
    mode = stat.S_IMODE(st.st_mode)
    if mode & stat.S_IROTH:
        return f"is readable by every user (mode {mode:04o}); chmod o-r"
    return None
