"""What users of `doppler run`, `infisical run`, `op run` and envconsul reach
for, and secretrun's answer to each (README, "Conventions from other tools"):
`--env-file`, a manifest on standard input, `.env.example` from a manifest,
and `--command` (answered with `-- sh -c`)."""

from __future__ import annotations

import os
import re

import pytest

from tests.conftest import CANARY, ROOT, assert_no_canary


def dotenv(path, text: str, mode: int = 0o600):
    path.write_text(text)
    os.chmod(path, mode)
    return path


# --- --env-file ------------------------------------------------------------------------------------


def test_env_file_without_a_manifest(secretrun, tmp_path):
    dotenv(tmp_path / "app.env", f'API_KEY="{CANARY}"\nexport LOG_LEVEL=debug\n')
    run = secretrun("--env-file", "app.env", child=True)
    assert run.code == 0, run.stderr
    assert run.child_env["API_KEY"] == CANARY and run.child_env["LOG_LEVEL"] == "debug"
    assert_no_canary(run.stdout, run.stderr)
    run = secretrun("check", "--env-file", "app.env")
    assert run.code == 0 and re.search(r"API_KEY\s+env-file\s+\$\{env-file:\*\}\s+ok", run.stdout), run.stdout
    run = secretrun("env", "--env-file", "app.env")
    assert run.code == 0 and "API_KEY='*****'" in run.stdout
    assert_no_canary(run.stdout, run.stderr)


def test_env_file_beside_a_manifest_and_its_precedence(secretrun, manifest, tmp_path):
    """Inherited < --env-file < [env] < -e; later --env-file files win."""
    dotenv(tmp_path / "one.env", "A=one\nB=one\nC=one\nD=one\n")
    dotenv(tmp_path / "two.env", "B=two\n")
    manifest('version = 1\n[env]\nC = "manifest"\n')
    run = secretrun("--env-file", "one.env", "--env-file=two.env", "-e", "D=flag", child=True,
                    env={"A": "inherited"})
    assert run.code == 0, run.stderr
    assert [run.child_env[k] for k in "ABCD"] == ["one", "two", "manifest", "flag"]


def test_env_file_is_checked_like_any_dotenv_file(secretrun, tmp_path):
    dotenv(tmp_path / "app.env", f"K={CANARY}\n", mode=0o644)
    run = secretrun("--env-file", "app.env", "--", "true")
    assert run.code == 0 and "app.env is readable by every user" in run.stderr
    run = secretrun("--env-file", "missing.env", "--", "true")
    assert run.code != 0 and "missing.env" in run.stderr
    dotenv(tmp_path / "bad.env", "K=unterminated 'quote\nthis is not a line\n")
    run = secretrun("--env-file", "bad.env", "--", "true")
    assert run.code != 0 and "bad.env" in run.stderr and "Traceback" not in run.stderr


def test_an_explicit_manifest_is_still_required(secretrun, tmp_path):
    dotenv(tmp_path / "app.env", "K=v\n")
    run = secretrun("-m", "nope.toml", "--env-file", "app.env", "--", "true")
    assert run.code == 78 and "manifest not found" in run.stderr


def test_env_file_fast_parser_agrees_with_click(monkeypatch):
    from secretrun import cli
    from secretrun.launch import parse_fast

    args = ["--env-file", "a.env", "--env-file=b.env", "-m", "x.toml", "--", "cmd"]
    seen = {}
    monkeypatch.setattr(cli, "run_options", lambda opts: seen.setdefault("opts", opts) and 0)
    monkeypatch.setattr(cli, "_exit", lambda code: None)
    cli.main(list(args))
    assert parse_fast(args, environ={}) == seen["opts"]
    assert seen["opts"].env_files == ("a.env", "b.env")


# --- -m - -----------------------------------------------------------------------------------------


def test_manifest_on_standard_input(secretrun, tmp_path):
    dotenv(tmp_path / ".env", f"PW={CANARY}\n")
    text = 'version = 1\n[providers.local]\ntype = "dotenv"\n[env]\nPW = "${local:PW}"\nMODE = "stdin"\n'
    run = secretrun("-m", "-", input=text, child=True)   # .env: relative to the working directory
    assert run.code == 0, run.stderr
    assert run.child_env["PW"] == CANARY and run.child_env["MODE"] == "stdin"
    run = secretrun("check", "-m", "-", input=text)
    assert run.code == 0 and "PW" in run.stdout
    assert_no_canary(run.stdout, run.stderr)


def test_manifest_on_standard_input_names_it_in_errors(secretrun):
    run = secretrun("-m", "-", "--", "true", input="version = \n")
    assert run.code == 78 and "<stdin>: TOML syntax error" in run.stderr
    run = secretrun("check", "-m", "-", input='version = 1\n[env]\nA = "${nope:x}"\n')
    assert run.code == 78 and "<stdin>" in run.stderr and "undeclared provider 'nope'" in run.stderr


# --- secretrun example ----------------------------------------------------------------------------


def test_example_writes_names_and_descriptions_never_values(secretrun, manifest):
    manifest(f"""
        version = 1
        [providers.v]
        type = "vault"
        [env]
        DATABASE_URL = {{ value = "${{v:secret/app#url}}", description = "the app's Postgres URL" }}
        HARD_CODED = "{CANARY}"
        WITH_DEFAULT = {{ value = "${{v:secret/app#x}}", default = "{CANARY}", required = false }}
        [[import]]
        from = "${{v:secret/app/config}}"
        prefix = "APP_"
    """)
    run = secretrun("example")
    assert run.code == 0, run.stderr
    assert "# the app's Postgres URL\nDATABASE_URL=\n" in run.stdout
    assert "HARD_CODED=\n" in run.stdout and "# optional\nWITH_DEFAULT=\n" in run.stdout
    assert "every key of ${v:secret/app/config}, prefixed APP_" in run.stdout
    assert_no_canary(run.stdout, run.stderr)


def test_the_quick_starts_env_example_is_what_example_writes(secretrun):
    """The repository's .env.example names exactly the variables the
    manifest sets from .env."""
    quickstart = ROOT / "examples" / "quickstart"
    run = secretrun("example", cwd=quickstart)
    assert run.code == 0, run.stderr
    written = re.findall(r"^([A-Z_]+)=", run.stdout, re.M)
    shipped = re.findall(r"^([A-Z_]+)=", (quickstart / ".env.example").read_text(), re.M)
    assert set(shipped) <= set(written) and "API_KEY" in shipped and "DATABASE_URL" in shipped
    # No store is contacted: a Vault profile needs no Vault (nor hvac's import).
    assert secretrun("example", "-p", "vault", cwd=quickstart).code == 0


# --- --command --------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["--command", "echo hi"], ["run", "--command=echo hi"]])
def test_command_string_is_answered_with_sh_c(secretrun, manifest, tmp_path, args):
    manifest('version = 1\n[settings]\naudit_log = "audit.jsonl"\n[env]\nA = "${env:HOME}"\n')
    run = secretrun(*args)
    assert run.code == 2 and "secretrun [OPTIONS] -- sh -c 'COMMAND LINE'" in run.stderr
    assert not (tmp_path / "audit.jsonl").exists()
    run = secretrun("--", "sh", "-c", "echo $A && exec true")
    assert run.code == 0 and run.stdout.strip() == str(tmp_path)
