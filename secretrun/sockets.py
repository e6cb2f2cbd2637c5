"""Listening sockets secretrun binds for the command (``settings.listen``,
``--listen``), handed over with the systemd socket-activation protocol.

Addresses:

- ``tcp://0.0.0.0:8080``, ``tcp://127.0.0.1:8080``, ``tcp://[::]:8443``
  (an IPv6 wildcard accepts IPv4 too, as the kernel's default allows);
- ``unix:/run/app/app.sock``, with options ``?mode=0660&owner=app&group=web``
  (``owner=app:web`` also works). A stale socket file nobody listens on is
  replaced; any other file at that path is an error.

The protocol (``sd_listen_fds(3)``): the sockets are the command's file
descriptors 3, 4, ... in the order given; ``LISTEN_FDS`` is their count,
``LISTEN_FDNAMES`` their names (colon-separated: ``name=`` in the address's
options, else ``tcp-PORT`` / ``unix-BASENAME``), and ``LISTEN_PID`` the
command's own PID. ``sd_listen_fds()``, gunicorn and Go's activation library
ignore the sockets unless ``LISTEN_PID`` equals ``getpid()``.

Setting ``LISTEN_PID`` to a PID that only exists once the child runs is the
delicate part, because the supervisor starts children with ``posix_spawn``
(no Python runs in the child, so it is safe beside the poll thread). It
spawns a tiny exec shim instead: the same Python interpreter, isolated and
without ``site`` (about 10 ms), puts its own PID into ``LISTEN_PID`` and
execs the command, which keeps that PID. The shim restores SIGPIPE and SIGXFSZ
to their defaults (Python ignores both at start-up and an ignored signal
stays ignored across exec), so the command still starts with every signal at
its default. In exec mode ``LISTEN_PID`` is simply secretrun's own PID, which
the command inherits.

Nothing here ever sees a secret value.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import stat
import sys
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple
from urllib.parse import parse_qsl

from . import exitcodes
from .errors import SecretrunError

SD_LISTEN_FDS_START = 3
BACKLOG = 1024
PROTOCOL_VARS = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")


class ListenError(SecretrunError):
    """An address that cannot be bound: in use, permission denied (EX_OSERR)."""

    exit_code = exitcodes.OS_ERROR


class Address(NamedTuple):
    text: str                     # as written, for messages
    family: int
    host: str = ""                # tcp
    port: int = 0                 # tcp
    path: str = ""                # unix
    mode: Optional[int] = None    # unix: chmod after bind
    owner: Optional[str] = None   # unix: chown after bind
    group: Optional[str] = None
    name: str = ""                # for LISTEN_FDNAMES

    @property
    def probe_target(self) -> Tuple[int, Any]:
        """Where a local client reaches it: the wildcard becomes loopback."""
        if self.family == socket.AF_UNIX:
            return self.family, self.path
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return self.family, (host, self.port)


def parse(text: str) -> Address:
    """One ``listen`` entry; ``ValueError`` with a message that says why."""
    if not isinstance(text, str) or not text:
        raise ValueError("a listen address must be a non-empty string")
    base, _, query = text.partition("?")
    try:
        options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError:
        raise ValueError(f"{text!r}: malformed options after '?'") from None
    name = options.pop("name", "")
    if name and (":" in name or not name.isprintable() or len(name) > 255):
        raise ValueError(f"{text!r}: name= may not hold ':' or control characters")
    if base.startswith("tcp://"):
        hostport = base[len("tcp://"):].rstrip("/")
        if hostport.startswith("["):
            host, sep, port = hostport[1:].partition("]:")
            family = socket.AF_INET6
        else:
            host, sep, port = hostport.rpartition(":")
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{text!r}: expected tcp://HOST:PORT or tcp://[IPV6]:PORT with a port from 1 to 65535")
        if options:
            raise ValueError(f"{text!r}: unknown option(s) {', '.join(sorted(options))} (tcp takes name=)")
        return Address(text, family, host=host or "0.0.0.0", port=int(port), name=name or f"tcp-{port}")
    if base.startswith("unix:"):
        path = base[len("unix:"):]
        if path.startswith("//"):
            path = path[2:]
        if not path.startswith("/"):
            raise ValueError(f"{text!r}: a unix socket needs an absolute path (unix:/run/app/app.sock)")
        mode = options.pop("mode", None)
        owner = options.pop("owner", None)
        group = options.pop("group", None)
        if options:
            raise ValueError(f"{text!r}: unknown option(s) {', '.join(sorted(options))} "
                             "(unix takes mode=, owner=, group=, name=)")
        if mode is not None:
            try:
                mode_bits = int(mode, 8)
            except ValueError:
                mode_bits = -1
            if not 0 <= mode_bits <= 0o777:
                raise ValueError(f"{text!r}: mode= must be octal permission bits like 0660")
        if owner and ":" in owner:
            owner, _, group = owner.partition(":")
        return Address(text, socket.AF_UNIX, path=path, mode=int(mode, 8) if mode is not None else None,
                       owner=owner or None, group=group or None,
                       name=name or f"unix-{os.path.basename(path)}")
    raise ValueError(f"{text!r}: expected tcp://HOST:PORT, tcp://[IPV6]:PORT or unix:/PATH")


def parse_all(texts: Sequence[str]) -> Tuple[Address, ...]:
    return tuple(parse(t) for t in texts)


class Listener(NamedTuple):
    address: Address
    sock: socket.socket

    def fileno(self) -> int:
        return self.sock.fileno()


class Listeners:
    """The bound sockets, held by secretrun for the whole run. Their own fds
    sit above ``3 + count`` so that moving them to 3, 4, ... in a child never
    lands on itself (a no-op ``dup2`` would keep close-on-exec set)."""

    def __init__(self, items: Sequence[Listener]) -> None:
        self.items = list(items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def first(self) -> Address:
        return self.items[0].address

    def env(self, pid: Optional[int] = None) -> Dict[str, str]:
        """The protocol's variables (``LISTEN_PID`` only when known here)."""
        out = {"LISTEN_FDS": str(len(self.items)),
               "LISTEN_FDNAMES": ":".join(item.address.name for item in self.items)}
        if pid is not None:
            out["LISTEN_PID"] = str(pid)
        return out

    def file_actions(self) -> List[tuple]:
        """posix_spawn actions that put socket i at fd 3+i in the child
        (dup2 clears close-on-exec on the new descriptor)."""
        return [(os.POSIX_SPAWN_DUP2, item.fileno(), SD_LISTEN_FDS_START + i) for i, item in enumerate(self.items)]

    def install_for_exec(self) -> None:
        """Exec mode: put the sockets at 3, 4, ... in this process, inheritable."""
        for i, item in enumerate(self.items):
            os.dup2(item.fileno(), SD_LISTEN_FDS_START + i, inheritable=True)

    def close(self, unlink: bool = True) -> None:
        for item in self.items:
            path = item.address.path
            try:
                bound = item.sock.getsockname() if path else None
            except OSError:
                bound = None
            item.sock.close()
            if unlink and path and bound == path:
                try:
                    if stat.S_ISSOCK(os.lstat(path).st_mode):
                        os.unlink(path)
                except OSError:
                    pass
        self.items = []


