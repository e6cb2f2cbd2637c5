"""The checks the seeds' checklists ask for: secrets that must differ from
each other, profiles that must differ, warn-and-continue for development,
and a lint that needs no store. Each through the real command."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CANARY, ROOT, assert_no_canary, free_port

OTHER = "another-secret-value-0123456789"


def dotenv(path: Path, **values: str) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    os.chmod(path, 0o600)
    return path


# --- unique = true ----------------------------------------------------------------------------

UNIQUE = """
    version = 1
    [providers.local]
    type = "dotenv"
    [env]
    JWT_SECRET_KEY = { value = "${local:JWT}", unique = true }
    SESSION_SECRET = { value = "${local:SESSION}", unique = true }
    CSRF_SECRET = { value = "${local:CSRF}", unique = true }
"""


def test_unique_secrets_that_are_equal_fail_naming_both(tmp_path, manifest, secretrun):
    manifest(UNIQUE)
    dotenv(tmp_path / ".env", JWT=CANARY, SESSION=CANARY, CSRF=OTHER)
    for args in (("check",), ("check", "--format", "json")):
        run = secretrun(*args)
        assert run.code == 65, run
        text = run.stdout + run.stderr
        assert "JWT_SECRET_KEY" in text and "has the same value as SESSION_SECRET" in text
        assert "CSRF_SECRET" not in run.stderr
        assert_no_canary(run.stdout, run.stderr)
    run = secretrun(child=True)
    assert run.code == 65 and not (tmp_path / "child-env.json").exists()
    assert_no_canary(run.stdout, run.stderr)


def test_unique_secrets_that_differ_pass(tmp_path, manifest, secretrun):
    manifest(UNIQUE)
    dotenv(tmp_path / ".env", JWT=CANARY, SESSION=OTHER, CSRF="third-value")
    run = secretrun(child=True)
    assert run.code == 0, run
    assert run.child_env["JWT_SECRET_KEY"] == CANARY and run.child_env["SESSION_SECRET"] == OTHER


# --- --distinct-from ---------------------------------------------------------------------------

PROFILES = """
    version = 1
    [providers.local]
    type = "dotenv"
    [env]
    DB_PASSWORD = "${local:DB_PASSWORD}"
    API_KEY = "${local:API_KEY}"
    LOG_LEVEL = "debug"
    [profiles.development.providers.local]
    path = ".env.development"
    [profiles.production.providers.local]
    path = ".env.production"
    [profiles.production.env]
    LOG_LEVEL = "%s"
"""


def test_profiles_that_must_differ(tmp_path, manifest, secretrun):
    manifest(PROFILES % "debug")
    dotenv(tmp_path / ".env.development", DB_PASSWORD=CANARY, API_KEY="dev-key")
    dotenv(tmp_path / ".env.production", DB_PASSWORD=CANARY, API_KEY="prod-key")
    run = secretrun("check", "-p", "production", "--distinct-from", "development", "--format", "json")
    assert run.code == 65, run
    problems = {p["variable"]: p for p in json.loads(run.stdout)["problems"]}
    assert set(problems) == {"DB_PASSWORD", "LOG_LEVEL"}      # a literal counts too
    assert problems["DB_PASSWORD"]["reference"] == "${local:DB_PASSWORD} / ${local:DB_PASSWORD}"
    assert "profile 'production'" in problems["DB_PASSWORD"]["message"]
    assert "profile 'development'" in problems["DB_PASSWORD"]["message"]
    assert_no_canary(run.stdout, run.stderr)

    table = secretrun("check", "-p", "production", "--distinct-from", "development")
    assert table.code == 65 and "DB_PASSWORD" in table.stderr and "API_KEY" not in table.stderr
    assert_no_canary(table.stdout, table.stderr)


def test_profiles_that_differ_pass(tmp_path, manifest, secretrun):
    manifest(PROFILES % "info")
    dotenv(tmp_path / ".env.development", DB_PASSWORD="dev-password", API_KEY="dev-key")
    dotenv(tmp_path / ".env.production", DB_PASSWORD=CANARY, API_KEY="prod-key")
    run = secretrun("check", "-p", "production", "--distinct-from", "development")
    assert run.code == 0, run
    assert_no_canary(run.stdout, run.stderr)


def test_distinct_from_a_profile_that_does_not_exist(tmp_path, manifest, secretrun):
    manifest(PROFILES % "info")
    dotenv(tmp_path / ".env.development", DB_PASSWORD="a", API_KEY="b")
    dotenv(tmp_path / ".env.production", DB_PASSWORD="c", API_KEY="d")
    run = secretrun("check", "-p", "production", "--distinct-from", "staging")
    assert run.code == 78 and "profile 'staging' does not exist" in run.stderr


# --- on_missing = "warn" -----------------------------------------------------------------------

WARN = """
    version = 1
    [settings]
    on_missing = "warn"
    [providers.local]
    type = "dotenv"
    [env]
    PRESENT = "${local:PRESENT}"
    ABSENT = "${local:ABSENT}"
