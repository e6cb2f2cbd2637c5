"""The trust boundary, attacked the way an attacker would: as another uid,
through /proc, with planted symlinks and files owned by someone else.

CI runs as root, so each attack runs as ``nobody`` (65534) or a second
numeric uid: a small ``/usr/bin/python3`` trampoline drops to the uid, and
secretrun itself runs on the system interpreter from a world-readable copy
of the checkout (the venv may live under /root, which other users cannot
enter). The system interpreter has no click or python-dotenv: these runs use
the exec path's hand parser and the ``env`` and ``file`` providers.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import CANARY, ROOT, assert_no_canary

NOBODY = 65534
OTHER = 4243                                 # a second uid with no passwd entry
SYSTEM_PYTHON = "/usr/bin/python3"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="attacks as another uid need root to set them up"),
    pytest.mark.skipif(not os.access(SYSTEM_PYTHON, os.X_OK), reason="needs a system interpreter other users can run"),
]

# Drops to uid:gid (no supplementary groups), then execs the rest of argv.
TRAMPOLINE = ("import os, sys; u, g = map(int, sys.argv[1].split(':')); os.setgroups([]); os.setgid(g); "
              "os.setuid(u); os.execvp(sys.argv[2], sys.argv[2:])")


def as_uid(uid: int, gid: int = None) -> list:
    return [SYSTEM_PYTHON, "-c", TRAMPOLINE, f"{uid}:{uid if gid is None else gid}"]


@pytest.fixture(scope="module")
def public():
    """A world-readable copy of the package, and a directory for scripts."""
    base = Path(tempfile.mkdtemp(prefix="secretrun-trust-", dir="/tmp"))
    os.chmod(base, 0o755)
    shutil.copytree(ROOT / "secretrun", base / "secretrun",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for root, dirs, files in os.walk(base):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def home():
    """A working directory in /tmp, mode 0755, owned by ``nobody`` (who runs
    secretrun there)."""
    d = Path(tempfile.mkdtemp(prefix="secretrun-home-", dir="/tmp"))
    os.chown(d, NOBODY, NOBODY)
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def root_home():
    """A working directory root runs secretrun in; ``out/`` belongs to nobody."""
    d = Path(tempfile.mkdtemp(prefix="secretrun-root-", dir="/tmp"))
    os.chmod(d, 0o755)
    (d / "out").mkdir()
    os.chmod(d / "out", 0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def write(path: Path, text: str, owner: int = 0, mode: int = 0o600) -> Path:
    path.write_text(textwrap.dedent(text))
    os.chown(path, owner, owner)
    os.chmod(path, mode)
    return path


def secretrun_as(uid, public, cwd, *args, env=None, timeout=60):
    """``secretrun ARGS`` on the system interpreter, as ``uid`` (None: as root)."""
    prefix = as_uid(uid) if uid is not None else []
    full_env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(public), "LANG": "C.UTF-8", "HOME": str(cwd)}
    full_env.update(env or {})
    return subprocess.run([*prefix, SYSTEM_PYTHON, "-m", "secretrun", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


# --- hole 1: the watched command reads the supervisor ------------------------------

PROBE = """
import json, os, sys
ppid = os.getppid()
out = {"uid": os.getuid()}
for what in ("environ", "mem", "maps"):
    try:
        with open(f"/proc/{ppid}/{what}", "rb") as handle:
            data = handle.read(1 << 20)
        out[what] = "read " + ("WITH THE CREDENTIAL" if sys.argv[2].encode() in data else "without it")
    except OSError as exc:
        out[what] = exc.errno
with open(f"/proc/self/environ", "rb") as handle:
    out["own_environ"] = len(handle.read())
