"""sd_notify against a real unix datagram socket, path and abstract."""

import os
import socket
import uuid

import pytest

from secretrun.notify import Notifier


@pytest.fixture(params=["path", "abstract"])
def listener(request, tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        address = str(tmp_path / "notify.sock")
        sock.bind(address)
    else:
        name = f"secretrun-test-{uuid.uuid4().hex}"
        sock.bind("\0" + name)
        address = "@" + name
    sock.settimeout(5)
    yield sock, address
    sock.close()


def received(sock):
    return dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines())


def test_messages_reach_the_socket(listener):
    sock, address = listener
    n = Notifier({"NOTIFY_SOCKET": address})
    assert n.ready(status="running app")
    assert received(sock) == {"READY": "1", "MAINPID": str(os.getpid()), "STATUS": "running app"}
    assert n.reloading()
    msg = received(sock)
    assert msg["RELOADING"] == "1" and int(msg["MONOTONIC_USEC"]) > 0
    assert n.stopping() and received(sock) == {"STOPPING": "1"}
    assert n.watchdog() and received(sock) == {"WATCHDOG": "1"}


def test_without_a_socket_nothing_happens():
    n = Notifier({})
    assert not n.enabled and not n.ready()


def test_a_dead_socket_is_not_an_error(tmp_path):
    assert not Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}).ready()


def test_watchdog_interval_is_half_the_deadline():
    assert Notifier({"WATCHDOG_USEC": "2000000"}).watchdog_interval == 1.0
    assert Notifier({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}).watchdog_interval is None


def test_exec_mode_passes_notify_socket_to_the_app(manifest, secretrun, listener):
    sock, address = listener
    manifest("version = 1\n")
    run = secretrun(child=True, env={"NOTIFY_SOCKET": address})
    assert run.child_env["NOTIFY_SOCKET"] == address
