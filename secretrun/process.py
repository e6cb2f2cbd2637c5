"""Replacing secretrun with the command (exec mode).

The command inherits secretrun's PID, so whatever started secretrun (a
container runtime, systemd, a shell) talks to the command directly: signals,
exit codes and ``NOTIFY_SOCKET`` need no forwarding because nothing is in
between.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from typing import Mapping, NoReturn, Sequence

from . import exitcodes
from .errors import CommandError, Kind, Problem, ResolutionError, UsageError

# Linux refuses a single "NAME=value" longer than MAX_ARG_STRLEN (32 pages).
MAX_ARG_STRLEN = 131072


def check_env_size(env: Mapping[str, str], argv: Sequence[str]) -> None:
    """Refuse an environment exec cannot take, naming the variables, before
    the exec fails with a bare E2BIG."""
    problems = []
    total = sum(len(a.encode()) + 1 for a in argv)
    for name, value in env.items():
        size = len(name.encode()) + len(value.encode("utf-8", "surrogateescape")) + 2
        total += size + 8  # the pointer in envp
        if size > MAX_ARG_STRLEN:
            # No size in the message: a value's length is information about it.
            problems.append(Problem(Kind.INVALID, f"the value is larger than the {MAX_ARG_STRLEN} bytes one "
                                    "environment variable can hold; use file = true", variable=name))
    try:
        limit = os.sysconf("SC_ARG_MAX")
    except (ValueError, OSError):
        limit = 2097152
    if total > limit and not problems:
        biggest = sorted(env, key=lambda k: len(env[k]), reverse=True)[:3]
        problems.append(Problem(Kind.INVALID, f"the environment and arguments take {total} bytes, more than "
                                f"the system's {limit}; deliver the largest values ({', '.join(biggest)}) "
                                "with file = true"))
    if problems:
        raise ResolutionError(problems, title="the environment is too large for the command")


def reset_signals() -> None:
    """Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored
    across exec: restore the defaults the command expects."""
    for name in ("SIGPIPE", "SIGXFSZ"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, signal.SIG_DFL)


def require_command(argv: Sequence[str]) -> None:
    """The one check for an empty command line, whichever way it arrives."""
    if not argv:
        raise UsageError("no command given: secretrun [OPTIONS] -- COMMAND [ARG...]")


def exec_failure(path: str, exc: OSError) -> CommandError:
    """Why ``path`` could not be executed, with its exit code
    (``exitcodes.for_exec_failure``: 127 not found, 126 otherwise)."""
    if isinstance(exc, FileNotFoundError):
        message = f"command not found: {path}"
    elif isinstance(exc, PermissionError):
        message = f"command is not executable: {path} (permission denied)"
    elif exc.errno == errno.ENOEXEC:
        message = f"command is not executable: {path} (exec format error)"
    elif exc.errno == errno.E2BIG:
        message = f"the environment is too large to run {path}; use file = true for large values"
    else:
        message = f"cannot run {path}: {exc.strerror}"
    return CommandError(message, exitcodes.for_exec_failure(exc))


def exec_replace(argv: Sequence[str], env: Mapping[str, str]) -> NoReturn:
    """Become the command. Returns only by raising ``CommandError``
    (127 not found, 126 not executable)."""
    require_command(argv)
    check_env_size(env, argv)
    sys.stdout.flush()
    sys.stderr.flush()
    reset_signals()
    try:
        os.execvpe(argv[0], list(argv), dict(env))
    except OSError as exc:
        raise exec_failure(argv[0], exc) from None
    finally:
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
