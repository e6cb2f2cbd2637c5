"""settings.listen / --listen: sockets secretrun binds and hands over with the
systemd socket-activation protocol, and restarts that overlap on them so a
rotation refuses no request. Real servers: gunicorn with Flask, and Node."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys

import pytest

from tests.conftest import CANARY, assert_no_canary, free_port
from tests.listen_fixtures import (
    APPS,
    Client,
    Service,
    check_replies,
    gunicorn_command,
    leftovers,
    node_command,
    port_closed,
    rotate_loop,
    uvicorn_command,
    wait_serving,
)
from tests.watch_fixtures import rotate

needs_gunicorn = pytest.mark.skipif(not os.path.exists(gunicorn_command()[0]), reason="gunicorn is not installed")
needs_node = pytest.mark.skipif(not shutil.which("node"), reason="node is not installed")

# The command reports what it was handed: its pid, the protocol's variables,
# and what fds 3 and 4 are. A shell first notes the signals ignored at exec
# (Python itself ignores two at start-up), then execs Python in its place.
SHELL_FIRST = ["sh", "-c", 'grep ^SigIgn: /proc/$$/status > "$0.sig"; exec "$@"']
REPORT = [sys.executable, "-c", """
import json, os, socket, stat, sys
def kind(fd):
    try:
        s = socket.socket(fileno=os.dup(fd))
    except OSError:
        return None
    with s:
        return [s.family.name, s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)]
json.dump({"pid": os.getpid(), "env": {k: v for k, v in os.environ.items() if k.startswith("LISTEN_")},
           "fd3": kind(3), "fd4": kind(4), "fd5": kind(5)}, open(sys.argv[1], "w"))
"""]


def _manifest(secrets_dir, settings: str = "") -> str:
    return f"""version = 1
