"""Delivering ``file = true`` values: the child gets a path, never the value.

Two ways, chosen by mode:

- **exec** (not watching) on Linux: each value is an anonymous in-memory file
  (``memfd_create``), sealed against writes, inherited by the command, and
  named ``/proc/<pid>/fd/<n>``. secretrun's PID becomes the command's on
  exec, so the path stays valid exactly as long as the command runs, and
  nothing is left on disk or in ``/dev/shm`` afterwards. A program that closes
  inherited descriptors (a daemon that double-forks) loses the file: set
  ``settings.file_dir`` for such programs.
- **a directory**: when watching (the supervisor removes it on exit), when
  ``settings.file_dir`` is set, or where there is no memfd. Files are 0600 in a
  fresh 0700 directory (``mkdtemp``) under ``file_dir``, else
  ``$XDG_RUNTIME_DIR``, else ``/dev/shm``: never a disk-backed directory
  unless ``file_dir`` names one (a warning says so when it is not a tmpfs),
  never directly in a shared path, and never under a ``file_dir`` that others
  can write without the sticky bit (they could rename the private directory
  away and receive the next value). Under ``settings.user`` the directory
  and files belong to the command's user. In exec mode such files outlive secretrun (nothing is
  left running to delete them): prefer a tmpfs for ``file_dir``.
"""

from __future__ import annotations

import os
from typing import Dict, Mapping, Optional, Tuple

from .errors import Kind, ManifestError, Problem


def write_files(files: Mapping[str, bytes]) -> None:
    """Write each path atomically, mode 0600, owned by the owner of its
    private directory (the command's user under ``settings.user``), through
    ``safefile.write_file``: a reader sees the old content or the new, never
    half, and nothing planted in the directory is followed."""
    from .safefile import write_file

    for path, data in files.items():
        write_file(path, data, 0o600, owner_of_directory=True)


def _refuse(message: str) -> ManifestError:
    return ManifestError([Problem(Kind.MANIFEST, message)], title="no safe place for file = true values")


def filesystem_type(path: str) -> Optional[str]:
    """The type of the file system holding ``path`` (Linux: /proc/self/mounts)."""
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as handle:
            mounts = [line.split()[1:3] for line in handle if len(line.split()) > 2]
    except OSError:
        return None
    real = os.path.realpath(path)
    best, kind = "", None
    for point, fstype in mounts:
        point = point.replace("\\040", " ")
        if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, kind = point, fstype
    return kind


_MEMORY_FS = ("tmpfs", "ramfs")


class DirDelivery:
    def __init__(self, parent: Optional[str], cleanup: bool, owner: Optional[Tuple[int, int]] = None) -> None:
        import tempfile

        from .perms import unsafe_directory

        # Never a disk-backed directory unless file_dir says so.
        candidates = [parent] if parent else [os.environ.get("XDG_RUNTIME_DIR"), "/dev/shm"]
        last_error: Optional[OSError] = None
        for base in candidates:
            if not base or not os.path.isdir(base):
                continue
            why = unsafe_directory(os.stat(base))
            if why:
                if parent:
                    raise _refuse(f"settings.file_dir {base} {why}: another user could move the private "
                                  "directory away and receive the next value")
                continue
            try:
                self.directory = tempfile.mkdtemp(prefix="secretrun-", dir=base)
                break
            except OSError as exc:
                last_error = exc
        else:
            if parent and last_error is None:
                raise _refuse(f"settings.file_dir {parent} is not a directory")
            raise _refuse("no memory-backed directory for file = true values ($XDG_RUNTIME_DIR and /dev/shm "
                          "are missing or unusable" + (f": {last_error.strerror}" if last_error else "") +
                          "); set settings.file_dir to a tmpfs, or to a directory you accept on disk")
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if owner is not None:
                os.fchown(fd, *owner)
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
        kind = filesystem_type(self.directory)
        if kind is not None and kind not in _MEMORY_FS:
            from . import logs

            logs.get().warning(f"file = true values are written to {self.directory}, on a {kind} file system "
                               "(disk), not in memory; point settings.file_dir at a tmpfs")
        self.cleanup = cleanup

    def place(self, contents: Mapping[str, bytes], write: bool = True) -> Dict[str, str]:
        """Each variable's path; the files are written unless ``write`` is
        false (the supervisor writes them when it acts)."""
        paths = {name: os.path.join(self.directory, name) for name in contents}
        if write:
            write_files({paths[name]: data for name, data in contents.items()})
        return paths

    def close(self) -> None:
        if self.cleanup:
            import shutil

            shutil.rmtree(self.directory, ignore_errors=True)


class MemfdDelivery:
    def __init__(self, owner: Optional[Tuple[int, int]] = None) -> None:
        self.fds: Dict[str, int] = {}
        self.owner = owner

    def place(self, contents: Mapping[str, bytes], write: bool = True) -> Dict[str, str]:
        import fcntl

        paths = {}
        for name, data in contents.items():
            fd = os.memfd_create(f"secretrun:{name}", os.MFD_ALLOW_SEALING)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.lseek(fd, 0, os.SEEK_SET)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS,
                        fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL)
            if self.owner is not None:
                os.fchown(fd, *self.owner)
            os.fchmod(fd, 0o600)
            os.set_inheritable(fd, True)
            old = self.fds.pop(name, None)
            if old is not None:
                os.close(old)
            self.fds[name] = fd
            paths[name] = f"/proc/{os.getpid()}/fd/{fd}"
        return paths

    def close(self) -> None:
        for fd in self.fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds.clear()


def for_mode(watch: bool, file_dir: Optional[str], run_as=None):
    """``run_as`` (``runas.RunAs``): the files belong to the command's user."""
    owner = (run_as.uid, run_as.gid) if run_as is not None else None
    if watch or file_dir or not hasattr(os, "memfd_create"):
        return DirDelivery(file_dir, cleanup=watch, owner=owner)
    return MemfdDelivery(owner)
