"""``mask_output``: the command's stdout and stderr pass through secretrun,
with every secret value replaced by ``*****``.

Finding values is ``redact.py``'s job (one engine for logs and output: an
Aho-Corasick automaton, overlapping matches, common encodings, a partial
match kept across pauses); this module plumbs the streams through it.
Held bytes (a tail that could be the start of a value) are released after a
short quiet period, so a full-screen program whose frame happens to end
with a value's first letter does not freeze.

``Plumbing`` connects the command's standard streams. When secretrun's own
stdout is a terminal, the command gets a pseudo-terminal (its own session,
with the pty as controlling terminal), so ``isatty()`` stays true, colours
and full-screen programs keep working, the window size follows ours, and
Ctrl-C typed at our (raw) terminal reaches the command through the pty's
line discipline exactly once. Otherwise stdout and stderr are pipes.
"""

from __future__ import annotations

import errno
import fcntl
import os
import selectors
import termios
import tty
from typing import Callable, Dict, Iterable, List, Optional, Union

from .redact import MASK_BYTES as MASK
from .redact import MIN_LENGTH, Secrets, mask_text
from .redact import Masker as _StreamMasker

QUIET = 0.05       # seconds before held bytes are released
READ_SIZE = 65536
BATCH_SIZE = 1 << 20   # at most this much is read and masked in one pass
PIPE_SIZE = 1 << 20    # the command's output pipes: fewer, larger reads


class Masker(_StreamMasker):
    """A stream masker over its own ``Secrets`` (or a shared one)."""

    def __init__(self, values: Union[Secrets, Iterable[str]] = ()) -> None:
        super().__init__(values if isinstance(values, Secrets) else Secrets(values))

    def update(self, values: Iterable[str]) -> None:
        self.secrets.add(values)


# --- plumbing ---------------------------------------------------------------


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            # Our stdout is non-blocking (shared with a parent): wait for room.
            import select
            select.select([], [fd], [], 1.0)
            continue
        except OSError as exc:
            if exc.errno in (errno.EPIPE, errno.EIO, errno.EBADF):
                return     # our reader went away: drop, as the command would get EPIPE
            raise
        view = view[written:]


class _Stream:
    """One readable fd of the command's output, masked into ``dest``."""

    def __init__(self, fd: int, dest: int, masker: Masker) -> None:
        self.fd = fd
        self.dest = dest
        self.masker = masker
        self.quiet_at: Optional[float] = None

    def pump(self, now: float) -> bool:
        """Read what is there; False at end of stream."""
        try:
            data = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return True
        except OSError as exc:
            if exc.errno != errno.EIO:      # EIO: pty slave closed, i.e. EOF
                raise
            data = b""
        if not data:
            self.finish()
            return False
        # Whatever else is there already goes in the same pass: masking costs
        # per call as well as per byte, and a busy writer fills big reads.
        chunks = [data]
        size = len(data)
        while size < BATCH_SIZE:
            try:
                more = os.read(self.fd, READ_SIZE)
            except OSError:
                break
            if not more:
                break
            chunks.append(more)
            size += len(more)
        if len(chunks) > 1:
            data = b"".join(chunks)
        _write_all(self.dest, self.masker.feed(data))
        self.quiet_at = now + QUIET if self.masker.holding else None
        return True

    def finish(self) -> None:
        rest = self.masker.release()
        if rest:
            _write_all(self.dest, rest)
        self.quiet_at = None