def bind_all(addresses: Sequence[Address]) -> Listeners:
    """Bind and listen on every address, or none (``ListenError`` names the
    address that failed, and the sockets bound before it are closed)."""
    bound: List[Listener] = []
    try:
        for address in addresses:
            bound.append(Listener(address, _bind(address)))
    except BaseException:
        Listeners(bound).close()
        raise
    floor = SD_LISTEN_FDS_START + len(bound)
    moved = []
    for item in bound:
        fd = fcntl.fcntl(item.fileno(), fcntl.F_DUPFD_CLOEXEC, floor)
        moved.append(Listener(item.address, socket.socket(fileno=fd)))
        item.sock.close()
    return Listeners(moved)


def _bind(address: Address) -> socket.socket:
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    try:
        if address.family == socket.AF_UNIX:
            _clear_stale(address)
            sock.bind(address.path)
            _apply_ownership(address)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if address.family == socket.AF_INET6 and address.host == "::":
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((address.host, address.port))
        sock.listen(BACKLOG)
        return sock
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {address.text}: {exc.strerror or exc}") from None
    except ListenError:
        sock.close()
        raise


def _clear_stale(address: Address) -> None:
    try:
        st = os.lstat(address.path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ListenError(f"cannot listen on {address.text}: the path exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(address.path)
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            os.unlink(address.path)   # left by a process that is gone
            return
        raise ListenError(f"cannot listen on {address.text}: {exc.strerror}") from None
    finally:
        probe.close()
    raise ListenError(f"cannot listen on {address.text}: another process is listening there")


def _apply_ownership(address: Address) -> None:
    if address.mode is not None:
        os.chmod(address.path, address.mode)
    if address.owner or address.group:
        uid = gid = -1
        try:
            if address.owner:
                import pwd

                uid = int(address.owner) if address.owner.isdigit() else pwd.getpwnam(address.owner).pw_uid
            if address.group:
                import grp

                gid = int(address.group) if address.group.isdigit() else grp.getgrnam(address.group).gr_gid
        except KeyError:
            raise ListenError(f"cannot listen on {address.text}: no such user or group") from None
        os.chown(address.path, uid, gid)


# --- handing LISTEN_PID to a spawned child -----------------------------------

# Runs as the child, between posix_spawn and the command: `python -I -S -c`.
_SHIM = ("import os,signal,sys\n"
         "os.environ['LISTEN_PID']=str(os.getpid())\n"
         "for s in (signal.SIGPIPE,signal.SIGXFSZ):signal.signal(s,signal.SIG_DFL)\n"
         "try:os.execv(sys.argv[1],sys.argv[2:])\n"
         "except OSError as e:\n"
         " os.write(2,('secretrun: cannot execute %s: %s\\n'%(sys.argv[1],e.strerror)).encode());os._exit(126)\n")


def shim_argv(path: str, argv: Sequence[str]) -> List[str]:
    """``argv`` run through the exec shim that sets ``LISTEN_PID`` to the
    command's own PID. ``path`` is the command's resolved executable."""
    return [sys.executable, "-I", "-S", "-c", _SHIM, path, *argv]


def child_env(env: Mapping[str, str], listeners: Listeners, pid: Optional[int] = None) -> Dict[str, str]:
    """``env`` with the protocol's variables for ``listeners`` (and without
    any inherited ones)."""
    out = {k: v for k, v in env.items() if k not in PROTOCOL_VARS}
    out.update(listeners.env(pid))
    return out


class Spawner:
    """``child.spawn`` for a command that gets ``listeners``: the sockets at
    fds 3, 4, ..., the protocol's variables, and the exec shim for
    ``LISTEN_PID``. Same signature as ``child.spawn``."""

    def __init__(self, listeners: Listeners, spawn) -> None:
        self.listeners = listeners
        self.spawn = spawn

    def __call__(self, argv: Sequence[str], env: Mapping[str, str], *, new_session: bool = False,
                 file_actions: Sequence[tuple] = ()) -> int:
        from .child import find_executable

        path = find_executable(argv[0], env)     # 126/127 for the command, not for the shim
        # The sockets go last: an earlier action may dup2 a pipe from a low fd.
        actions = [*file_actions, *self.listeners.file_actions()]
        return self.spawn(shim_argv(path, argv), child_env(env, self.listeners), new_session=new_session,
                          file_actions=actions)
