"""The real ``secretrun`` command: a manifest, a command, what the child saw."""

import json
import os
import stat
import sys
import textwrap

import pytest

from tests.conftest import CANARY, assert_no_canary


@pytest.fixture
def app(tmp_path, manifest):
    """A dotenv-backed app directory with the canary among its values."""
    (tmp_path / ".env").write_text(textwrap.dedent(f"""\
        DB_PASSWORD="{CANARY}"
        export API_KEY='key-1234567890'
        MULTI="line one
        line two"
        QUOTED="a \\"quoted\\" value"
        JSON_BLOB='{{"user": "app", "port": 5432, "tls": true, "nested": {{"pw": "{CANARY}"}}, "none": null}}'
        """))
    return manifest


def test_exec_gives_the_child_the_manifest_environment(app, secretrun):
    app("""
        version = 1
        [providers.local]
        type = "dotenv"
        [env]
        DATABASE_URL = "postgres://app:${local:DB_PASSWORD}@db:5432/app"
        API_KEY = "${local:API_KEY}"
        MULTI = "${local:MULTI}"
        QUOTED = "${local:QUOTED}"
        DB_USER = "${local:JSON_BLOB#user}"
        DB_PORT = "${local:JSON_BLOB#port}"
        DB_TLS = "${local:JSON_BLOB#tls}"
        NESTED = "${local:JSON_BLOB#nested.pw}"
        NOTHING = "${local:JSON_BLOB#none}"
        PRICE = "$$5"
        LOG_LEVEL = "info"
    """)
    run = secretrun(child=True, env={"INHERITED": "yes"})
    assert run.code == 0, run
    env = run.child_env
    assert env["DATABASE_URL"] == f"postgres://app:{CANARY}@db:5432/app"
    assert env["API_KEY"] == "key-1234567890"
    assert env["MULTI"] == "line one\nline two"
    assert env["QUOTED"] == 'a "quoted" value'
    assert (env["DB_USER"], env["DB_PORT"], env["DB_TLS"], env["NOTHING"]) == ("app", "5432", "true", "")
    assert env["NESTED"] == CANARY
    assert env["PRICE"] == "$5" and env["LOG_LEVEL"] == "info"
    assert env["INHERITED"] == "yes"
    assert_no_canary(run.stdout, run.stderr)


