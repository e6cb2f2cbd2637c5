"""Process primitives for the supervisor: spawning, signalling, reaping,
wait status to exit code, PID 1 / subreaper, and the terminal's foreground
process group. Linux and other POSIX systems; the subreaper is Linux only.

Nothing here loops or sleeps: ``supervise/loop.py`` owns the loop. Nothing here
ever formats an environment value into a message.
"""

from __future__ import annotations

import os
import signal
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from . import exitcodes
from .errors import CommandError

# Every signal a child may have a disposition for. posix_spawn resets each to
# SIG_DFL in the child: Python itself ignores SIGPIPE and SIGXFSZ, and a
# parent may have ignored SIGINT/SIGQUIT (a background job of a
# non-interactive shell) or SIGHUP (nohup); the command must start clean.
_RESETTABLE = tuple(s for s in signal.valid_signals()
                    if s not in (signal.SIGKILL, signal.SIGSTOP))

PR_SET_CHILD_SUBREAPER = 36


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_code(status: int) -> int:
    """A wait status as a shell would report it: the exit code, or 128+N for
    a process killed by signal N (not -N, not 255)."""
    code = os.waitstatus_to_exitcode(status)
    return exitcodes.killed_by(-code) if code < 0 else code


def describe_status(status: int) -> str:
    """'exited with code 3' or 'was killed by SIGKILL', for logs."""
    if os.WIFSIGNALED(status):
        core = " (core dumped)" if os.WCOREDUMP(status) else ""
        return f"was killed by {signal_name(os.WTERMSIG(status))}{core}"
    return f"exited with code {os.WEXITSTATUS(status)}"


def find_executable(argv0: str, env: Mapping[str, str]) -> str:
    """The path to run for ``argv0``, searched in the *child's* PATH (as
    ``execvpe`` and a shell would; glibc's ``posix_spawnp`` would search
    secretrun's own). Raises ``CommandError`` 127 (not found) or 126 (not
    executable)."""
    if not argv0:
        raise CommandError("the command is empty", exitcodes.NOT_FOUND)
    if "/" in argv0:
        if not os.path.exists(argv0):
            raise CommandError(f"command not found: {argv0}", exitcodes.NOT_FOUND)
        if os.path.isdir(argv0) or not os.access(argv0, os.X_OK):
            raise CommandError(f"command is not executable: {argv0}", exitcodes.NOT_EXECUTABLE)
        return argv0
    path = env.get("PATH", os.defpath)
    not_executable = None
    for directory in path.split(os.pathsep):
        candidate = os.path.join(directory or ".", argv0)
        if os.path.isfile(candidate):
            if os.access(candidate, os.X_OK):
                return candidate
            not_executable = not_executable or candidate
    if not_executable:
        # On PATH but not executable: 126, as a shell says.
        raise CommandError(f"command is not executable: {not_executable}", exitcodes.NOT_EXECUTABLE)
    raise CommandError(f"command not found: {argv0} (searched the child's PATH)", exitcodes.NOT_FOUND)


def spawn(argv: Sequence[str], env: Mapping[str, str], *, new_session: bool = False,
          file_actions: Sequence[tuple] = ()) -> int:
    """Start ``argv`` and return its pid. The child is the leader of a new
    process group (or of a new session, for a pseudo-terminal), has an empty
    signal mask and default dispositions for every signal.

    ``posix_spawn`` runs no Python code in the child, so it is safe while
    the poll thread runs (``preexec_fn`` is not), and glibc reports exec
    failures to the parent. Raises ``CommandError`` 126/127.
    """
    path = find_executable(argv[0], env)
    kwargs: Dict[str, Any] = dict(setsigmask=(), setsigdef=_RESETTABLE, file_actions=list(file_actions) or None)
    if new_session:
        kwargs["setsid"] = True
    else:
        kwargs["setpgroup"] = 0
    try:
        return os.posix_spawn(path, list(argv), dict(env), **kwargs)
    except OSError as exc:
        from .process import exec_failure

        raise exec_failure(path, exc) from None


def send(pid: int, signum: int) -> bool:
    """Signal one process; False if it is already gone."""
    try:
        os.kill(pid, signum)
        return True
    except ProcessLookupError:
        return False


