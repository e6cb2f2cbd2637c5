"""``env --reveal`` output reads back byte for byte in its consumer (issue 13):
``shell`` in sh, dash and bash; ``dotenv`` in python-dotenv; ``json`` in any
JSON parser. ANSI sequences are not stripped when stdout is a file, and
never reach a terminal raw."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import CANARY, ROOT


def secretrun_bytes(args, cwd, stdout=subprocess.PIPE):
    """The real command, its stdout as bytes (no newline translation)."""
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "LANG": "C.UTF-8", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "secretrun", *args], cwd=cwd, stdout=stdout,
                            stderr=subprocess.PIPE, env=env)

HOSTILE = {
    "URL": "https://x/${AWS_SECRET_ACCESS_KEY}/$HOME",
    "QUOTES": "it's \"quoted\" `cmd` $(id)",
    "BACKSLASH": "a\\b\\\\c\\'d\\",
    "CRLF": "line1\r\nline2\rend",
    "NEWLINE": "-----BEGIN KEY-----\nAAAA\n-----END KEY-----\n",
    "ANSI": "\x1b[31mred\x1b[0m\x07bell",
    "UNICODE": "é漢字\u2028" + CANARY,
    "EMPTY": "",
}


@pytest.fixture
def revealed(tmp_path, manifest):
    store = tmp_path / "store"
    store.mkdir()
    (store / "all.json").write_text(json.dumps(HOSTILE))
    manifest(f"""
        version = 1
        [providers.f]
        type = "file"
        path = "{store}"
        [[import]]
        from = "${{f:all.json}}"
    """)

    def run(fmt):
        out = tmp_path / f"out.{fmt}"
        proc = secretrun_bytes(["env", "--reveal", "--format", fmt], tmp_path)
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr
        out.write_bytes(stdout)
        return out, stderr.decode()

    return run


def test_json_reads_back_exactly(revealed):
    path, _ = revealed("json")
    assert json.loads(path.read_text()) == HOSTILE
    assert b"\x1b" not in path.read_bytes()


@pytest.mark.parametrize("shell", ["sh", "dash", "bash"])
def test_shell_format_reads_back_exactly_in_each_shell(revealed, shell):
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    path, _ = revealed("shell")
    assert b"\x1b[31m" in path.read_bytes()          # not stripped by click
    names = " ".join(HOSTILE)
    script = f'. "{path}"; for n in {names}; do eval "printf %s \\"\\${{$n}}\\""; printf "\\0"; done'
    out = subprocess.run([shell, "-c", script], capture_output=True, env={"PATH": os.environ["PATH"]},
                         timeout=30).stdout
    assert out.split(b"\0")[:-1] == [v.encode() for v in HOSTILE.values()]


def test_dotenv_format_reads_back_exactly_in_python_dotenv(revealed):
    from dotenv import dotenv_values

    path, err = revealed("dotenv")
    assert b"\x1b[31m" in path.read_bytes()
    assert dotenv_values(path, interpolate=False) == HOSTILE
    # With interpolation on (python-dotenv's default) only values holding
    # "${" change, and env warned about them by name.
    expanded = dotenv_values(path)
    assert {k for k in HOSTILE if expanded[k] != HOSTILE[k]} == {"URL"}
    assert "URL's value contains '${'" in err


def test_control_characters_never_reach_a_terminal_raw(tmp_path, manifest):
    import pty

    (tmp_path / "s").write_text("\x1b]0;pwned\x07\x1b[2J" + CANARY)
    manifest(f"""
        version = 1
        [providers.f]
        type = "file"
        path = "{tmp_path}"
        [env]
        A = "${{f:s}}"
    """)
    master, slave = pty.openpty()
    proc = secretrun_bytes(["env", "--reveal", "--format", "shell"], tmp_path, stdout=slave)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=30)
    os.close(master)
    assert b"\x1b" not in out and b"\\x1b]0;pwned" in out
    assert b"escaped on a terminal" in proc.stderr.read()
