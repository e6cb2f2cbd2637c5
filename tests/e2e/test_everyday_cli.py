"""The command line a user types every day: typos, help, completion, and the
messages of the mistakes everybody makes once, each as typed."""

from __future__ import annotations

import os
import sys

from tests.conftest import CANARY, ROOT, assert_no_canary

SPY = """
version = 1
[providers.files]
type = "file"
path = "{dir}"
[env]
SECRET = "${{files:secret}}"
"""


def test_a_typo_is_a_suggestion_and_resolves_nothing(manifest, secretrun, secrets_dir, tmp_path):
    manifest(SPY.format(dir=secrets_dir) + 'AUDIT = "x"\n[settings]\naudit_log = "audit.jsonl"\n')
    run = secretrun("chekc")
    assert run.code == 2
    assert "did you mean `secretrun check`?" in run.stderr and "secretrun -- chekc" in run.stderr
    assert not (tmp_path / "audit.jsonl").exists()  # nothing was resolved: no access was logged
    run = secretrun("-p", "prod", "evn", "--reveal")
    assert run.code == 2 and "did you mean `secretrun env`?" in run.stderr
    assert_no_canary(run.stdout, run.stderr)


def test_a_program_needs_dashdash_and_is_told_how(manifest, secretrun, secrets_dir):
    manifest(SPY.format(dir=secrets_dir))
    run = secretrun("-m", "secretrun.toml", "printenv", "SECRET")
    assert run.code == 2
    assert "put -- before it: secretrun -m secretrun.toml -- printenv SECRET" in run.stderr
    run = secretrun("-m", "secretrun.toml", "--", "printenv", "SECRET")
    assert run.code == 0 and run.stdout.strip() == CANARY
    run = secretrun("run", "printenv", "SECRET")  # `run` says it: no -- needed
    assert run.code == 0 and run.stdout.strip() == CANARY


def test_a_misspelt_option_is_named_not_taken_for_a_command(manifest, secretrun, secrets_dir):
    manifest(SPY.format(dir=secrets_dir))
    run = secretrun("--profle", "prod", "--", "true")
    assert run.code == 2 and "No such option '--profle'. Did you mean '--profile'?" in run.stderr
    run = secretrun("--watch", "-mfoo.toml", "--format=json", "chekc")
    assert run.code == 2 and "did you mean `secretrun check`?" in run.stderr
    assert secretrun("--format", "json", "check").code == 0   # a command's option before its name


def test_top_level_help_lists_the_shared_options(secretrun):
    out = secretrun("--help").stdout
    shared = out[out.index("Shared options"):out.index("Commands:")]
    for option in ("-m, --manifest PATH", "-p, --profile NAME", "-e NAME=VALUE", "--watch / --no-watch",
                   "--log-level", "--log-format"):
        assert option in shared
    assert "secretrun [OPTIONS] -- COMMAND [ARG]..." in out


def complete(secretrun, words: str, env=None):
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    run = secretrun(env={"COMP_WORDS": words, "COMP_CWORD": str(cword), "_SECRETRUN_COMPLETE": "bash_complete",
                         **(env or {})})
    assert run.code == 0, run.stderr
    return [tuple(line.split(",", 1)) for line in run.stdout.splitlines()]


