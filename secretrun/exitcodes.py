"""Every exit code secretrun uses, and the one map from an error to its code.

The numbers follow sysexits.h and the shell (SPEC §4):

    0     the command's own success (or a command of ours that succeeded)
    1     a secret or key is missing, or another failure
    2     bad command line
    65    a value failed validation                   (EX_DATAERR)
    69    a store could not be reached, or went stale (EX_UNAVAILABLE)
    71    a ``listen`` address cannot be bound          (EX_OSERR)
    75    ``on_change = "exit"`` stopped the command  (EX_TEMPFAIL)
    77    a store refused access                      (EX_NOPERM)
    78    the manifest is invalid                     (EX_CONFIG)
    126   the command is not executable
    127   the command is not found
    128+N the command (or secretrun) was killed by signal N; 130 is Ctrl-C

This module imports nothing of ours at load time: ``errors`` reads it.
"""

from __future__ import annotations

import errno as _errno
import sys

OK = 0
FAILURE = 1
USAGE = 2
INVALID = 65
UNAVAILABLE = 69
OS_ERROR = 71                # a listen address cannot be bound
ON_CHANGE = 75
DENIED = 77
MANIFEST = 78
NOT_EXECUTABLE = 126
NOT_FOUND = 127
SIGNALED = 128
INTERRUPTED = SIGNALED + 2   # SIGINT

STALE = UNAVAILABLE          # ``max_stale`` passed: as for an unreachable store


def killed_by(signum: int) -> int:
    """The code a shell reports for a process killed by signal ``signum``."""
    return SIGNALED + signum


def for_exec_failure(error: OSError) -> int:
    """The one 126/127 map: 127 when the command does not exist, 126 for
    every other reason it cannot be executed (as a shell says)."""
    if isinstance(error, FileNotFoundError) or error.errno in (_errno.ENOENT, _errno.ENOTDIR):
        return NOT_FOUND
    return NOT_EXECUTABLE


def for_error(error: BaseException) -> int:
    """The exit code of any error that reaches the top: the one place an
    exception becomes a number. ``SecretrunError`` and click's exceptions
    carry their own code; Ctrl-C is 130; anything else is an internal
    failure (1)."""
    if isinstance(error, KeyboardInterrupt):
        return INTERRUPTED
    if isinstance(error, SystemExit):
        code = error.code
        return code if isinstance(code, int) else (OK if code is None else FAILURE)
    from .errors import SecretrunError

    if isinstance(error, SecretrunError):
        return error.code
    click = sys.modules.get("click")   # loaded only when a click command ran
    if click is not None:
        if isinstance(error, (click.ClickException, click.exceptions.Exit)):
            return error.exit_code
        if isinstance(error, click.Abort):   # Ctrl-C at a prompt
            return INTERRUPTED
    return FAILURE
