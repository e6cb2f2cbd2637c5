"""The rules of ``deliver.py`` and ``process.py`` and the exit-code map,
tested directly, row by row (the end-to-end tests reach them only through a
real command)."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys

import pytest

from secretrun import deliver, exitcodes, process
from secretrun.errors import CommandError, Kind, ManifestError, Problem, ResolutionError, UsageError
from tests.conftest import CANARY, ROOT

# --- exit codes ---------------------------------------------------------------------------------

FOR_ERROR = [
    (UsageError("bad"), 2),
    (CommandError("nope", 127), 127),
    (ManifestError([Problem(Kind.MANIFEST, "x")]), 78),
    (ResolutionError([Problem(Kind.INVALID, "x"), Problem(Kind.DENIED, "y")]), 77),
    (ResolutionError([Problem(Kind.MISSING, "x"), Problem(Kind.UNAVAILABLE, "y")]), 69),
    (KeyboardInterrupt(), 130),
    (SystemExit(3), 3),
    (SystemExit(None), 0),
    (SystemExit("message"), 1),
    (KeyError("an internal failure"), 1),
]


@pytest.mark.parametrize("error,code", FOR_ERROR, ids=[type(e).__name__ for e, _ in FOR_ERROR])
def test_every_error_has_one_exit_code(error, code):
    assert exitcodes.for_error(error) == code


EXEC_FAILURES = [
    (FileNotFoundError(errno.ENOENT, "No such file"), 127, "command not found: prog"),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory"), 127, "cannot run prog"),
    (PermissionError(errno.EACCES, "Permission denied"), 126, "not executable: prog (permission denied)"),
    (OSError(errno.ENOEXEC, "Exec format error"), 126, "exec format error"),
    (OSError(errno.E2BIG, "Argument list too long"), 126, "use file = true"),
    (OSError(errno.ELOOP, "Too many levels of symbolic links"), 126, "cannot run prog: Too many levels"),
]


@pytest.mark.parametrize("exc,code,words", EXEC_FAILURES, ids=[errno.errorcode[e.errno] for e, _, _ in EXEC_FAILURES])
def test_the_one_126_127_map(exc, code, words):
    error = process.exec_failure("prog", exc)
    assert (error.code, exitcodes.for_exec_failure(exc)) == (code, code)
    assert words in str(error)


@pytest.mark.parametrize("argv", [(), []])
def test_an_empty_command_is_a_usage_error(argv):
    with pytest.raises(UsageError, match="no command given") as info:
        process.require_command(argv)
    assert info.value.code == 2


def test_killed_by_signal_is_128_plus_n():
    assert exitcodes.killed_by(signal.SIGTERM) == 143 and exitcodes.INTERRUPTED == 128 + signal.SIGINT


# --- the environment-size rule ------------------------------------------------------------------

SIZES = [
    ("small", {"A": "x" * 100}, None),
    ("one variable at the limit", {"A": "x" * (process.MAX_ARG_STRLEN - 4)}, None),
    ("one variable over the limit", {"BIG": "x" * process.MAX_ARG_STRLEN}, "BIG"),
    ("many variables over ARG_MAX", {f"V{i}": "x" * 100_000 for i in range(40)}, "the environment and arguments"),
]


@pytest.mark.parametrize("env,refused", [r[1:] for r in SIZES], ids=[r[0] for r in SIZES])
def test_the_environment_size_check(env, refused):
    if refused is None:
        process.check_env_size(env, ["prog"])
        return
    with pytest.raises(ResolutionError) as info:
        process.check_env_size(env, ["prog"])
    assert info.value.code == 65 and refused in str(info.value)
    assert "xxxxxxxx" not in str(info.value)      # sizes and names, never the value


def test_exec_replace_restores_sigpipe_for_the_command():
    """Python ignores SIGPIPE; the command must get the default back."""
    code = ("import signal, sys; sys.path.insert(0, %r); from secretrun.process import exec_replace; "
            "exec_replace(['sh', '-c', 'grep SigIgn /proc/self/status'], {'PATH': '/usr/bin:/bin'})")
    out = subprocess.run([sys.executable, "-c", code % str(ROOT)], capture_output=True, text=True, timeout=30)
    ignored = int(out.stdout.split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1))


# --- file delivery ------------------------------------------------------------------------------

MODES = [
    ("exec on Linux: sealed in-memory files", False, None, deliver.MemfdDelivery),
    ("watching: a private directory", True, None, deliver.DirDelivery),
    ("file_dir set: a private directory there", False, "DIR", deliver.DirDelivery),
]


@pytest.mark.parametrize("watch,file_dir,kind", [m[1:] for m in MODES], ids=[m[0] for m in MODES])
def test_delivery_mode(tmp_path, watch, file_dir, kind):
    where = deliver.for_mode(watch, str(tmp_path) if file_dir else None)
    try:
        assert type(where) is kind
        paths = where.place({"CERT": CANARY.encode()})
        path = paths["CERT"]
        with open(path, "rb") as handle:
            assert handle.read() == CANARY.encode()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        if kind is deliver.DirDelivery:
            assert stat.S_IMODE(os.stat(where.directory).st_mode) == 0o700
            if file_dir:
                assert os.path.dirname(where.directory) == str(tmp_path)
        else:
            with pytest.raises(PermissionError):   # sealed: not even its owner can change it
                with open(path, "r+b") as handle:
                    handle.write(b"changed")
    finally:
        where.close()
    if kind is deliver.DirDelivery and watch:
        assert not os.path.exists(where.directory)     # the supervisor's directory goes with it


def test_directory_files_are_written_only_when_asked(tmp_path):
    where = deliver.DirDelivery(str(tmp_path), cleanup=True)
    try:
        paths = where.place({"A": b"1"}, write=False)
        assert not os.path.exists(paths["A"])
        deliver.write_files({paths["A"]: b"2"})
        assert open(paths["A"], "rb").read() == b"2"
        assert [n for n in os.listdir(where.directory) if n.endswith(".tmp")] == []
    finally:
        where.close()
    assert not os.path.exists(where.directory)


def test_a_new_value_replaces_the_memfd():
    where = deliver.MemfdDelivery()
    try:
        first = where.place({"A": b"old"})["A"]
        second = where.place({"A": b"new"})["A"]
        assert open(second, "rb").read() == b"new" and len(where.fds) == 1
        assert first == second or not os.path.exists(first)
    finally:
        where.close()
    assert where.fds == {}
