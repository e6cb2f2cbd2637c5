"""Starting the watched command so that it dies with the supervisor and may
run as another user (``settings.user``).

``child.spawn`` uses ``posix_spawn``, which cannot set a parent-death signal
or change credentials. This is fork + exec with the few steps between them
done in the child: new process group or session, the file actions a
``posix_spawn`` would take, every signal back to its default and the signal
mask emptied, ``PR_SET_PDEATHSIG`` (SIGKILL: a supervisor killed outright,
SIGKILL or the OOM killer, cannot forward anything, so its command must not
live on as an orphan), then groups, gid, uid, and ``execve``. An exec
failure is reported to the parent through a close-on-exec pipe, as
``subprocess`` does, and becomes the same ``CommandError`` (126/127).

The child runs only system calls between fork and exec (no import, no lock),
and every signal is blocked around the fork, so a signal meant for the
supervisor is not handled by the child's copy of its handlers.
"""

from __future__ import annotations

import errno
import os
import signal
from typing import Callable, Mapping, Optional, Sequence

from . import child, hardening
from .errors import CommandError
from .runas import RunAs

DEATH_SIGNAL = signal.SIGKILL


def spawner(user: Optional[RunAs]) -> Callable[..., int]:
    """A ``child.spawn`` replacement for the supervisor."""

    def spawn(argv: Sequence[str], env: Mapping[str, str], *, new_session: bool = False,
              file_actions: Sequence[tuple] = ()) -> int:
        if user is not None:
            env = user.child_env(env)
        return spawn_guarded(argv, env, new_session=new_session, file_actions=file_actions, user=user)

    return spawn


def _apply(action: tuple) -> None:
    kind = action[0]
    if kind == os.POSIX_SPAWN_DUP2:
        fd, new = action[1], action[2]
        if fd == new:
            os.set_inheritable(fd, True)
        else:
            os.dup2(fd, new)
    elif kind == os.POSIX_SPAWN_CLOSE:
        try:
            os.close(action[1])
        except OSError:
            pass
    elif kind == os.POSIX_SPAWN_OPEN:
        fd, path, flags, mode = action[1:5]
        opened = os.open(path, flags, mode)
        if opened != fd:
            os.dup2(opened, fd)
            os.close(opened)


def spawn_guarded(argv: Sequence[str], env: Mapping[str, str], *, new_session: bool = False,
                  file_actions: Sequence[tuple] = (), user: Optional[RunAs] = None) -> int:
    path = child.find_executable(argv[0], env)
    hardening._libc_prctl()          # resolved before the fork: the child only calls it
    args, environment = list(argv), dict(env)
    parent = os.getpid()
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    everything = signal.valid_signals()
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, everything)
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child, until exec
            step = "exec"
            try:
                os.close(read_end)
                signal.set_wakeup_fd(-1)
                for sig in child._RESETTABLE:
                    try:
                        signal.signal(sig, signal.SIG_DFL)
                    except (OSError, ValueError):
                        pass
                step = "session"
                if new_session:
                    os.setsid()
                else:
                    os.setpgid(0, 0)
                step = "fd"
                for action in file_actions:
                    _apply(action)
                hardening.set_death_signal(DEATH_SIGNAL)
                if os.getppid() != parent:
                    os._exit(128 + DEATH_SIGNAL)   # the supervisor died before the signal was armed
                if user is not None:
                    step = "user"
                    if os.geteuid() == 0:
                        os.setgroups(list(user.groups))
                    os.setgid(user.gid)
                    os.setuid(user.uid)
                step = "exec"
                signal.pthread_sigmask(signal.SIG_SETMASK, ())
                os.execve(path, args, environment)
            except OSError as exc:
                os.write(write_end, f"{step}:{exc.errno or 0}".encode())
            except BaseException:
                os.write(write_end, f"{step}:0".encode())
            os._exit(127)
    finally:
        if os.getpid() == parent:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    os.close(write_end)
    try:
        report = b""
        while True:
            chunk = os.read(read_end, 64)
            if not chunk:
                break
            report += chunk
    finally:
        os.close(read_end)
    if not report:
        return pid
    os.waitpid(pid, 0)
    step, _, number = report.decode().partition(":")
    code = int(number or 0)
    reason = os.strerror(code) if code else "unknown error"
    if step == "user":
        raise CommandError(f"cannot run {path} as uid {user.uid if user else '?'}: {reason}", 126)
    if step != "exec":
        raise CommandError(f"cannot start {path}: {reason}", 126)
    if code == errno.ENOENT:
        raise CommandError(f"command not found: {path}", 127)
    raise CommandError(f"command is not executable: {path} ({reason})", 126)
