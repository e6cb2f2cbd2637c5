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
  fresh 0700 directory (``mkdtemp``) under ``file_dir``, ``$XDG_RUNTIME_DIR``,
  ``/dev/shm`` or the temp dir, so they never sit directly in a
  world-writable path. In exec mode such files outlive secretrun (nothing is
  left running to delete them): prefer a tmpfs for ``file_dir``.
"""

from __future__ import annotations

import os
from typing import Dict, Mapping, Optional


def write_files(files: Mapping[str, bytes]) -> None:
    """Write each path atomically (a temp file in the same directory, then
    rename), mode 0600: a reader sees the old content or the new, never half."""
    for path, data in files.items():
        directory = os.path.dirname(path) or "."
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise


class DirDelivery:
    def __init__(self, parent: Optional[str], cleanup: bool) -> None:
        import tempfile

        candidates = [parent] if parent else [os.environ.get("XDG_RUNTIME_DIR"), "/dev/shm", None]
        last_error: Optional[OSError] = None
        for base in candidates:
            if base is not None and not os.path.isdir(base):
                continue
            try:
                self.directory = tempfile.mkdtemp(prefix="secretrun-", dir=base)
                break
            except OSError as exc:
                last_error = exc
        else:
            raise last_error or OSError("no directory for secret files")
        os.chmod(self.directory, 0o700)
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
    def __init__(self) -> None:
        self.fds: Dict[str, int] = {}

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


def for_mode(watch: bool, file_dir: Optional[str]):
    if watch or file_dir or not hasattr(os, "memfd_create"):
        return DirDelivery(file_dir, cleanup=watch)
    return MemfdDelivery()