"""


def test_warn_and_continue_on_a_missing_secret(tmp_path, manifest, secretrun):
    manifest(WARN)
    dotenv(tmp_path / ".env", PRESENT=CANARY)
    run = secretrun(child=True)
    assert run.code == 0, run
    assert run.child_env["PRESENT"] == CANARY and "ABSENT" not in run.child_env
    assert run.stderr.count('left unset (on_missing = "warn")') == 1 and "ABSENT" in run.stderr
    check = secretrun("check", "--format", "json")
    assert check.code == 0
    rows = {r["variable"]: r["status"] for r in json.loads(check.stdout)["variables"]}
    assert rows == {"PRESENT": "ok", "ABSENT": "missing (warn)"}
    assert_no_canary(run.stdout, run.stderr, check.stdout, check.stderr)


def test_warn_never_covers_a_store_that_is_down(tmp_path, manifest, secretrun):
    manifest(f"""
        version = 1
        [settings]
        on_missing = "warn"
        retries = 0
        timeout = "2s"
        [providers.vault]
        type = "vault"
        address = "http://127.0.0.1:{free_port()}"
        auth = {{ token = "t" }}
        [env]
        DB = "${{vault:secret/app#db}}"
    """)
    run = secretrun(child=True)
    assert run.code == 69, run


def test_strict_refuses_warn(tmp_path, manifest, secretrun):
    manifest(WARN.replace('on_missing = "warn"', 'on_missing = "warn"\nstrict = true'))
    run = secretrun(child=True)
    assert run.code == 78 and "strict" in run.stderr


# --- strict with a fallback ---------------------------------------------------------------------

def test_a_strict_profile_turns_the_base_fallback_off(tmp_path, manifest, secretrun):
    manifest("""
        version = 1
        [settings]
        fallback = ".env"
        [providers.local]
        type = "dotenv"
        path = "store.env"
        [env]
        DB_PASSWORD = "${local:DB_PASSWORD}"
        [profiles.production.settings]
        strict = true
    """)
    dotenv(tmp_path / "store.env", OTHER="x")
    dotenv(tmp_path / ".env", DB_PASSWORD=CANARY)
    laptop = secretrun(child=True)
    assert laptop.code == 0 and laptop.child_env["DB_PASSWORD"] == CANARY
    production = secretrun("-p", "production", child=True)
    assert production.code == 1 and "DB_PASSWORD" in production.stderr, production
    assert_no_canary(laptop.stdout, laptop.stderr, production.stdout, production.stderr)


# --- providers declared but not used, and providers that cannot be built ------------------------

def test_an_unused_provider_with_an_unknown_option_is_refused(tmp_path, manifest, secretrun):
    manifest("""
        version = 1
        [providers.loc]
        type = "dotenv"
        colour = "red"
        [env]
        GREETING = "hello"
    """)
    run = secretrun(child=True)
    assert run.code == 78 and "provider 'loc' (type dotenv): unknown option 'colour'" in run.stderr, run


def test_check_shows_variables_of_a_broken_provider_as_not_resolved(tmp_path, manifest, secretrun):
    manifest("""
        version = 1
        [providers.files]
        type = "file"
        trim = "sideways"
        [env]
        TOKEN = { value = "${files:token}", required = false }
    """)
    run = secretrun("check", "--format", "json")
    assert run.code == 78
    row = json.loads(run.stdout)["variables"][0]
    assert row["variable"] == "TOKEN" and row["status"] == "error" and row["provider"] == "files"


# --- check --offline -----------------------------------------------------------------------------

LINTED = """
    version = 1
    [providers.vault]
    type = "vault"
    address = "https://vault.internal:8200"
    auth = { method = "approle", role_id_file = "/run/secrets/role-id" }
    [providers.aws]
    type = "aws-secretsmanager"
    region = "eu-west-1"
    [env]
    DB = "${vault:secret/app#db}"
    API = "${aws:prod/api}"
    [profiles.staging.providers.aws]
    regoin = "eu-west-2"
    [profiles.staging.providers.gcp]
    type = "gcp-secretmanager"
    insecure = "yes"