def send_group(pgid: int, signum: int) -> bool:
    """Signal a whole process group; False if no member is left."""
    try:
        os.killpg(pgid, signum)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        # A member changed credentials (setuid); the others were signalled.
        return True


def group_alive(pgid: int) -> bool:
    return send_group(pgid, 0)


def is_pid1() -> bool:
    return os.getpid() == 1


def become_subreaper() -> bool:
    """Ask Linux to re-parent our orphaned descendants to us, so that we
    reap them as PID 1 would. False where unsupported."""
    from .hardening import prctl

    return prctl(PR_SET_CHILD_SUBREAPER, 1) == 0


# --- reaping -----------------------------------------------------------------


class Reaper:
    """The one place that waits for children.

    ``reap(main)`` collects the exact status of the pids in ``main`` (the
    command, job-control stops included) and reaps every other exited child
    (orphans re-parented to PID 1 or to a subreaper).

    Hazard: a provider SDK may run a helper with ``subprocess`` from the poll
    thread (a credential helper). If we reaped that helper first, its
    ``Popen.wait()`` would read the lost status as 0. Such helpers are in our
    own process group, while the command's descendants are in the command's
    group or their own; so a zombie in our group is left to its owner for
    ``grace`` seconds (it reaps within microseconds) and reaped after.
    """

    def __init__(self, grace: float = 2.0, clock=None) -> None:
        import time

        self._clock = clock or time.monotonic
        self._grace = grace
        self._own_pgrp = os.getpgrp()
        self._foreign_seen: dict = {}

    def reap(self, main: Iterable[int]) -> List[Tuple[int, int]]:
        """[(pid, status)] for main children that exited or stopped/continued,
        and for every orphan reaped (their statuses are only logged)."""
        out: List[Tuple[int, int]] = []
        main = set(main)
        for pid in main:
            while True:
                try:
                    got, status = os.waitpid(pid, os.WNOHANG | os.WUNTRACED | os.WCONTINUED)
                except ChildProcessError:
                    break
                if got == 0:
                    break
                out.append((got, status))
                if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                    break
        out.extend(self._reap_others(main))
        return out

    def _reap_others(self, main: Set[int]) -> List[Tuple[int, int]]:
        out = []
        for _ in range(10000):   # bounded: each pass reaps one zombie
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                break
            if info is None or info.si_pid == 0:
                break
            pid = info.si_pid
            if pid not in main and self._is_foreign(pid):
                # waitid(P_ALL) keeps returning this one; try again later.
                break
            try:
                got, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            self._foreign_seen.pop(pid, None)
            if got:
                out.append((got, status))
        return out

    def _is_foreign(self, pid: int) -> bool:
        try:
            pgid = os.getpgid(pid)
        except ProcessLookupError:
            return False
        if pgid != self._own_pgrp:
            return False
        first = self._foreign_seen.setdefault(pid, self._clock())
        return self._clock() - first < self._grace

    def pending_foreign(self) -> bool:
        """True while a zombie is being left to its owner: poll again soon."""
        return bool(self._foreign_seen)


# --- the terminal ------------------------------------------------------------


def controlling_tty() -> Optional[int]:
    """The fd (0, 1 or 2) of our controlling terminal if our process group is
    its foreground group, else None (no terminal, or we run in the
    background: then the terminal sends us nothing and we take nothing)."""
    for fd in (0, 2, 1):
        try:
            if os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp():
                return fd
        except OSError:
            continue
    return None


def set_foreground(fd: int, pgrp: int) -> bool:
    """Make ``pgrp`` the terminal's foreground group. We ignore SIGTTOU for
    the whole run, so this works from a background group too."""
    try:
        os.tcsetpgrp(fd, pgrp)
        return True
    except OSError:
        return False


def ignore_job_control_output() -> None:
    """Ignore SIGTTOU/SIGTTIN in secretrun itself: it calls tcsetpgrp from
    the background and may log to the terminal while the command holds it.
    The command gets both back at default (see ``_RESETTABLE``)."""
    for sig in (signal.SIGTTOU, signal.SIGTTIN):
        signal.signal(sig, signal.SIG_IGN)


def restore_signals(signums: Iterable[int]) -> None:
    for sig in signums:
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
