"""The one way secretrun writes a file: ``file = true`` values, the push
journal, the status file, and (appending) the audit log.

``write_file`` never follows a link planted where it writes, never truncates
or chmods a file it did not create, and never shows a half-written file:

1. the directory is opened once (``O_DIRECTORY``) and everything after goes
   through that descriptor, so the directory cannot be swapped in between;
2. a temporary name is created with ``O_CREAT | O_EXCL | O_NOFOLLOW``: it is
   a new inode of ours or the call fails (a planted file or symlink is never
   opened);
3. mode and owner are set on the descriptor (``fchmod``/``fchown``), never
   through a path another user could redirect;
4. the data is written and ``fsync``'ed, then ``rename``'d over the target:
   a symlink at the target is replaced, not followed; readers see the old
   content or the new, never half.

``open_append`` is for files secretrun appends to (the audit log): opened
with ``O_NOFOLLOW``, and refused unless it is a regular file owned by us or
root that no one else can write (``perms.writable_by_others``).
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Optional, Tuple

from .perms import writable_by_others


class UnsafeFile(OSError):
    """A file or directory secretrun refuses to write; ``strerror`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EPERM, message)


def _flags() -> int:
    return os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def write_file(path: str, data: bytes, mode: int = 0o600, owner: Optional[Tuple[int, int]] = None,
               owner_of_directory: bool = False) -> None:
    """Replace ``path`` atomically with ``data``, created ``mode``, owned by
    ``owner`` (uid, gid), or by the directory's owner with
    ``owner_of_directory`` (a private directory made for another user)."""
    directory, name = os.path.split(path)
    dir_fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    tmp = f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        if owner_of_directory and owner is None:
            st = os.fstat(dir_fd)
            if st.st_uid != os.geteuid():
                owner = (st.st_uid, st.st_gid)
        fd = os.open(tmp, _flags(), 0o600, dir_fd=dir_fd)
        try:
            if owner is not None:
                os.fchown(fd, *owner)
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        tmp = ""
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
    finally:
        if tmp:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except OSError:
                pass
        os.close(dir_fd)


def open_append(path: str, mode: int = 0o600) -> int:
    """An append-only descriptor on ``path`` (created ``mode``); ``UnsafeFile``
    for a symlink, a non-regular file, or one someone else owns or can write."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFile("is a symbolic link; secretrun does not write through links") from None
        raise
    st = os.fstat(fd)
    why = None if stat.S_ISREG(st.st_mode) else "is not a regular file"
    why = why or writable_by_others(st)
    if why:
        os.close(fd)
        raise UnsafeFile(why)
    return fd