json.dump(out, open(sys.argv[1], "w"))
"""


def test_the_watched_command_cannot_read_the_supervisors_environ_or_memory(public, home):
    """Same uid as the supervisor; the credential is only in the supervisor's
    original environment block (inherit_env = false keeps it from the command)."""
    probe = write(home / "probe.py", PROBE, mode=0o644)
    write(home / "secretrun.toml", """
        version = 1
        [settings]
        inherit_env = false
        [env]
        GREETING = "hello"
    """, owner=NOBODY)
    out = home / "out.json"
    run = secretrun_as(NOBODY, public, home, "--watch", "--", SYSTEM_PYTHON, str(probe), str(out), CANARY,
                       env={"BOOT_TOKEN": CANARY})
    assert run.returncode == 0, run.stderr
    seen = json.loads(out.read_text())
    assert seen["uid"] == NOBODY and seen["own_environ"] > 0
    import errno

    assert seen["environ"] == errno.EACCES
    assert seen["mem"] == errno.EACCES
    assert_no_canary(out.read_text(), run.stdout, run.stderr)


def test_the_command_dies_with_a_supervisor_killed_outright(tmp_path, secretrun):
    pidfile = tmp_path / "child.pid"
    (tmp_path / "secretrun.toml").write_text("version = 1\n")
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8"}
    sup = subprocess.Popen([sys.executable, "-m", "secretrun", "--watch", "--", "/bin/sh", "-c",
                            f"echo $$ > {pidfile}; exec sleep 30"], cwd=tmp_path, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(pidfile.read_text())
        sup.kill()
        sup.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the command outlived its supervisor"
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for an init that does not reap is dead)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# --- hole 2: files owned by someone else are trusted ---------------------------------

def test_a_manifest_another_user_owns_is_refused_even_when_only_they_can_write_it(manifest, secretrun):
    path = manifest("version = 1\n[env]\nX = \"1\"\n")
    os.chown(path, NOBODY, NOBODY)
    os.chmod(path, 0o644)
    run = secretrun("--", "true")
    assert run.code == 78
    assert "secretrun.toml: is owned by uid 65534 (nobody), not by uid 0 (root) or root" in run.stderr
    assert "chown 0 it" in run.stderr
    os.chown(path, 0, 0)
    assert secretrun("--", "true").code == 0


def test_a_manifest_writable_through_a_shared_group_is_refused(manifest, secretrun):
    path = manifest("version = 1\n")
    os.chown(path, 0, NOBODY)
    os.chmod(path, 0o664)
    run = secretrun("--", "true")
    assert run.code == 78 and f"writable by group {NOBODY} (mode 0664); chmod g-w it" in run.stderr


def test_a_manifest_in_a_directory_others_can_write_is_refused(tmp_path, secretrun):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)                  # no sticky bit: anyone can replace the file
    (shared / "secretrun.toml").write_text("version = 1\n")
    run = secretrun("-m", str(shared / "secretrun.toml"), "--", "true")
    assert run.code == 78
    assert f"its directory {shared} is writable by every user without the sticky bit (mode 0777)" in run.stderr
    os.chmod(shared, 0o1777)                 # sticky, owned by root: like /tmp
    assert secretrun("-m", str(shared / "secretrun.toml"), "--", "true").code == 0
    os.chmod(shared, 0o1777)
    os.chown(shared, NOBODY, NOBODY)         # sticky but someone else's
    run = secretrun("-m", str(shared / "secretrun.toml"), "--", "true")
    assert run.code == 78 and "is owned by uid 65534" in run.stderr


def test_dotenv_and_fallback_files_another_user_owns_are_refused(tmp_path, manifest, secretrun):
    env = tmp_path / ".env"
    env.write_text(f"PW={CANARY}\n")
    os.chown(env, OTHER, OTHER)
    os.chmod(env, 0o600)
    manifest("""
        version = 1
        [settings]
        fallback = "fallback.env"
        [providers.local]
        type = "dotenv"
        [env]
        PW = "${local:PW}"
    """)
    run = secretrun(child=True)
    assert run.code == 78 and f"dotenv file {env} is owned by uid {OTHER}" in run.stderr
    os.chown(env, 0, 0)
    fallback = tmp_path / "fallback.env"
    fallback.write_text(f"PW={CANARY}\n")
    os.chown(fallback, OTHER, OTHER)
    run = secretrun(child=True)
    assert run.code == 78 and f"fallback file {fallback} is owned by uid {OTHER}" in run.stderr
    assert_no_canary(run.stdout, run.stderr)


# --- hole 5: files we write follow planted symlinks ----------------------------------

@pytest.fixture
def victim(tmp_path):
    """A root-owned file an attacker wants overwritten or chmod'ed."""
    d = tmp_path / "etc"
    d.mkdir()
    path = d / "shadow"
    path.write_text("root's own\n")
    os.chmod(path, 0o600)
    return path


