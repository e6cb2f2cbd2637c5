"""Keeping other processes of the same user out of secretrun (Linux prctl).

- ``make_undumpable()``: ``PR_SET_DUMPABLE 0``. A process of the same uid
  (the supervised command itself) can no longer open ``/proc/<pid>/environ``,
  ``/proc/<pid>/mem`` or attach with ptrace, and a crash writes no core
  file. Removing a login credential from ``os.environ`` does not change the
  original environment block the kernel shows in ``/proc/<pid>/environ``;
  this does. ``execve`` resets the flag, so the command is unaffected.
  Watch mode sets it before any store is contacted; exec mode does not (the
  command that replaces secretrun holds the values anyway).
- ``set_death_signal(sig)``: ``PR_SET_PDEATHSIG`` for a freshly forked
  command, so a supervisor killed outright (SIGKILL, OOM) does not leave its
  command running as an orphan.

Both are one system call through libc's own symbol (``ctypes.CDLL(None)``:
no ``find_library``, which would start a subprocess). Elsewhere they are
no-ops that return False.
"""

from __future__ import annotations

from typing import Optional

PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4

_prctl = None


def _libc_prctl():
    global _prctl
    if _prctl is None:
        import ctypes

        _prctl = ctypes.CDLL(None, use_errno=True).prctl
    return _prctl


def prctl(option: int, arg: int) -> Optional[int]:
    """prctl(option, arg, 0, 0, 0); None where unsupported or refused."""
    try:
        result = _libc_prctl()(option, arg, 0, 0, 0)
    except (ImportError, OSError, AttributeError):
        return None
    return None if result < 0 else result


def make_undumpable() -> bool:
    return prctl(PR_SET_DUMPABLE, 0) == 0


def is_dumpable() -> Optional[bool]:
    result = prctl(PR_GET_DUMPABLE, 0)
    return None if result is None else bool(result)


def set_death_signal(signum: int) -> bool:
    return prctl(PR_SET_PDEATHSIG, signum) == 0
