"""examples/docker for real: its image, built from this checkout, run by
podman the way Docker users run it.

Each test starts the image as a user would (secrets mounted at /run/secrets,
``podman stop``), then looks inside the container: what PID 1 is, which user
runs it, what the app received, which processes are zombies. The helpers in
tests/containers.py explain the engine's set-up (base image, runtime, limits).
Skipped, with the reason, where podman is not installed or cannot run.
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
import uuid

import pytest

from tests import containers
from tests.conftest import CANARY, assert_no_canary
from tests.containers import Container, podman

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

WATCH = ["--entrypoint", '["secretrun", "--watch", "--"]']
APP = ["python", "app.py"]
ASK_APP = ("import urllib.request; "
           "print(urllib.request.urlopen('http://127.0.0.1:8080/', timeout=10).read().decode())")
# Compared inside the container, so that the value itself is never printed.
SAME_URL = ("env = dict(v.split('=', 1) for v in open('/proc/1/environ').read().split(chr(0)) if v); "
            "print(env['DATABASE_URL'] == "
            "'postgres://web:' + open('/run/secrets/db_password').read().strip() + '@db:5432/web')")
COUNT_ZOMBIES = textwrap.dedent("""\
    import os
    def state(pid):
        try:
            return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return None
    print(sum(state(p) == "Z" for p in os.listdir("/proc") if p.isdigit()))
""")
# An app that leaves orphans behind, as a shell script or a worker pool can:
# each child it starts starts a grandchild and exits at once; the app reaps its
# child, and the grandchild, reparented to PID 1, exits 0.3 s later.
ORPHANS = 3
ORPHAN_MAKER = textwrap.dedent(f"""\
    import os, signal, sys, time
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    for _ in range({ORPHANS}):
        pid = os.fork()
        if pid == 0:
            if os.fork() == 0:
                time.sleep(0.3)
            os._exit(0)
        os.waitpid(pid, 0)
    print("ready", flush=True)
    time.sleep(600)
""")


def stubborn_app(code_on_term: int | None) -> list:
    """A command that exits ``code_on_term`` on SIGTERM, or ignores SIGTERM (None)."""
    handler = "signal.SIG_IGN" if code_on_term is None else f"lambda *_: sys.exit({code_on_term})"
    return ["python", "-c", (f"import signal, sys, time; signal.signal(signal.SIGTERM, {handler}); "
                             "print('ready', flush=True); time.sleep(600)")]


@pytest.fixture(scope="session")
def base_image():
    problem = containers.engine_problem()
    if problem:
        pytest.skip(problem)
    try:
        return containers.ensure_base_image()
    except containers.EngineUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def image(base_image, tmp_path_factory):
    """examples/docker's image, as its Dockerfile says, secretrun from this checkout."""
    tag = f"localhost/secretrun-example:test-{os.getpid()}"
    containers.build_example_image(tag, tmp_path_factory.mktemp("image"), base_image)
    yield tag
    podman("rmi", "--force", tag, check=False)


@pytest.fixture
def mounted_secrets(tmp_path):
    """What Docker secrets look like: /run/secrets/<name>, read-only files (0444),
    in a directory the container's user 10001 can list."""
    d = tmp_path / "run-secrets"
    d.mkdir(mode=0o755)
    for name in ("db_password", "api_key"):
        (d / name).write_text(CANARY + "\n")
        (d / name).chmod(0o444)
    return d


@pytest.fixture
def start(image):
    """``start(*podman_run_args, command=[...])``: a detached container of the
    example image, no network (the app is reached from inside), removed by id."""
    started = []

    def run(*args: str, command=()) -> Container:
        out = podman("run", "--detach", "--network", "none", *containers.ulimit_flags(), *args,
                     image, *command)
        started.append(Container(out.stdout.strip()))
        return started[-1]

    yield run
    for box in started:
        box.remove()


@pytest.fixture
def podman_secrets():
    """``podman secret create``, removed when the test ends."""
    names = []

    def create(value: str) -> str:
        name = f"secretrun-test-{uuid.uuid4().hex[:12]}"
        podman("secret", "create", name, "-", input=value.encode())
        names.append(name)
        return name

    yield create
    for name in names:
        podman("secret", "rm", name, check=False)