def _untouched(victim: Path) -> None:
    assert victim.read_text() == "root's own\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600


def test_the_status_file_replaces_planted_links_instead_of_following_them(tmp_path, manifest, secretrun, victim):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    status = run_dir / "status.json"
    for planted in (status, run_dir / "status.json.tmp"):
        os.symlink(victim, planted)
        os.lchown(planted, NOBODY, NOBODY)
    manifest(f"""
        version = 1
        [settings]
        status_file = "{status}"
    """)
    run = secretrun("--watch", "--", "true")
    assert run.code == 0, run.stderr
    _untouched(victim)
    assert not status.is_symlink() and json.loads(status.read_text())["state"] == "exited"


def test_the_journal_writer_never_follows_a_link(tmp_path, victim):
    from secretrun.adopt import write_journal

    path = tmp_path / ".secretrun-journal.json"
    os.symlink(victim, path)
    os.symlink(victim, f"{path}.{os.getpid()}.tmp")   # the temporary name a writer might predict
    write_journal(str(path), {"version": 1, "records": []})
    _untouched(victim)
    assert not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_audit_log_refuses_links_and_files_someone_else_owns(tmp_path, manifest, secretrun, victim):
    log = tmp_path / "audit.log"
    os.symlink(victim, log)
    manifest(f'version = 1\n[settings]\naudit_log = "{log}"\n[env]\nX = "${{env:HOME}}"\n')
    run = secretrun("--", "true")
    assert run.code == 78 and "is a symbolic link" in run.stderr
    _untouched(victim)
    log.unlink()
    log.write_text("")
    os.chown(log, NOBODY, NOBODY)
    os.chmod(log, 0o666)                     # another user's file, open to all
    run = secretrun("--", "true")
    assert run.code == 78 and "is owned by uid 65534" in run.stderr and log.read_text() == ""


def file_dir_manifest(manifest, directory) -> Path:
    """KEY = $SECRET, delivered as a file under ``directory``."""
    return manifest(f"""
        version = 1
        [settings]
        file_dir = "{directory}"
        [env]
        KEY = {{ value = "${{env:SECRET}}", file = true }}
    """)


def test_a_file_dir_others_can_write_without_the_sticky_bit_is_refused(tmp_path, manifest, secretrun):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chown(shared, 0, NOBODY)
    os.chmod(shared, 0o770)                  # a group member could rename our private directory away
    file_dir_manifest(manifest, shared)
    run = secretrun("--", "true", env={"SECRET": CANARY})
    assert run.code == 78
    assert f"settings.file_dir {shared} is writable by group {NOBODY} without the sticky bit" in run.stderr
    assert os.listdir(shared) == []
    assert_no_canary(run.stdout, run.stderr)


# --- hole 6: secret files land on disk ---------------------------------------------

def test_watched_file_values_never_go_to_the_disk_backed_temp_dir(tmp_path, manifest, secretrun):
    manifest("""
        version = 1
        [env]
        KEY = { value = "${env:SECRET}", file = true }
    """)
    run = secretrun("--watch", "--", sys.executable, "-c",
                    "import os; print(os.path.dirname(os.path.dirname(os.environ['KEY'])))",
                    env={"SECRET": CANARY, "TMPDIR": str(tmp_path)})
    assert run.code == 0, run.stderr
    assert run.stdout.strip() == "/dev/shm"   # XDG_RUNTIME_DIR unset: /dev/shm, never $TMPDIR


