"""The exec path's hand parser agrees with click, imports nothing it does
not need, and the registry matches the declared entry points."""

import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from secretrun import providers
from secretrun.launch import Options, parse_fast

CASES = [
    ["--", "cmd"],
    ["run", "--", "cmd", "--flag", "-m", "x"],
    ["-m", "a.toml", "-p", "prod", "--", "cmd"],
    ["--manifest=a.toml", "--profile=prod", "--watch", "--", "cmd"],
    ["-ma.toml", "--no-watch", "--", "cmd"],
    ["-e", "A=1", "-e", "B=${env:X}", "--", "cmd"],
    ["--log-level", "DEBUG", "--log-format", "json", "--", "cmd"],
    ["--user", "app", "--watch", "--", "cmd"],
    ["--user=1000:1000", "--", "cmd"],
    ["--watch", "--listen", "tcp://127.0.0.1:8080", "--listen=unix:/run/a.sock", "--", "cmd"],
]


@pytest.mark.parametrize("args", CASES)
def test_fast_parser_matches_click(args, monkeypatch):
    from secretrun import cli

    seen = {}
    monkeypatch.setattr(cli, "run_options", lambda opts: seen.setdefault("opts", opts) and 0)
    monkeypatch.setattr(cli, "_exit", lambda code: None)
    fast = parse_fast(args, environ={})
    cli.main(list(args))
    assert fast == seen["opts"]


@pytest.mark.parametrize("args", [["check"], ["--help"], ["--version"], ["--"], ["-m"], ["--bogus", "--", "x"],
                                  ["-e", "novalue", "--", "x"], ["--log-level", "loud", "--", "x"], []])
def test_fast_parser_leaves_the_rest_to_click(args):
    assert parse_fast(args, environ={}) is None


def test_environment_defaults():
    opts = parse_fast(["--", "x"], environ={"SECRETRUN_MANIFEST": "/m.toml", "SECRETRUN_PROFILE": "p"})
    assert opts == Options("/m.toml", "p", argv=("x",))


def test_builtin_table_matches_the_entry_points():
    declared = {ep.name: ep.value for ep in entry_points(group=providers.GROUP)}
    assert declared == providers.BUILTIN


def test_exec_path_imports_no_sdk_and_no_click(manifest, tmp_path):
    (tmp_path / ".env").write_text("A=1\n")
    manifest("""
        version = 1
        [providers.local]
        type = "dotenv"
        [providers.vault]
        type = "vault"
        [env]
        A = "${local:A}"
    """)
    probe = ("import sys, runpy; sys.argv = ['secretrun', '--', 'true']; import os; "
             "os.execvpe = lambda *a: (print(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('click','hvac','boto3','botocore','google','azure','logging','dataclasses','concurrent'))), "
             "sys.exit(0)); from secretrun.launch import main; main()")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_unknown_type_lists_valid_types():
    from secretrun.errors import ProviderConfigError

    with pytest.raises(ProviderConfigError, match="Valid types: .*vault"):
        providers.load("hashivault")


def test_missing_sdk_names_the_extra(monkeypatch):
    from secretrun.errors import ProviderConfigError

    monkeypatch.setitem(providers.BUILTIN, "vault", "secretrun_no_such_module:VaultProvider")
    monkeypatch.delitem(providers._loaded, "vault", raising=False)
    with pytest.raises(ProviderConfigError, match=r"pip install 'secretrun-cli\[vault\]'"):
        providers.load("vault")


def test_crash_handler_shows_type_and_place_never_the_message(capsys):
    from secretrun.app import report

    try:
        {}["canary-value-in-a-key-error"]
    except KeyError as exc:
        code = report(exc)
    err = capsys.readouterr().err
    assert code == 1 and "internal error: KeyError at test_launch.py" in err
    assert "canary-value-in-a-key-error" not in err


def test_unreadable_dotenv_is_a_clear_error(manifest, secretrun, tmp_path):
    (tmp_path / "env-dir").mkdir()
    manifest("""
        version = 1
        [providers.local]
        type = "dotenv"
        path = "env-dir"
        [env]
        A = "${local:A}"
    """)
    run = secretrun("--", "true")
    assert run.code == 78 and "env-dir is a directory, not a file" in run.stderr