[settings]
poll_interval = "100ms"
kill_timeout = "5s"
{settings}
[providers.files]
type = "file"
path = "{secrets_dir}"
[env]
SECRET = "${{files:secret}}"
"""


@pytest.mark.parametrize("watch", [False, True], ids=["exec", "watch"])
def test_the_command_gets_the_sockets_at_fd_3_with_its_own_pid_as_listen_pid(
        tmp_path, secrets_dir, manifest, secretrun, watch):
    port = free_port()
    path = tmp_path / "app.sock"
    manifest(_manifest(secrets_dir))
    out = tmp_path / "report.json"
    args = ["--watch"] if watch else []
    run = secretrun(*args, "--listen", f"tcp://127.0.0.1:{port}", "--listen", f"unix:{path}?mode=0660&name=api",
                    "--", *SHELL_FIRST, str(out), *REPORT, str(out), env={"LISTEN_FDS": "9", "LISTEN_PID": "1"})
    assert run.code == 0, run.stderr
    seen = json.loads(out.read_text())
    assert seen["env"] == {"LISTEN_FDS": "2", "LISTEN_PID": str(seen["pid"]), "LISTEN_FDNAMES": f"tcp-{port}:api"}
    assert seen["fd3"] == ["AF_INET", 1] and seen["fd4"] == ["AF_UNIX", 1] and seen["fd5"] is None
    # Nothing ignored but glibc's internal 32 and 33, which posix_spawn
    # ignores in the child whatever secretrun asks (docs/watch.md).
    ignored = int((tmp_path / "report.json.sig").read_text().split()[1], 16)
    assert ignored & ~(0b11 << 31) == 0
    if watch:
        assert not path.exists()                     # secretrun removed its socket file
    assert_no_canary(run.stderr, run.stdout)


def test_a_unix_socket_gets_its_mode(tmp_path, secrets_dir, manifest, secretrun):
    path = tmp_path / "app.sock"
    manifest(_manifest(secrets_dir))
    run = secretrun("--listen", f"unix:{path}?mode=0640", "--", sys.executable, "-c",
                    f"import os,stat; print(oct(stat.S_IMODE(os.stat({str(path)!r}).st_mode)))")
    assert run.code == 0, run.stderr
    assert run.stdout.strip() == "0o640"


@pytest.mark.parametrize("address, code, words", [
    ("tcp://127.0.0.1", 2, "tcp://HOST:PORT"),
    ("udp://127.0.0.1:80", 2, "expected tcp://"),
    ("unix:relative.sock", 2, "absolute path"),
    ("unix:/tmp/x.sock?colour=red", 2, "unknown option"),
])
def test_a_bad_address_is_a_usage_error(secrets_dir, manifest, secretrun, address, code, words):
    manifest(_manifest(secrets_dir))
    run = secretrun("--listen", address, child=True)
    assert run.code == code and words in run.stderr and "Traceback" not in run.stderr


def test_bad_settings_are_manifest_errors(secrets_dir, manifest, secretrun):
    manifest(_manifest(secrets_dir, 'listen = ["tcp://:x"]\nready = "soon"'))
    run = secretrun(child=True)
    assert run.code == 78
    assert "settings.listen" in run.stderr and "settings.ready" in run.stderr


def test_a_port_in_use_fails_before_anything_starts(secrets_dir, manifest, secretrun):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        manifest(_manifest(secrets_dir, f'listen = ["tcp://127.0.0.1:{port}"]'))
        run = secretrun(child=True)
    assert run.code == 71
    assert f"cannot listen on tcp://127.0.0.1:{port}" in run.stderr
    assert not run._env_file.exists()


# --- overlapping restarts -----------------------------------------------------------


def _serve(tmp_path, secrets_dir, command, settings: str, port: int) -> Service:
    text = _manifest(secrets_dir, f'watch = true\nlisten = ["tcp://127.0.0.1:{port}"]\n{settings}')
    return Service(tmp_path, text, command)


def _rotations(service, secrets_dir, port, count: int, overlap: bool = True):
    client = Client(port).start()
    try:
        rotations = rotate_loop(service, lambda v: rotate(secrets_dir / "secret", v),
                                [f"{CANARY}-{i}" for i in range(1, count + 1)], overlap)
    finally:
        replies = client.stop()
    return rotations, replies


def _ends_clean(service: Service, port: int, code: int = 0) -> None:
    pids = service.pids()
    assert service.stop() == code, service.log
    assert leftovers(pids) == []
    assert port_closed(port)
    assert_no_canary(service.log)


def _file_rotations(tmp_path, secrets_dir, command, ready: str, count: int, code: int = 0):
    """Serve on a held socket, rotate ``count`` times in the file store while
    a client loops, and check it all ends clean; the outcome and the log."""
    port = free_port()
    service = _serve(tmp_path, secrets_dir, command, f'ready = "{ready}"', port)
    try:
        wait_serving(port, CANARY)
        rotations, replies = _rotations(service, secrets_dir, port, count)
        outcome = check_replies(replies, CANARY, rotations)
        outcome["refused"] = sum(1 for r in replies if r.error == "ConnectionRefusedError")
        log = service.log
        _ends_clean(service, port, code)
    finally:
        service.close()
    return outcome, log


@needs_gunicorn
def test_gunicorn_rotations_refuse_no_request(tmp_path, secrets_dir):
    outcome, log = _file_rotations(tmp_path, secrets_dir, gunicorn_command(), "notify", 5)
    assert outcome["failed"] == 0 and outcome["stale"] == 0, outcome
    assert outcome["requests"] > 50
    assert log.count("starting the new command beside the old one") == 5
    assert "restarted the command: SECRET (${files:secret}) changed" in log


@needs_gunicorn
@pytest.mark.parametrize("suffix, why", [("broken", "exited with code"),
                                         ("slow", "was not ready within ready_timeout")])
def test_a_new_command_that_cannot_serve_leaves_the_old_one_serving(tmp_path, secrets_dir, suffix, why):
    port = free_port()
    service = _serve(tmp_path, secrets_dir, gunicorn_command(), 'ready = "notify"\nready_timeout = "3s"', port)
    try:
        wait_serving(port, CANARY)
        client = Client(port).start()
        try:
            rotate(secrets_dir / "secret", f"{CANARY}-{suffix}")
            service.wait_log("the old one keeps serving with its old values", timeout=30)
            service.wait_log("the new command", 2)
        finally:
            replies = client.stop()
        assert all(r.body == CANARY for r in replies), check_replies(replies, CANARY, [])
        assert why in service.log and "variables=SECRET" in service.log
        # Retried at the next poll while the store still has it; a good value then goes through.
        service.wait_log("the old one keeps serving with its old values", 2, timeout=30)
        rotate(secrets_dir / "secret", f"{CANARY}-good")
        service.wait_log("restarted the command", timeout=30)
        wait_serving(port, f"{CANARY}-good")
        _ends_clean(service, port)
    finally:
        service.close()


# --- 20 rotations in OpenBao ------------------------------------------------------


def _bao_service(tmp_path, bao, path: str, command, settings: str, port: int) -> Service:
    listen = f'listen = ["tcp://127.0.0.1:{port}"]\n' if settings is not None else ""
    text = f"""version = 1