def test_a_file_dir_on_disk_is_used_with_a_warning(tmp_path, manifest, secretrun):
    from secretrun.deliver import filesystem_type

    if filesystem_type(str(tmp_path)) in ("tmpfs", "ramfs"):
        pytest.skip("the temp dir is a tmpfs here")
    file_dir_manifest(manifest, tmp_path)
    run = secretrun("--", "true", env={"SECRET": CANARY})
    assert run.code == 0 and "(disk), not in memory; point settings.file_dir at a tmpfs" in run.stderr


# --- the boundary users choose: settings.user -----------------------------------------

WHOAMI = """
import json, os, sys
out = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "euid": os.geteuid(),
       "env": {k: os.environ.get(k) for k in ("HOME", "USER", "LOGNAME")}}
path = os.environ.get("KEY")
if path:
    st = os.stat(path)
    out["file"] = {"uid": st.st_uid, "mode": st.st_mode & 0o777, "readable": open(path).read() == sys.argv[2]}
json.dump(out, open(sys.argv[1], "w"))
"""


@pytest.mark.parametrize("watch", [False, True], ids=["exec", "watch"])
def test_the_command_runs_as_the_user_and_alone_reads_its_files(public, root_home, watch):
    home = root_home
    probe = write(home / "whoami.py", WHOAMI, mode=0o644)
    write(home / "secretrun.toml", """
        version = 1
        [settings]
        user = "nobody"
        [env]
        KEY = { value = "${env:SECRET}", file = true }
    """)
    out = home / "out" / "out.json"
    args = ["--watch"] if watch else []
    run = secretrun_as(None, public, home, *args, "--", SYSTEM_PYTHON, str(probe), str(out), CANARY,
                       env={"SECRET": CANARY})
    assert run.returncode == 0, run.stderr
    seen = json.loads(out.read_text())
    assert (seen["uid"], seen["euid"], seen["gid"]) == (NOBODY, NOBODY, NOBODY)
    assert 0 not in seen["groups"]
    assert seen["env"]["USER"] == seen["env"]["LOGNAME"] == "nobody"
    assert seen["file"] == {"uid": NOBODY, "mode": 0o600, "readable": True}
    assert_no_canary(run.stdout, run.stderr)


def test_numeric_user_and_group_from_the_command_line(public, root_home):
    home = root_home
    probe = write(home / "whoami.py", WHOAMI, mode=0o644)
    write(home / "secretrun.toml", "version = 1\n")
    out = home / "out" / "out.json"
    run = secretrun_as(None, public, home, "--user", f"{OTHER}:{OTHER}", "--", SYSTEM_PYTHON, str(probe),
                       str(out), CANARY)
    assert run.returncode == 0, run.stderr
    seen = json.loads(out.read_text())
    assert (seen["uid"], seen["gid"], seen["groups"]) == (OTHER, OTHER, [OTHER])
    assert seen["env"] == {"HOME": "/", "USER": str(OTHER), "LOGNAME": str(OTHER)}


def test_a_user_secretrun_cannot_switch_to_is_refused(public, home):
    write(home / "secretrun.toml", "version = 1\n", owner=NOBODY)
    run = secretrun_as(NOBODY, public, home, "--user", "root", "--", "true")
    assert run.returncode == 78 and "runs as uid 65534, not root, so it cannot run the command as 'root'" in run.stderr
    run = secretrun_as(NOBODY, public, home, "--user", "no-such-user", "--", "true")
    assert run.returncode == 78 and "there is no user named 'no-such-user'" in run.stderr


# --- hole 3: consumed credentials come back by other routes ---------------------------