class Plumbing:
    """The command's standard streams, for one child at a time.

    Modes: ``inherit`` (no masking: the command shares our fds), ``pipes``
    and ``pty``. ``prepare()`` makes the fds for the next child and returns
    its spawn arguments; ``started()`` closes the child's ends in secretrun;
    ``child_gone()`` drains what is left and closes ours.
    """

    def __init__(self, selector: selectors.BaseSelector, mask: bool, values: Iterable[str],
                 clock: Callable[[], float], interactive: bool, secrets: Optional[Secrets] = None) -> None:
        self.selector = selector
        self.clock = clock
        # One engine for both streams (and, from the supervisor, for the logs).
        self.secrets = secrets if secrets is not None else Secrets()
        self.secrets.deliver(values)
        self.masker_out = Masker(self.secrets)
        self.masker_err = Masker(self.secrets)
        self.mode = "inherit"
        if mask:
            self.mode = "pty" if os.isatty(1) else "pipes"
            self.secrets.groups()     # compiled before the command's first byte, not during it
        # Relay our keyboard only when we own the terminal (foreground).
        self.relay_stdin = self.mode == "pty" and interactive and os.isatty(0)
        self._streams: Dict[int, _Stream] = {}
        self._child_ends: List[int] = []
        self._master: Optional[int] = None
        self._saved_tty: Optional[list] = None
        if self.relay_stdin:
            self.selector.register(0, selectors.EVENT_READ, self._on_stdin)

    @property
    def new_session(self) -> bool:
        return self.mode == "pty"

    def update_values(self, values: Iterable[str]) -> None:
        """The values the command now has: a new generation (redact.py),
        compiled before the command starts when its output is masked."""
        self.secrets.deliver(values)
        if self.mode != "inherit":
            self.secrets.groups()

    def prepare(self) -> List[tuple]:
        """File actions for the next child's spawn."""
        if self.mode == "inherit":
            return []
        actions: List[tuple] = []
        if self.mode == "pty":
            master, slave = os.openpty()
            self._copy_terminal_to(slave)
            name = os.ttyname(slave)
            os.close(slave)
            # Opened in the child, after setsid: that makes it the child's
            # controlling terminal (an inherited fd would not).
            first = 0 if self.relay_stdin else 1
            actions.append((os.POSIX_SPAWN_OPEN, first, name, os.O_RDWR, 0))
            if first == 0:
                actions.append((os.POSIX_SPAWN_DUP2, 0, 1))
            self._master = master
            self._add_stream(master, 1, self.masker_out)
            if os.isatty(2):
                actions.append((os.POSIX_SPAWN_DUP2, first, 2))
            else:
                actions.append(self._pipe_for(2, self.masker_err))
            return actions
        actions.append(self._pipe_for(1, self.masker_out))
        actions.append(self._pipe_for(2, self.masker_err))
        return actions

    def _pipe_for(self, target: int, masker: Masker) -> tuple:
        r, w = os.pipe()
        try:
            fcntl.fcntl(r, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_SIZE)
        except OSError:
            pass                # above /proc/sys/fs/pipe-max-size: keep the default
        self._child_ends.append(w)
        self._add_stream(r, target, masker)
        return (os.POSIX_SPAWN_DUP2, w, target)

    def _add_stream(self, fd: int, dest: int, masker: Masker) -> None:
        os.set_blocking(fd, False)
        stream = _Stream(fd, dest, masker)
        self._streams[fd] = stream
        self.selector.register(fd, selectors.EVENT_READ, lambda: self._on_output(stream))

    def started(self) -> None:
        for fd in self._child_ends:
            os.close(fd)
        self._child_ends = []

    def _on_output(self, stream: _Stream) -> None:
        if not stream.pump(self.clock()):
            self._close_stream(stream)

    def _close_stream(self, stream: _Stream) -> None:
        self.selector.unregister(stream.fd)
        os.close(stream.fd)
        del self._streams[stream.fd]
        if stream.fd == self._master:
            self._master = None

    def child_gone(self) -> None:
        """The command exited: write out what it left in the pipes, then
        close them (a grandchild still holding one would keep it open)."""
        for stream in list(self._streams.values()):
            for _ in range(1024):       # bounded: at most 64 MiB of leftovers
                try:
                    data = os.read(stream.fd, 65536)
                except (BlockingIOError, OSError):
                    break
                if not data:
                    break
                _write_all(stream.dest, stream.masker.feed(data))
            stream.finish()
            self._close_stream(stream)
        for fd in self._child_ends:
            os.close(fd)
        self._child_ends = []

    def next_deadline(self) -> Optional[float]:
        times = [s.quiet_at for s in self._streams.values() if s.quiet_at is not None]
        return min(times) if times else None

    def on_timer(self, now: float) -> None:
        for stream in self._streams.values():
            if stream.quiet_at is not None and now >= stream.quiet_at:
                stream.finish()

    # --- our own terminal, in pty mode ---

    def _on_stdin(self) -> None:
        try:
            data = os.read(0, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.selector.unregister(0)
            self.relay_stdin = False
            return
        if self._master is not None:
            _write_all(self._master, data)
        # No child at this instant (between a stop and a start): typed
        # input is dropped rather than queued for a program not yet running.

    def _copy_terminal_to(self, slave: int) -> None:
        source = 0 if os.isatty(0) else 1
        try:
            termios.tcsetattr(slave, termios.TCSANOW, self._saved_tty or termios.tcgetattr(source))
        except termios.error:
            pass
        _copy_winsize(source, slave)

    def resize(self) -> None:
        """Our window changed: the pty follows, and the kernel signals the
        command's foreground group (we do not forward SIGWINCH as well)."""
        if self._master is not None:
            _copy_winsize(0 if os.isatty(0) else 1, self._master)

    def enter_raw(self) -> None:
        if self.relay_stdin and self._saved_tty is None:
            try:
                self._saved_tty = termios.tcgetattr(0)
                tty.setraw(0, termios.TCSANOW)
                # Keep output processing: the command's output already went
                # through its pty's, and our own log lines need \n -> \r\n.
                mode = termios.tcgetattr(0)
                mode[1] |= termios.OPOST
                termios.tcsetattr(0, termios.TCSANOW, mode)
            except termios.error:
                self._saved_tty = None

    def leave_raw(self) -> None:
        if self._saved_tty is not None:
            try:
                termios.tcsetattr(0, termios.TCSADRAIN, self._saved_tty)
            except termios.error:
                pass
            self._saved_tty = None

    def close(self) -> None:
        self.child_gone()
        self.leave_raw()
        if self.relay_stdin:
            try:
                self.selector.unregister(0)
            except (KeyError, ValueError):
                pass


def _copy_winsize(src: int, dst: int) -> None:
    try:
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)
    except OSError:
        pass


__all__ = ["Masker", "Plumbing", "mask_text", "MASK", "MIN_LENGTH"]