def test_completion_after_dashdash_gives_programs_then_files(secretrun, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("gunicorn", "gulp"):
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    path = str(bin_dir)
    assert complete(secretrun, "secretrun -- gu", {"PATH": path}) == [("plain", "gulp"), ("plain", "gunicorn")]
    assert complete(secretrun, "secretrun -m app.toml -p prod -- gunicorn ap", {"PATH": path}) == [("file", "ap")]
    assert complete(secretrun, "secretrun -- ./ser") == [("file", "./ser")]


def test_completion_of_manifest_paths_and_commands(secretrun):
    assert complete(secretrun, "secretrun -m secr") == [("file", "secr")]
    assert complete(secretrun, "secretrun check -m ") == [("file", "")]
    assert complete(secretrun, "secretrun init --from-dotenv .e") == [("file", ".e")]
    assert ("plain", "check") in complete(secretrun, "secretrun ch")


def test_completion_script_lets_the_shell_complete_files():
    """click's bash script turns a "file" item into the shell's own file completion."""
    import subprocess

    script = subprocess.run([sys.executable, "-m", "secretrun"], env={"PATH": os.environ["PATH"],
                            "PYTHONPATH": str(ROOT), "_SECRETRUN_COMPLETE": "bash_source"},
                            capture_output=True, text=True, timeout=60).stdout
    assert "compopt -o default" in script


def test_typos_in_keys_types_and_providers_get_suggestions(manifest, secretrun):
    manifest("""
        version = 1
        [settings]
        pol_interval = "5s"
        [providers.vlt]
        type = "vualt"
        [providers.files]
        type = "file"
        [env]
        A = "${vlt:secret/x#y}"
        B = { value = "${files:x}", requird = false }
        C = "${file:x}"
    """)
    run = secretrun("check")
    assert run.code == 78
    assert "unknown key 'settings.pol_interval'; did you mean 'poll_interval'?" in run.stderr
    assert "unknown provider type 'vualt'; did you mean 'vault'?" in run.stderr
    assert "unknown key 'requird'; did you mean 'required'?" in run.stderr
    assert "undeclared provider 'file'; did you mean 'files'?" in run.stderr
    # The provider with a bad type was reported once, not also as "undeclared".
    assert "undeclared provider 'vlt'" not in run.stderr
    assert "(4 problems)" in run.stderr


def test_a_typo_in_a_provider_option_gets_a_suggestion(manifest, secretrun, secrets_dir):
    manifest(f'version = 1\n[providers.files]\ntype = "file"\npth = "{secrets_dir}"\n[env]\nS = "${{files:secret}}"\n')
    run = secretrun("check")
    assert run.code == 78 and "unknown option 'pth'; did you mean 'path'?" in run.stderr


def test_a_dotenv_warning_is_printed_once(manifest, secretrun, tmp_path):
    """The same file as a provider's and as the fallback: one warning."""
    (tmp_path / ".env").write_text(f"A={CANARY}\nB=b\n")
    os.chmod(tmp_path / ".env", 0o644)
    path = manifest("""
        version = 1
        [settings]
        fallback = ".env"
        [providers.local]
        type = "dotenv"
        [env]
        A = "${local:A}"
        B = "${env:NOT_SET_ANYWHERE}"
    """)
    os.chmod(path, 0o600)
    run = secretrun("check")
    assert run.stderr.count("is readable by every user") == 1, run.stderr
    run = secretrun("--", "true")
    assert run.stderr.count("is readable by every user") == 1, run.stderr
    assert_no_canary(run.stdout, run.stderr)


def test_no_python_class_names_in_a_fallback_warning(manifest, secretrun, tmp_path):
    (tmp_path / ".env").write_text("DB=x\n")
    os.chmod(tmp_path / ".env", 0o600)
    manifest("""
        version = 1
        [settings]
        fallback = ".env"
        retries = 0
        [providers.vault]
        type = "vault"
        address = "http://127.0.0.1:1"
        [env]
        DB = "${vault:secret/db#x}"
    """)
    run = secretrun("--", "true", env={"VAULT_TOKEN": "t"})
    assert run.code == 0, run.stderr
    assert "DB: using the fallback file .env, because store unreachable: " in run.stderr
    for name in ("(Unavailable)", "Unavailable:", "Denied", "ConnectionError"):
        assert name not in run.stderr


# --- Vault's 403s, told apart --------------------------------------------------------------------

VAULT = """
version = 1
[settings]
retries = 0
[providers.vault]
type = "vault"
[env]
DB = "${vault:secret/app/db#password}"
"""


def test_a_revoked_token_is_not_called_a_missing_policy(bao, manifest, secretrun):
    client = bao.server.client()
    token = client.auth.token.create(policies=["default"], ttl="1h")["auth"]["client_token"]
    client.auth.token.revoke(token)
    manifest(VAULT)
    run = secretrun("check", env={"VAULT_ADDR": bao.url, "VAULT_TOKEN": token})
    assert run.code == 77
    assert "the token is not valid, expired or revoked" in run.stderr and "log in again" in run.stderr
    assert "policies" not in run.stderr


def test_a_missing_policy_is_named_as_such(bao, manifest, secretrun):
    client = bao.server.client()
    token = client.auth.token.create(policies=["default"], ttl="1h")["auth"]["client_token"]
    manifest(VAULT)
    run = secretrun("check", env={"VAULT_ADDR": bao.url, "VAULT_TOKEN": token})
    assert run.code == 77
    assert "the token is valid, but its policies (default) do not grant this path" in run.stderr
    assert "expired" not in run.stderr


def test_https_address_against_plain_http_does_not_advise_ca_cert(bao, manifest, secretrun):
    manifest(VAULT)
    run = secretrun("check", env={"VAULT_ADDR": bao.url.replace("http://", "https://"), "VAULT_TOKEN": bao.root})
    assert run.code == 69
    assert "does not speak TLS" in run.stderr and "use an http:// address" in run.stderr
    assert "ca_cert" not in run.stderr


def test_errors_in_log_lines_are_words_not_class_names():
    """What watch and supervise log for a failed refresh or revoke."""
    from secretrun.errors import Denied, NotFound, Unavailable, describe

    assert describe(Unavailable("reading a: cannot connect")) == "store unreachable: reading a: cannot connect"
    assert describe(Denied("reading a: permission denied")) == "access denied: reading a: permission denied"
    assert describe(NotFound("a does not exist")) == "not found: a does not exist"
    assert describe(ValueError(CANARY)) == "unexpected error"   # a library's message may quote data


def test_a_watched_dotenv_file_is_warned_about_once_not_at_every_poll(manifest, secretrun, tmp_path):
    (tmp_path / ".env").write_text(f"A={CANARY}\n")
    os.chmod(tmp_path / ".env", 0o644)
    manifest("""
        version = 1
        [settings]
        poll_interval = "100ms"
        [providers.local]
        type = "dotenv"
        [env]
        A = "${local:A}"
    """)
    run = secretrun("--watch", "--", sys.executable, "-c", "import time; time.sleep(1.2)")
    assert run.code == 0, run.stderr
    assert run.stderr.count("is readable by every user") == 1, run.stderr
    assert_no_canary(run.stdout, run.stderr)