"""


def test_offline_check_contacts_nothing_and_imports_no_sdk(tmp_path, manifest):
    manifest(LINTED)
    code = ("import sys, json; from secretrun.cli import main\n"
            "rc = main(['check', '--offline', '--format', 'json'])\n"
            "sdks = [m for m in ('hvac', 'boto3', 'botocore', 'google.cloud', 'azure') if m in sys.modules]\n"
            "print(json.dumps({'rc': rc, 'sdks': sdks}))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)},
                          timeout=60)
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    assert last == {"rc": 0, "sdks": []}, proc


def test_offline_check_of_every_profile_finds_what_a_profile_breaks(tmp_path, manifest, secretrun):
    manifest(LINTED)
    assert secretrun("check", "--offline").code == 0
    run = secretrun("check", "--offline", "--all-profiles", "--format", "json")
    assert run.code == 78, run
    report = json.loads(run.stdout)
    by_profile = {p["profile"]: p for p in report["profiles"]}
    assert by_profile[None]["ok"] and not by_profile["staging"]["ok"]
    messages = " ".join(p["message"] for p in by_profile["staging"]["problems"])
    assert "unknown option 'regoin'; did you mean 'region'?" in messages
    assert "'insecure' must be true or false" in messages           # an unused provider, too
    assert report["not_checked"]
    table = secretrun("check", "--offline", "--all-profiles")
    assert table.code == 78 and "base manifest: ok" in table.stdout and "profile staging: 2 problem" in table.stdout


def test_offline_check_reports_a_broken_manifest_with_every_problem(tmp_path, manifest, secretrun):
    manifest("""
        version = 1
        [settings]
        pol_interval = "5s"
        [env]
        A = "${nowhere:x}"
    """)
    run = secretrun("check", "--offline", "--format", "json")
    assert run.code == 78
    messages = " ".join(p["message"] for p in json.loads(run.stdout)["profiles"][0]["problems"])
    assert "pol_interval" in messages and "undeclared provider 'nowhere'" in messages


def test_offline_goes_with_neither_values_nor_one_profile(tmp_path, manifest, secretrun):
    manifest("version = 1\n")
    assert secretrun("check", "--all-profiles").code == 2
    assert secretrun("check", "--offline", "--distinct-from", "x").code == 2


@pytest.mark.parametrize("path", sorted(str(p.relative_to(ROOT)) for p in
                                        list(ROOT.glob("examples/**/*.toml")) + list(ROOT.glob("systemd/*.toml"))))
def test_every_shipped_manifest_passes_the_offline_check(path, secretrun):
    # As a CI job would run it before a deploy: no store, every profile.
    run = secretrun("-m", str(ROOT / path), "check", "--offline", "--all-profiles")
    assert run.code == 0, run


def test_the_offline_option_table_matches_what_each_provider_reads():
    # providers/options.py lists each built-in's options so that no SDK is
    # needed to check them; this keeps it equal to the options from_config reads.
    import re

    from secretrun.providers.options import SPECS

    modules = {"env": ["env"], "dotenv": ["dotenv"], "file": ["file"], "vault": ["vault/provider"],
               "aws-secretsmanager": ["aws_common", "aws_secretsmanager"], "aws-ssm": ["aws_common", "aws_ssm"],
               "gcp-secretmanager": ["gcp_secretmanager/provider"], "azure-keyvault": ["azure_keyvault/provider"],
               "kubernetes": ["kubernetes"]}
    assert set(modules) == set(SPECS)
    for ptype, names in modules.items():
        source = "".join((ROOT / "secretrun" / "providers" / f"{n}.py").read_text() for n in names)
        read = set(re.findall(r"opts\.(?:str|bool|number|table|list)\(\"(\w+)\"", source))
        read |= set(re.findall(r"opts\.seen\.add\(\"(\w+)\"\)", source))
        assert read == set(SPECS[ptype]), ptype