def pid1_cmdline(box: Container) -> list:
    return box.exec("cat", "/proc/1/cmdline").split("\0")[:-1]


def assert_no_canary_anywhere(box: Container) -> None:
    """Not in the log, not in `podman inspect` (its Config.Env included), and
    while it runs, not in the environment of a process `podman exec` starts."""
    assert_no_canary(box.logs(), json.dumps(containers.inspect(box.id)))
    if box.state()["Running"]:
        assert_no_canary(box.exec("env"))


def test_secrets_from_a_mounted_directory_reach_the_app_as_pid1(start, mounted_secrets):
    box = start("--read-only", "-v", f"{mounted_secrets}:/run/secrets:ro")
    box.wait_for_log("listening on :8080")
    assert json.loads(box.python(ASK_APP)) == {"DATABASE_URL": True, "API_KEY": True}
    # exec mode: secretrun became the app, nothing stays between podman and it
    assert pid1_cmdline(box) == APP
    assert box.python(SAME_URL) == "True\n"
    assert_no_canary_anywhere(box)


def test_podman_secrets_reach_the_app(start, podman_secrets):
    db, api = podman_secrets(CANARY + "\n"), podman_secrets(CANARY + "\n")
    box = start("--secret", f"{db},target=db_password", "--secret", f"{api},target=api_key")
    box.wait_for_log("listening on :8080")
    assert json.loads(box.python(ASK_APP)) == {"DATABASE_URL": True, "API_KEY": True}
    assert_no_canary_anywhere(box)


def test_the_app_runs_as_the_images_non_root_user(image, start, mounted_secrets):
    assert containers.inspect(image)["Config"]["User"] == "10001:10001"
    box = start("-v", f"{mounted_secrets}:/run/secrets:ro")
    box.wait_for_log("listening on :8080")
    status = box.exec("cat", "/proc/1/status")
    assert "Uid:\t10001\t10001\t10001\t10001" in status
    assert "Gid:\t10001\t10001\t10001\t10001" in status
    assert "Groups:\t10001" in status  # not root's group 0, as a bare `USER 10001` gives


def test_secretrun_is_pid1_under_watch_and_the_app_its_child(start, mounted_secrets):
    box = start("--read-only", "-v", f"{mounted_secrets}:/run/secrets:ro", *WATCH, command=APP)
    box.wait_for_log("listening on :8080")
    assert pid1_cmdline(box)[1:] == ["/usr/local/bin/secretrun", "--watch", "--", *APP]
    app_pid = box.python("import os; print(next(p for p in os.listdir('/proc') if p.isdigit() and "
                         "open(f'/proc/{p}/cmdline').read() == 'python\\0app.py\\0'))").strip()
    assert box.exec("cat", f"/proc/{app_pid}/stat").rsplit(")", 1)[1].split()[1] == "1"  # ppid
    assert json.loads(box.python(ASK_APP)) == {"DATABASE_URL": True, "API_KEY": True}
    assert_no_canary_anywhere(box)


@pytest.mark.parametrize("mode", ["exec", "watch"])
def test_podman_stop_shuts_the_app_down_gracefully(start, mounted_secrets, mode):
    box = start("-v", f"{mounted_secrets}:/run/secrets:ro", *(WATCH if mode == "watch" else ()), command=APP)
    box.wait_for_log("listening on :8080")
    took = box.stop(timeout=10)
    assert box.exit_code() == 0
    assert took < 8, f"SIGTERM did not stop the app: podman waited {took:.1f} s"
    assert box.logs().rstrip().endswith("stopped")
    assert_no_canary_anywhere(box)


@pytest.mark.parametrize("mode", ["exec", "watch"])
def test_podman_stop_passes_the_apps_exit_code_through(start, mounted_secrets, mode):
    box = start("-v", f"{mounted_secrets}:/run/secrets:ro", *(WATCH if mode == "watch" else ()),
                command=stubborn_app(3))
    box.wait_for_log("ready")
    assert box.stop(timeout=10) < 8
    assert box.exit_code() == 3