[settings]
watch = true
poll_interval = "200ms"
kill_timeout = "10s"
{listen}{settings or ""}
[providers.vault]
type = "vault"
address = "{bao.url}"
[env]
SECRET = "${{vault:secret/{path}#value}}"
"""
    return Service(tmp_path, text, command, env={"VAULT_TOKEN": bao.root})


def _bao_rotations(tmp_path, bao, command, ready: str, count: int = 20):
    from tests.vault_server import put_kv2

    client = bao.server.client()
    path = f"app/listen-{os.path.basename(tmp_path)}"
    put_kv2(client, path, {"value": CANARY})
    port = free_port()
    service = _bao_service(tmp_path, bao, path, command, f'ready = "{ready}"', port)
    try:
        wait_serving(port, CANARY)
        loop = Client(port).start()
        try:
            rotations = rotate_loop(service, lambda v: put_kv2(client, path, {"value": v}),
                                    [f"{CANARY}-{i}" for i in range(1, count + 1)], True)
        finally:
            replies = loop.stop()
        outcome = check_replies(replies, CANARY, rotations)
        assert outcome["failed"] == 0 and outcome["stale"] == 0, outcome
        assert service.count("starting the new command beside the old one") == count
        _ends_clean(service, port)
    finally:
        service.close()


@pytest.mark.slow
@needs_gunicorn
def test_gunicorn_flask_20_openbao_rotations_without_a_failed_request(tmp_path, bao):
    _bao_rotations(tmp_path, bao, gunicorn_command(), "notify")


@pytest.mark.slow
@needs_node
def test_node_20_openbao_rotations_without_a_failed_request(tmp_path, bao):
    _bao_rotations(tmp_path, bao, node_command(), "delay:300ms")


@needs_node
def test_node_overlap_with_a_file_store(tmp_path, secrets_dir):
    outcome, _ = _file_rotations(tmp_path, secrets_dir, node_command(), "delay:300ms", 3)
    assert outcome["failed"] == 0 and outcome["stale"] == 0, outcome


def test_uvicorn_overlap_refuses_nothing(tmp_path, secrets_dir):
    """uvicorn --fd 3 takes the socket too. Its graceful shutdown closes every
    connection with no request read yet, so a connection the old process
    accepted in its last instant can be reset (uvicorn's own behaviour,
    documented in docs/watch.md); none is ever refused. uvicorn re-raises
    SIGTERM once it has shut down: 143."""
    outcome, _ = _file_rotations(tmp_path, secrets_dir, uvicorn_command(), "delay:500ms", 3, code=143)
    assert outcome["stale"] == 0 and outcome["refused"] == 0, outcome
    assert outcome["failed"] <= 3, outcome


def test_without_listen_a_restart_still_stops_then_starts(tmp_path, secrets_dir):
    """Nothing changes for a command that takes no sockets."""
    service = Service(tmp_path, _manifest(secrets_dir, "watch = true"),
                      [sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        service.wait_log("started the command")
        rotate(secrets_dir / "secret", f"{CANARY}-2")
        service.wait_log("restarted the command")
        assert "beside the old one" not in service.log
    finally:
        service.close()
    assert_no_canary(service.log)


def test_overlap_with_systemd_audit_status_file_and_splay(tmp_path, secrets_dir):
    """Under systemd: RELOADING=1 then READY=1 around the overlap, all from
    secretrun (the command's READY=1 goes to secretrun's own socket); the
    audit log and the status file see the restart; splay delays it."""
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd.bind(str(tmp_path / "notify.sock"))
    systemd.settimeout(20)
    audit, status = tmp_path / "audit.jsonl", tmp_path / "status.json"
    port = free_port()
    settings = (f'ready = "notify"\nsplay = "300ms"\naudit_log = "{audit}"\nstatus_file = "{status}"')
    text = _manifest(secrets_dir, f'watch = true\nlisten = ["tcp://127.0.0.1:{port}"]\n{settings}')
    service = Service(tmp_path, text, [sys.executable, str(APPS / "notify_app.py")],
                      env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    try:
        messages = []

        def until(word: str) -> None:
            while not any(word in m for m in messages):
                messages.append(systemd.recv(4096).decode())

        until("READY=1")
        rotate(secrets_dir / "secret", f"{CANARY}-2")
        until("RELOADING=1")
        service.wait_log("the previous command")
        messages.clear()
        until("READY=1")
        assert all(f"MAINPID={service.proc.pid}" in m for m in messages if "READY=1" in m)
        rotate(secrets_dir / "secret", f"{CANARY}-broken")
        service.wait_log("the old one keeps serving with its old values")
        records = [json.loads(line) for line in audit.read_text().splitlines()]
        restarts = [(r["outcome"], r["variables"]) for r in records if r["event"] == "restart"]
        assert restarts[:2] == [("restarted", ["SECRET"]), ("restart_failed", ["SECRET"])]
        state = json.loads(status.read_text())
        assert state["restarts"] == 1 and state["state"] == "running"
        assert "(splay)" in service.log
        _ends_clean(service, port)
    finally:
        service.close()
        systemd.close()
    assert_no_canary(audit.read_text(), status.read_text())


# --- addresses and readiness, unit by unit ------------------------------------------


def test_addresses_parse_with_their_names_and_options():
    from secretrun.sockets import parse

    v6 = parse("tcp://[::]:8443")
    assert (v6.family, v6.host, v6.port, v6.name) == (socket.AF_INET6, "::", 8443, "tcp-8443")
    assert v6.probe_target == (socket.AF_INET6, ("::1", 8443))
    assert parse("tcp://0.0.0.0:80").probe_target == (socket.AF_INET, ("127.0.0.1", 80))
    unix = parse("unix:/run/app/app.sock?mode=0660&owner=app:web&name=api")
    assert (unix.path, unix.mode, unix.owner, unix.group, unix.name) == ("/run/app/app.sock", 0o660, "app", "web", "api")
    for bad in ("tcp://host:0", "tcp://[::]", "unix:/x?mode=999", "unix:/x?name=a:b", "http://x:1"):
        with pytest.raises(ValueError):
            parse(bad)


def test_readiness_modes_parse():
    from secretrun.readiness import Ready, parse

    assert parse("notify") == Ready("notify")
    assert parse("tcp") == Ready("tcp")
    assert parse("tcp://127.0.0.1:9000") == Ready("tcp", "tcp://127.0.0.1:9000")
    assert parse("http://127.0.0.1:8080/healthz") == Ready("http", "http://127.0.0.1:8080/healthz")
    assert parse("delay:250ms") == Ready("delay", delay=0.25)
    for bad in ("", "soon", "delay:x", "http://", "tcp://nope"):
        with pytest.raises(ValueError):
            parse(bad)


def test_probes_see_notify_tcp_http_and_delay(tmp_path):
    import http.server
    import threading

    from secretrun.readiness import Probe, Ready

    notify = Probe(Ready("notify"), None, 0.0)
    assert not notify.check(0.0)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.connect("\0" + notify.env()["NOTIFY_SOCKET"][1:])
        sender.send(b"STATUS=warming up")
        assert not notify.check(0.1)
        sender.send(b"READY=1")
    assert notify.check(0.2) and notify.status == "warming up"
    notify.close()

    assert not Probe(Ready("delay", delay=2), None, 10.0).check(11.9)
    assert Probe(Ready("delay", delay=2), None, 10.0).check(12.0)

    class Health(http.server.BaseHTTPRequestHandler):
        code = 503

        def do_GET(self):
            self.send_response(Health.code)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        assert Probe(Ready("tcp", f"tcp://127.0.0.1:{port}"), None, 0.0).check(0.0)
        assert not Probe(Ready("tcp", f"tcp://127.0.0.1:{free_port()}"), None, 0.0).check(0.0)
        url = f"http://127.0.0.1:{port}/healthz"
        assert not Probe(Ready("http", url), None, 0.0).check(0.0)
        Health.code = 204
        assert Probe(Ready("http", url), None, 0.0).check(0.0)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