CONSUMING = """
    version = 1
    [providers.boot]                 # an env-type provider not named env, with a prefix
    type = "env"
    prefix = "BOOT_"
    [providers.files]
    type = "file"
    path = "${boot:CREDENTIAL}"      # secretrun reads BOOT_CREDENTIAL to reach its store
    [env]
    PW = "${files:secret}"
"""


def test_a_consumed_credential_reaches_the_command_by_no_route(manifest, secretrun, secrets_dir):
    manifest(CONSUMING + """
        [[import]]
        from = "${env:BOOT_}"        # covers BOOT_CREDENTIAL
        prefix = "COPY_"
    """)
    run = secretrun(child=True, env={"BOOT_CREDENTIAL": str(secrets_dir), "BOOT_OTHER": "fine"})
    assert run.code == 0, run.stderr
    env = run.child_env
    assert env["PW"] == CANARY and env["COPY_OTHER"] == "fine"
    assert "BOOT_CREDENTIAL" not in env and "COPY_CREDENTIAL" not in env
    assert str(secrets_dir) not in json.dumps(env).replace(env["PW"], "")


def test_check_reports_every_credential_the_manifest_passes_on(manifest, secretrun, secrets_dir):
    manifest(CONSUMING + """
        AGAIN = "${boot:CREDENTIAL}"
        BOOT_CREDENTIAL = "${env:BOOT_CREDENTIAL}"
    """)
    run = secretrun("check", "--format", "json", env={"BOOT_CREDENTIAL": str(secrets_dir)})
    warnings = json.loads(run.stdout)["warnings"]
    assert ("BOOT_CREDENTIAL was read by secretrun to log in to a store (providers.files.path), and the "
            "manifest passes it on to the command as AGAIN") in warnings
    assert ("BOOT_CREDENTIAL was read by secretrun to log in to a store (providers.files.path), and the "
            "manifest passes it on to the command") in warnings
    run = secretrun(child=True, env={"BOOT_CREDENTIAL": str(secrets_dir)})
    assert run.child_env["AGAIN"] == run.child_env["BOOT_CREDENTIAL"] == str(secrets_dir)  # named: passed on


# --- hole 4: [[import]] sets loader and interpreter variables ---------------------------

def test_an_import_cannot_set_loader_or_interpreter_variables_unless_allowed(manifest, secretrun):
    hostile = {"IMP_LD_PRELOAD": "/tmp/evil.so", "IMP_PATH": "/tmp/evil", "IMP_BASH_ENV": "/tmp/evil.sh",
               "IMP_https_proxy": "http://127.0.0.1:1", "IMP_APP_MODE": "fine"}
    manifest("""
        version = 1
        [[import]]
        from = "${env:IMP_}"
    """)
    run = secretrun(child=True, env=hostile)
    assert run.code == 65
    for name in ("LD_PRELOAD", "PATH", "BASH_ENV", "https_proxy"):
        assert f"key '{name}' would set {name}, which changes what code the command loads" in run.stderr
    assert "[[import]] ${env:IMP_}" in run.stderr
    manifest("""
        version = 1
        [env]
        LD_PRELOAD = ""                  # written by name: the author's choice
        [[import]]
        from = "${env:IMP_}"
        allow = ["PATH", "BASH_ENV", "https_proxy", "LD_PRELOAD"]
    """)
    run = secretrun(child=True, env=hostile)
    assert run.code == 0, run.stderr
    assert run.child_env["PATH"] == "/tmp/evil" and run.child_env["APP_MODE"] == "fine"
    assert run.child_env["LD_PRELOAD"] == ""


# --- hole 7: push --rollback obeys any journal entry ------------------------------------

from tests.e2e.test_adopt import vault  # noqa: E402,F401 - the fixture: a fresh KV v2 path and a runner