def test_exec_replaces_secretrun(manifest, secretrun, tmp_path):
    manifest("version = 1\n")
    out = tmp_path / "pid"
    script = f"import os; open({str(out)!r}, 'w').write(f'{{os.getpid()}} {{os.getppid()}}')"
    import subprocess
    proc = subprocess.Popen([sys.executable, "-m", "secretrun", "--", sys.executable, "-c", script],
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.wait(30) == 0
    pid, ppid = out.read_text().split()
    assert int(pid) == proc.pid  # same process: no Python left in between
    assert int(ppid) == os.getpid()


def test_exit_codes_pass_through(manifest, secretrun):
    manifest("version = 1\n")
    assert secretrun("--", "sh", "-c", "exit 42").code == 42
    assert secretrun("--", "sh", "-c", "kill -TERM $$").code == -15  # the command itself died of SIGTERM
    run = secretrun("--", "no-such-command-xyz")
    assert run.code == 127 and "command not found: no-such-command-xyz" in run.stderr
    run = secretrun("--", "/etc/hostname")
    assert run.code == 126 and "not executable" in run.stderr
    assert secretrun("--").code == 2
    assert secretrun("run").code == 2


def test_all_missing_secrets_are_reported_at_once(app, secretrun):
    app("""
        version = 1
        [providers.local]
        type = "dotenv"
        [env]
        A = "${local:NOPE}"
        B = "${local:ALSO_NOPE}"
        C = "${local:DB_PASSWORD#field}"
        D = "${local:JSON_BLOB#missing.key}"
        OK = "${local:API_KEY}"
    """)
    run = secretrun(child=True)
    assert run.code == 1
    for text in ("A: NOPE is not set", "B: ALSO_NOPE", "C: secret ${local:DB_PASSWORD} is not JSON",
                 "D: secret ${local:JSON_BLOB} has no field 'missing'"):
        assert text in run.stderr
    assert "Traceback" not in run.stderr
    assert_no_canary(run.stdout, run.stderr)


def test_validation_failures_exit_65(app, secretrun):
    app("""
        version = 1
        [providers.local]
        type = "dotenv"
        [env]
        API_KEY = { value = "${local:API_KEY}", min_length = 32 }
        PW = { value = "${local:DB_PASSWORD}", pattern = "^[0-9]+$", forbid = ["changeme"] }
    """)
    run = secretrun(child=True)
    assert run.code == 65
    assert "too short (min_length 32)" in run.stderr and "does not match the pattern" in run.stderr
    assert_no_canary(run.stdout, run.stderr)


def test_strict_refuses_placeholders_and_empty_values(tmp_path, manifest, secretrun):
    (tmp_path / ".env").write_text("A=changeme\nB=\nC=fine-value\n")
    manifest("""
        version = 1
        [settings]
        strict = true
        [providers.local]
        type = "dotenv"
        [env]
        A = "${local:A}"
        B = "${local:B}"
        C = "${local:C}"
        D = { value = "${local:D}", default = "x" }
    """)
    run = secretrun(child=True)
    assert run.code == 1  # D: no default in strict mode, and missing outranks invalid
    assert "A: the value is a well-known placeholder" in run.stderr
    assert "B: the value is empty" in run.stderr
    assert "D: D is not set" in run.stderr


def test_defaults_optional_and_fallback(tmp_path, manifest, secretrun):
    (tmp_path / ".env.fallback").write_text("FROM_FALLBACK=fb-value\n")
    manifest("""
        version = 1
        [settings]
        fallback = ".env.fallback"
        [providers.local]
        type = "dotenv"
        path = "missing.env"
        [providers.files]
        type = "file"
        path = "nowhere"
        [env]
        FROM_FALLBACK = "${local:X}"
        DEFAULTED = { value = "${files:x}", default = "dflt" }
        OPTIONAL = { value = "${files:y}", required = false }
    """)
    run = secretrun(child=True)
    assert run.code == 0, run
    env = run.child_env
    assert env["FROM_FALLBACK"] == "fb-value" and env["DEFAULTED"] == "dflt" and "OPTIONAL" not in env
    assert "FROM_FALLBACK: using the fallback file" in run.stderr


def test_imports_with_prefix_and_normalize(app, tmp_path, secretrun):
    (tmp_path / "config.json").write_text(json.dumps({"db-host": "db", "port": 5432, "debug": False}))
    app("""
        version = 1
        [providers.local]
        type = "dotenv"
        [providers.files]
        type = "file"
        path = "."
        [[import]]
        from = "${files:config.json}"
        prefix = "APP_"
        normalize = true
        [[import]]
        from = "${local:*}"
        prefix = "DOTENV_"
        [env]
        APP_PORT = "overridden"
    """)
    run = secretrun(child=True)
    assert run.code == 0, run
    env = run.child_env
    assert (env["APP_DB_HOST"], env["APP_PORT"], env["APP_DEBUG"]) == ("db", "overridden", "false")
    assert env["DOTENV_API_KEY"] == "key-1234567890" and env["DOTENV_DB_PASSWORD"] == CANARY


def test_file_provider_trims_one_newline_and_follows_kubernetes_links(tmp_path, manifest, secretrun):
    mount = tmp_path / "mount"
    data = tmp_path / "mount" / "..2026_11_25"
    data.mkdir(parents=True)
    (data / "password").write_text("hunter2-long\n")
    (data / "crlf").write_bytes(b"windows\r\n")
    (data / "twolines").write_text("a\n\n")
    os.symlink("..2026_11_25", mount / "..data")
    for name in ("password", "crlf", "twolines"):
        os.symlink(f"..data/{name}", mount / name)
    manifest(f"""
        version = 1
        [providers.k8s]
        type = "file"
        path = "{mount}"
        [env]
        PASSWORD = "${{k8s:password}}"
        CRLF = "${{k8s:crlf}}"
        TWO = "${{k8s:twolines}}"
        [[import]]
        from = "${{k8s:.}}"
        prefix = "ALL_"
    """)
    run = secretrun(child=True)
    assert run.code == 0, run
    env = run.child_env
    assert (env["PASSWORD"], env["CRLF"], env["TWO"]) == ("hunter2-long", "windows", "a\n")
    assert env["ALL_password"] == "hunter2-long" and "ALL_..data" not in env


def test_file_provider_defaults_to_systemd_credentials(tmp_path, manifest, secretrun):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "db").write_text("from-systemd")
    manifest("""
        version = 1
        [providers.creds]
        type = "file"
        [env]
        DB = "${creds:db}"
    """)
    run = secretrun(child=True, env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert run.child_env["DB"] == "from-systemd"


def test_file_true_delivers_a_private_path(app, tmp_path, secretrun):
    app("""
        version = 1
        [providers.local]
        type = "dotenv"
        [env]
        TLS_KEY = { value = "${local:DB_PASSWORD}", file = true }
    """)
    out = tmp_path / "seen.json"
    script = ("import json,os,stat,sys; p=os.environ['TLS_KEY']; st=os.stat(p); "
              "json.dump({'path': p, 'content': open(p).read(), 'mode': stat.S_IMODE(st.st_mode)}, "
              "open(sys.argv[1], 'w'))")
    run = secretrun("--", sys.executable, "-c", script, str(out))
    assert run.code == 0, run
    seen = json.loads(out.read_text())
    assert seen["content"] == CANARY and seen["mode"] == 0o600
    assert seen["path"].startswith("/proc/")  # an in-memory file: nothing left on disk
    assert_no_canary(run.stdout, run.stderr)


def test_file_true_with_file_dir(app, tmp_path, secretrun):
    target = tmp_path / "secrets"
    target.mkdir()
    app(f"""
        version = 1
        [settings]
        file_dir = "{target}"
        [providers.local]
        type = "dotenv"
        [env]
        TLS_KEY = {{ value = "${{local:DB_PASSWORD}}", file = true }}
    """)
    run = secretrun(child=True)
    path = run.child_env["TLS_KEY"]
    assert path.startswith(str(target)) and open(path).read() == CANARY
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_inherit_env_false_keeps_only_path(manifest, secretrun):
    manifest("""
        version = 1
        [settings]
        inherit_env = false
        [env]
        ONLY = "this"
    """)
    env = secretrun(child=True, env={"OTHER": "x"}).child_env
    assert "OTHER" not in env and env["ONLY"] == "this" and "PATH" in env


def test_extra_variables_are_templates(app, secretrun):
    app("""
        version = 1
        [providers.local]
        type = "dotenv"
        [env]
        A = "from-manifest"
    """)
    run = secretrun("-e", "A=${local:API_KEY}", "-e", "B=plain", child=True)
    assert (run.child_env["A"], run.child_env["B"]) == ("key-1234567890", "plain")


def test_file_vars_convention(tmp_path, manifest, secretrun):
    (tmp_path / "pw").write_text("from-file\n")
    manifest("""
        version = 1
        [settings]
        file_vars = true
    """)
    env = secretrun(child=True, env={"DB_PASSWORD_FILE": str(tmp_path / "pw")}).child_env
    assert env["DB_PASSWORD"] == "from-file"


def test_values_an_environment_cannot_hold(tmp_path, manifest, secretrun):
    (tmp_path / "bin").write_bytes(b"\x00\xff\xfe")
    (tmp_path / "nul").write_bytes(b"abc\x00def")
    (tmp_path / "big").write_text("x" * 200_000)
    manifest("""
        version = 1
        [providers.f]
        type = "file"
        path = "."
        [env]
        BINARY = "${f:bin}"
        NUL = "${f:nul}"
    """)
    run = secretrun(child=True)
    assert run.code == 65
    assert "BINARY: the value is binary" in run.stderr and "use file = true" in run.stderr
    assert "NUL: the value contains a NUL byte" in run.stderr
    manifest("""
        version = 1
        [providers.f]
        type = "file"
        path = "."
        [env]
        BIG = "${f:big}"
    """)
    run = secretrun(child=True)
    assert run.code == 65 and "BIG: the value is larger than the 131072" in run.stderr and "200005" not in run.stderr


def test_manifest_and_profile_from_the_environment(tmp_path, manifest, secretrun):
    path = manifest("""
        version = 1
        [env]
        WHERE = "base"
        [profiles.prod.env]
        WHERE = "prod"
    """, name="elsewhere.toml")
    run = secretrun(child=True, env={"SECRETRUN_MANIFEST": str(path), "SECRETRUN_PROFILE": "prod"})
    assert run.child_env["WHERE"] == "prod"
    run = secretrun("-m", str(path), "-p", "nope", child=True)
    assert run.code == 78 and "profile 'nope' does not exist (profiles: prod)" in run.stderr


def test_check_shows_status_never_values(app, secretrun):
    app("""
        version = 1
        [providers.local]
        type = "dotenv"
        [env]
        DATABASE_URL = "postgres://app:${local:DB_PASSWORD}@db/app"
        MISSING = "${local:NOPE}"
        LITERAL = "not-a-secret"
        OPTIONAL = { value = "${local:NOPE2}", required = false }
    """)
    run = secretrun("check")
    assert run.code == 1
    lines = {line.split()[0]: line for line in run.stdout.splitlines()[1:]}
    assert "ok" in lines["DATABASE_URL"] and "${local:DB_PASSWORD}" in lines["DATABASE_URL"]
    assert "missing" in lines["MISSING"] and "literal" in lines["LITERAL"]
    assert "unset (optional)" in lines["OPTIONAL"]
    assert_no_canary(run.stdout, run.stderr)
    run = secretrun("check", "--format", "json")
    report = json.loads(run.stdout)
    assert report["ok"] is False and report["problems"][0]["variable"] == "MISSING"
    assert {v["variable"]: v["status"] for v in report["variables"]}["DATABASE_URL"] == "ok"
    assert_no_canary(run.stdout, run.stderr)


def test_env_masks_unless_revealed(app, secretrun):
    app("""
        version = 1
        [providers.local]
        type = "dotenv"
        [env]
        PW = "${local:DB_PASSWORD}"
        MULTI = "${local:MULTI}"
        LITERAL = "hard-coded"
    """)
    for fmt in ("dotenv", "json", "shell"):
        run = secretrun("env", "--format", fmt)
        assert run.code == 0 and "PW" in run.stdout and "*****" in run.stdout
        assert "hard-coded" not in run.stdout  # literals may be secrets someone hard-coded
        assert_no_canary(run.stdout, run.stderr)
    assert json.loads(secretrun("env", "--format", "json", "--reveal").stdout)["PW"] == CANARY
    assert f"export PW={CANARY}" in secretrun("env", "--format", "shell", "--reveal").stdout
    dotenv = secretrun("env", "--reveal").stdout
    assert "MULTI='line one\nline two'" in dotenv      # single quotes: no ${} expansion by compose


def test_init_from_dotenv_copies_names_never_values(app, tmp_path, secretrun):
    run = secretrun("init", "--from-dotenv", ".env")
    assert run.code == 0, run
    text = (tmp_path / "secretrun.toml").read_text()
    assert "DB_PASSWORD" in text and CANARY not in text and "key-1234567890" not in text
    assert secretrun("check").code == 0  # the scaffold resolves as written
    assert secretrun("init").code == 1  # never overwrites without --force
    run = secretrun("init", "--from-dotenv", ".env", "--provider", "vault", "--force", "-m", "v.toml")
    assert "${vault:secret/" in (tmp_path / "v.toml").read_text()
    assert "settings.fallback" in (tmp_path / "v.toml").read_text()


def test_debug_and_json_logs_never_show_values(app, secretrun):
    app("""
        version = 1
        [providers.local]
        type = "dotenv"
        [env]
        PW = "${local:DB_PASSWORD}"
        BAD = "${local:NOPE}"
    """)
    for args in (("--log-level", "debug"), ("--log-level", "debug", "--log-format", "json")):
        run = secretrun(*args, child=True)
        assert run.code == 1
        assert_no_canary(run.stdout, run.stderr)
    run = secretrun("--log-format", "json", child=True)
    record = json.loads(run.stderr.strip().splitlines()[-1])
    assert record["exit_code"] == 1 and record["problems"][0]["variable"] == "BAD"


def test_help_and_version(secretrun):
    run = secretrun("--help")
    assert run.code == 0 and "Examples:" in run.stdout and "check" in run.stdout
    run = secretrun("--version")
    assert run.code == 0 and "secretrun" in run.stdout
    assert secretrun("--bogus").code == 2


def test_options_before_the_subcommand(manifest, secretrun, tmp_path):
    path = manifest("version = 1\n[env]\nA = 'x'\n", name="m.toml")
    assert secretrun("-m", str(path), "check").code == 0
    assert secretrun("run", "-m", str(path), "--", "true").code == 0


def test_python_api_resolves_the_manifest_variables(app, tmp_path):
    import secretrun

    path = app("""
        version = 1
        [providers.local]
        type = "dotenv"
        [env]
        PW = "${local:DB_PASSWORD}"
        HOME_FROM = "${env:SOME_VAR}"
    """)
    for _ in range(2):  # twice: the function must stay callable
        env = secretrun.resolve(str(path), environ={"SOME_VAR": "given"})
        assert env == {"PW": CANARY, "HOME_FROM": "given"}
    with pytest.raises(secretrun.ResolutionError) as info:
        secretrun.resolve(str(path), environ={})
    assert info.value.code == 1 and info.value.problems[0].variable == "HOME_FROM"
    assert CANARY not in str(info.value)


def test_credentials_read_for_a_store_login_stay_out_of_the_child(tmp_path, manifest, secretrun):
    (tmp_path / "creds.env").write_text("A=1\n")
    manifest("""
        version = 1
        [providers.local]
        type = "dotenv"
        path = "${env:DOTENV_PATH}"
        [env]
        A = "${local:A}"
    """)
    env = secretrun(child=True, env={"DOTENV_PATH": str(tmp_path / "creds.env")}).child_env
    assert env["A"] == "1" and "DOTENV_PATH" not in env