def test_podman_stop_kills_an_app_ignoring_sigterm_after_its_timeout(start, mounted_secrets):
    box = start("-v", f"{mounted_secrets}:/run/secrets:ro", command=stubborn_app(None))
    box.wait_for_log("ready")
    took = box.stop(timeout=2)
    assert box.exit_code() == 137  # 128 + SIGKILL, from podman
    assert took >= 2


def test_under_watch_kill_timeout_below_the_stop_timeout_kills_first(start, mounted_secrets, tmp_path):
    """secretrun's own SIGKILL (kill_timeout) beats podman's (its --time): the
    app is killed by secretrun, which then exits 137 itself."""
    manifest = tmp_path / "secretrun.toml"
    text = (containers.EXAMPLE / "secretrun.toml").read_text()
    assert 'kill_timeout = "8s"' in text
    manifest.write_text(text.replace('kill_timeout = "8s"', 'kill_timeout = "1s"'))
    box = start("-v", f"{mounted_secrets}:/run/secrets:ro", "-v", f"{manifest}:/app/secretrun.toml:ro",
                *WATCH, command=stubborn_app(None))
    box.wait_for_log("ready")
    took = box.stop(timeout=30)
    assert box.exit_code() == 137
    assert took < 15, f"podman's timeout did it, not kill_timeout ({took:.1f} s)"
    assert "did not exit within kill_timeout (1s)" in box.logs()


@pytest.mark.parametrize("mode, zombies", [("watch", 0), ("exec", ORPHANS), ("init", 0)])
def test_orphans_are_reaped_by_secretrun_as_pid1(start, mounted_secrets, mode, zombies):
    """Under --watch secretrun is PID 1 and reaps every orphan. In exec mode
    the app is PID 1: one that never waits for processes it did not start
    keeps them as zombies; `--init` (docker run --init) puts an init before it."""
    if mode == "init" and not shutil.which("catatonit"):
        pytest.skip("podman --init needs catatonit (apt-get install catatonit)")
    args = {"watch": WATCH, "exec": [], "init": ["--init"]}[mode]
    box = start("-v", f"{mounted_secrets}:/run/secrets:ro", *args, command=["python", "-c", ORPHAN_MAKER])
    box.wait_for_log("ready")
    containers.wait_until(lambda: int(box.python(COUNT_ZOMBIES)) == zombies, timeout=15,
                          what=f"{zombies} zombies")
    # and it stays so: the orphans are long gone, nothing more will change
    assert int(box.python(COUNT_ZOMBIES)) == zombies


@pytest.mark.parametrize("files, code, named", [
    ({"api_key": CANARY}, 1, "db_password"),                  # a secret is missing
    ({"db_password": CANARY, "api_key": CANARY[:10]}, 65, "API_KEY"),  # too short
])
def test_a_bad_secret_fails_with_its_exit_code_and_no_value(image, mounted_secrets, files, code, named):
    for path in mounted_secrets.iterdir():
        path.unlink()
    for name, value in files.items():
        (mounted_secrets / name).write_text(value)
    out = podman("run", "--rm", "--network", "none", *containers.ulimit_flags(),
                 "-v", f"{mounted_secrets}:/run/secrets:ro", image, check=False)
    assert out.returncode == code, out.stdout + out.stderr
    assert named in out.stderr
    assert "Traceback" not in out.stderr
    assert_no_canary(out.stdout, out.stderr)
    assert_no_canary(out.stdout, out.stderr, canary=CANARY[:10])


def test_image_size(image, base_image, capsys):
    """The image, and what secretrun and the app add to the base (wheels of
    secretrun, click, python-dotenv and psutil)."""
    size, base = containers.image_size(image), containers.image_size(base_image)
    with capsys.disabled():
        print(f"\nexamples/docker image: {size / 1e6:.1f} MB; base {base / 1e6:.1f} MB; "
              f"secretrun + app: {(size - base) / 1e6:.1f} MB")
    assert size - base < 15e6
