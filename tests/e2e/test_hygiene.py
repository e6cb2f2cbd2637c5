"""Credential hygiene: files others can change are refused, files others
can read are reported, login credentials stay away from the child."""

import json
import os

from tests.conftest import CANARY, assert_no_canary

DOTENV_MANIFEST = """
    version = 1
    [providers.local]
    type = "dotenv"
    [env]
    PW = "${local:PW}"
"""


def test_a_manifest_others_can_write_is_refused(manifest, secretrun):
    path = manifest("version = 1\n")
    os.chmod(path, 0o666)
    run = secretrun("--", "true")
    assert run.code == 78 and "is writable by every user (mode 0666)" in run.stderr
    os.chmod(path, 0o664)
    os.chown(path, os.getuid(), 4242)
    run = secretrun("--", "true")
    assert run.code == 78 and "writable by group 4242 (mode 0664); chmod g-w it" in run.stderr


def test_a_dotenv_file_others_can_write_is_refused_and_readable_warns(tmp_path, manifest, secretrun):
    manifest(DOTENV_MANIFEST)
    env = tmp_path / ".env"
    env.write_text(f"PW={CANARY}\n")
    os.chmod(env, 0o600)
    run = secretrun(child=True)
    assert run.code == 0 and run.stderr == ""
    os.chmod(env, 0o644)
    run = secretrun(child=True)
    assert run.code == 0 and "is readable by every user (mode 0644); chmod o-r" in run.stderr
    os.chmod(env, 0o646)
    run = secretrun(child=True)
    assert run.code == 78 and "writable by every user" in run.stderr
    assert_no_canary(run.stdout, run.stderr)


def test_check_reports_readable_files_and_credentials_passed_on(tmp_path, manifest, secretrun):
    path = manifest("""
        version = 1
        [providers.local]
        type = "dotenv"
        path = "${env:DOTENV_PATH}"
        [env]
        PW = "${local:PW}"
        DOTENV_PATH = "${env:DOTENV_PATH}"
    """)
    os.chmod(path, 0o644)
    env = tmp_path / "values.env"
    env.write_text(f"PW={CANARY}\n")
    os.chmod(env, 0o640)
    run = secretrun("check", "--format", "json", env={"DOTENV_PATH": str(env)})
    report = json.loads(run.stdout)
    assert run.code == 0 and report["ok"]
    assert any("manifest" in w and "readable by every user" in w for w in report["warnings"])
    assert any(w.startswith("DOTENV_PATH was read by secretrun to log in") for w in report["warnings"])
    assert not any("values.env" in w for w in report["warnings"])  # 0640: not readable by others
    run = secretrun("check", env={"DOTENV_PATH": str(env)})
    assert "warning: DOTENV_PATH was read by secretrun" in run.stderr
    assert_no_canary(run.stdout, run.stderr)


def test_file_true_values_live_in_a_private_directory(manifest, secretrun, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # world-writable, like /tmp
    (tmp_path / ".env").write_text(f"PW={CANARY}\n")
    os.chmod(tmp_path / ".env", 0o600)
    manifest(f"""
        version = 1
        [settings]
        file_dir = "{shared}"
        [providers.local]
        type = "dotenv"
        [env]
        PW = {{ value = "${{local:PW}}", file = true }}
    """)
    path = secretrun(child=True).child_env["PW"]
    directory = os.path.dirname(path)
    assert os.path.dirname(directory) == str(shared)  # a private subdirectory, never the shared one
    assert oct(os.stat(directory).st_mode & 0o777) == oct(0o700)
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o600)


def test_audit_log_records_accesses_and_changes_without_values(tmp_path, manifest, secretrun, secrets_dir):
    from tests.watch_fixtures import Watched, manifest_text, rotate, wait_for

    (tmp_path / ".env").write_text(f"PW={CANARY}\nJSON={{\"user\": \"app\", \"pw\": \"{CANARY}\"}}\n")
    os.chmod(tmp_path / ".env", 0o600)
    manifest("""
        version = 1
        [settings]
        audit_log = "audit.jsonl"
        [providers.local]
        type = "dotenv"
        [env]
        PW = "${local:PW}"
        USER = "${local:JSON#user}"
        JSON_PW = "${local:JSON#pw}"
        GONE = "${local:NOPE}"
    """)
    run = secretrun(child=True)
    assert run.code == 1
    log = (tmp_path / "audit.jsonl").read_text()
    assert_no_canary(log)
    records = [json.loads(line) for line in log.splitlines()]
    by_ref = {r["reference"]: r for r in records}
    assert by_ref["${local:JSON}"]["variables"] == ["USER", "JSON_PW"] and by_ref["${local:JSON}"]["outcome"] == "ok"
    assert by_ref["${local:NOPE}"]["outcome"] == "missing" and "NOPE is not set" in by_ref["${local:NOPE}"]["error"]
    assert all(r["event"] == "access" and "duration_ms" in r and r["time"].endswith("Z") for r in records)
    assert oct(os.stat(tmp_path / "audit.jsonl").st_mode & 0o777) == oct(0o600)

    # watching: a change is recorded with the variables and the action
    audit = tmp_path / "watch-audit.jsonl"
    text = manifest_text(secrets_dir, {"audit_log": f'"{audit}"'})
    w = Watched(tmp_path, text)
    try:
        w.records.wait_starts(1)
        rotate(secrets_dir / "secret", "rotated-value-123")
        w.records.wait_starts(2)
        changes = wait_for(lambda: [json.loads(x) for x in audit.read_text().splitlines()
                                    if json.loads(x)["event"] == "change"], what="a change record")
        assert changes[0]["action"] == "restart" and changes[0]["variables"] == ["SECRET"]
        assert_no_canary(audit.read_text())
        assert_no_canary(audit.read_text(), canary="rotated-value-123")
    finally:
        w.close()