def test_rollback_restores_only_what_the_manifest_references(vault):
    from secretrun import adopt

    path = vault.write('DB_PASSWORD = "${{vault:{base}/db#password}}"\n', f"DB_PASSWORD={CANARY}\n")
    assert vault.run("push").code == 0
    kv = vault.base[len("secret/"):]
    for value in ("first", "second"):  # a secret the manifest does not use, two versions
        vault.client.secrets.kv.v2.create_or_update_secret(path=f"{kv}/victim", secret={"k": value},
                                                           mount_point="secret")
    journal_file = path.parent / adopt.JOURNAL
    data = json.loads(journal_file.read_text())
    data["records"].append({"time": "2026-01-01T00:00:00Z", "command": "push", "entries": [
        {"variables": ["X"], "provider": "vault", "reference": f"${{vault:{vault.base}/victim}}",
         "previous": "1", "existed": True, "new": "2"}]})
    journal_file.write_text(json.dumps(data))
    run = vault.run("push", "--rollback")
    assert run.code == 78
    assert f"the journal names '${{vault:{vault.base}/victim}}' through provider 'vault', which this manifest " \
           "does not reference; not rolled back" in run.stderr
    assert vault.read("victim") == ({"k": "second"}, 2)
    assert_no_canary(run.stdout, run.stderr)


# --- hole 8: init writes names into TOML unescaped --------------------------------------

def test_init_writes_hostile_directory_and_file_names_as_data(tmp_path, secretrun):
    import tomllib

    hostile = tmp_path / 'shop}"\nLD_PRELOAD = "x'
    hostile.mkdir()
    dotenv = hostile / 'vals".env'
    dotenv.write_text(f"API_KEY={CANARY}\n")
    os.chmod(dotenv, 0o600)
    out = hostile / "secretrun.toml"
    run = secretrun("init", "-m", str(out), "--from-dotenv", str(dotenv), "--provider", "vault")
    assert run.code == 0, run.stderr
    data = tomllib.loads(out.read_text())
    assert list(data["env"]) == ["API_KEY"]
    assert not [line for line in out.read_text().splitlines() if line.startswith("LD_PRELOAD")]
    assert data["env"]["API_KEY"] == '${vault:secret/shop}"\nLD_PRELOAD = "x#API_KEY}'
    assert data["profiles"]["development"]["settings"]["fallback"] == 'vals".env'
    assert_no_canary(out.read_text(), run.stdout, run.stderr)


# --- hole 9: the systemd recipe hands the command the bootstrap credential ----------------

def test_credentials_directory_stays_with_secretrun_when_only_its_provider_reads_it(tmp_path, manifest, secretrun,
                                                                                    secrets_dir):
    manifest("""
        version = 1
        [providers.creds]
        type = "file"                   # defaults to $CREDENTIALS_DIRECTORY
        [env]
        PW = "${creds:secret}"
    """)
    run = secretrun(child=True, env={"CREDENTIALS_DIRECTORY": str(secrets_dir)})
    assert run.code == 0, run.stderr
    assert run.child_env["PW"] == CANARY and "CREDENTIALS_DIRECTORY" not in run.child_env
    manifest("""
        version = 1
        [providers.creds]
        type = "file"
        [env]
        PW = "${creds:secret}"
        CREDENTIALS_DIRECTORY = "${env:CREDENTIALS_DIRECTORY}"   # the author passes it on by name
    """)
    run = secretrun(child=True, env={"CREDENTIALS_DIRECTORY": str(secrets_dir)})
    assert run.child_env["CREDENTIALS_DIRECTORY"] == str(secrets_dir)


def test_check_warns_about_a_user_the_command_could_not_run_as(manifest, secretrun):
    manifest('version = 1\n[settings]\nuser = "no-such-user"\n')
    run = secretrun("check", "--format", "json")
    assert run.code == 0
    assert "settings.user: there is no user named 'no-such-user' (see /etc/passwd)" in json.loads(run.stdout)["warnings"]
